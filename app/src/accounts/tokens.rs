//! Personal API tokens on the account page: the list (with last use), creating one (shown once),
//! revoking.
//! (The page `kraft login` opens is served without WebAssembly: `server/src/cli_login.rs`.)

use leptos::either::Either;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, meta, platform, require_user, respond, Form};
use crate::error::ApiError;
use crate::forms::{FormAlert, FormState};

/// One token as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenView {
    pub id: String,
    pub name: String,
    pub shown: String,
    /// "read, clusters".
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub last_used: Option<String>,
    /// Usable: not revoked, not expired.
    pub active: bool,
}

/// The list as the account page shows it.
#[cfg(feature = "ssr")]
pub fn token_views(tokens: Vec<platform::access::api_tokens::ApiTokenInfo>) -> Vec<ApiTokenView> {
    let now = chrono::Utc::now();
    let rel = |at| crate::clusters::server::relative(at, now);
    tokens
        .into_iter()
        .map(|t| ApiTokenView {
            id: t.id.to_string(),
            name: t.name,
            shown: t.shown,
            scopes: t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            created: rel(t.created_at),
            expires: match (t.revoked_at, t.expires_at <= now) {
                (Some(at), _) => format!("revoked {}", rel(at)),
                (None, true) => format!("expired {}", rel(t.expires_at)),
                (None, false) => rel(t.expires_at),
            },
            last_used: t.last_used_at.map(|at| match t.last_used_from {
                Some(from) => format!("{} from {from}", rel(at)),
                None => rel(at),
            }),
            active: t.revoked_at.is_none() && t.expires_at > now,
        })
        .collect()
}

/// Creates a token; the answer is the token itself, shown once.
#[server(prefix = "/api", endpoint = "tokens/create")]
pub async fn create_api_token(
    name: String,
    #[server(default)] days: String,
    #[server(default)] read: String,
    #[server(default)] clusters: String,
    #[server(default)] kubeconfigs: String,
) -> Result<String, ApiError> {
    answer(async {
        let current = require_user().await?;
        let meta = meta().await;
        let days = days.trim().parse::<u32>().unwrap_or(0);
        let issued = platform()?
            .access()
            .api_tokens()
            .create(
                &current.user,
                &name,
                &platform::access::api_tokens::Scope::checked(&read, &clusters, &kubeconfigs),
                days,
                meta.client_addr.as_deref(),
            )
            .await?;
        Ok(issued.token)
    })
    .await
}

#[server(prefix = "/api", endpoint = "tokens/revoke")]
pub async fn revoke_api_token(id: String) -> Result<(), ApiError> {
    respond(Form::new("api-tokens").notice("Revoked: the token no longer works."), async {
        let current = require_user().await?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
        let meta = meta().await;
        platform()?
            .access()
            .api_tokens()
            .revoke(&current.user, id, meta.client_addr.as_deref())
            .await?;
        Ok(())
    })
    .await
}

/// The account page's API tokens card: the list, revoking, and a new token, all plain forms (a
/// new token is shown once on a page of its own: `server/src/token_pages.rs`).
#[component]
pub fn ApiTokens(tokens: Vec<ApiTokenView>, state: FormState) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="tokens-heading" id="api-tokens">
            <h2 id="tokens-heading">"API tokens"</h2>
            <p>
                "Scripts, CI pipelines and the "<code>"kraft"</code>" command line call the "
                <a href="/api/v1/openapi.json">"JSON API"</a>" as you with a token. It is shown once; KRaft keeps only its hash."
            </p>
            <FormAlert state=state />
            {if tokens.is_empty() {
                Either::Left(view! { <p>"No tokens yet."</p> })
            } else {
                Either::Right(view! {
                    <table class="table" aria-labelledby="tokens-heading">
                        <thead><tr><th scope="col">"Name"</th><th scope="col">"Token"</th><th scope="col">"Scopes"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                        <tbody>
                            {tokens.into_iter().map(|t| view! {
                                <tr data-token=t.name.clone()>
                                    <td>{t.name.clone()}</td>
                                    <td><code>{t.shown}</code></td>
                                    <td>{t.scopes}</td>
                                    <td>{t.expires}</td>
                                    <td>{t.last_used.unwrap_or_else(|| "never".into())}</td>
                                    <td>{t.active.then(|| view! {
                                        <form method="post" action="/api/tokens/revoke" class="inline-form">
                                            <input type="hidden" name="id" value=t.id />
                                            <button type="submit" class="secondary" aria-label=format!("Revoke {}", t.name)>"Revoke"</button>
                                        </form>
                                    })}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                })
            }}
            <h3>"New token"</h3>
            <form method="post" action="/account/tokens" class="form" aria-label="New API token">
                <label for="token-name">"Token name"</label>
                <input id="token-name" name="name" autocomplete="off" required maxlength="64" aria-describedby="token-name-hint" />
                <p id="token-name-hint" class="hint">"Where it will be used, e.g. laptop or CI."</p>
                <fieldset>
                    <legend>"Scopes"</legend>
                    <label><input type="checkbox" name="read" value="on" checked />" read: list and read clusters"</label>
                    <label><input type="checkbox" name="clusters" value="on" />" clusters: create, change and delete clusters"</label>
                    <label><input type="checkbox" name="kubeconfigs" value="on" />" kubeconfigs: issue and revoke kubeconfigs"</label>
                </fieldset>
                <label for="token-days">"Valid for"</label>
                <select id="token-days" name="days">
                    <option value="1">"1 day"</option>
                    <option value="7">"7 days"</option>
                    <option value="30" selected>"30 days"</option>
                    <option value="90">"90 days"</option>
                    <option value="365">"365 days"</option>
                </select>
                <button type="submit">"Create token"</button>
            </form>
        </section>
    }
}
