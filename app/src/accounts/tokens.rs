//! Personal API tokens in the UI: the list (with last use), creating one (shown once), revoking,
//! and the page `kraft login` opens to authorize the CLI.

use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, meta, platform, require_user, respond, Form};
use crate::error::ApiError;
use crate::forms::{Field, FormAlert, FormState};

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

#[server(prefix = "/api", endpoint = "tokens/list")]
pub async fn list_api_tokens() -> Result<Vec<ApiTokenView>, ApiError> {
    answer(async {
        let current = require_user().await?;
        let tokens = platform()?.access().api_tokens().list(current.user.id).await?;
        let now = chrono::Utc::now();
        let rel = |at| crate::clusters::server::relative(at, now);
        Ok(tokens
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
            .collect())
    })
    .await
}

#[cfg(feature = "ssr")]
fn scopes_of(
    read: &str,
    clusters: &str,
    kubeconfigs: &str,
) -> Vec<platform::access::api_tokens::Scope> {
    use platform::access::api_tokens::Scope;
    [(read, Scope::Read), (clusters, Scope::Clusters), (kubeconfigs, Scope::Kubeconfigs)]
        .into_iter()
        .filter(|(on, _)| !on.is_empty())
        .map(|(_, scope)| scope)
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
                &scopes_of(&read, &clusters, &kubeconfigs),
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

#[component]
pub fn ApiTokensPage() -> impl IntoView {
    let create = ServerAction::<CreateApiToken>::new();
    let flash = crate::accounts::pages::flash_resource();
    let tokens = Resource::new(move || create.version().get(), |_| list_api_tokens());
    view! {
        <h1>"API tokens"</h1>
        <p>
            "Scripts, CI pipelines and the "<code>"kraft"</code>" command line use a token to call the "
            <a href="/api/v1/openapi.json">"JSON API"</a>" as you. A token is shown once; KRaft keeps only its hash."
        </p>
        <section class="card" aria-labelledby="new-token-heading">
            <h2 id="new-token-heading">"New token"</h2>
            <ActionForm action=create attr:class="form" attr:aria-label="New API token">
                {move || {
                    let state = FormState::new("api-token", Signal::derive(move || create.value().get().map(|r| r.map(|_| ()))), None, "Created.");
                    view! {
                        <FormAlert state=state.clone() />
                        <Field state=state.clone() name="name" label="Name" autocomplete="off" hint="Where it will be used, e.g. laptop or CI." />
                        <fieldset>
                            <legend>"Scopes"</legend>
                            <label><input type="checkbox" name="read" value="on" checked />" read: list and read clusters"</label>
                            <label><input type="checkbox" name="clusters" value="on" />" clusters: create, change and delete clusters"</label>
                            <label><input type="checkbox" name="kubeconfigs" value="on" />" kubeconfigs: issue and revoke kubeconfigs"</label>
                            {move || state.field_error("scopes").get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
                        </fieldset>
                        <label for="token-days">"Valid for"</label>
                        <select id="token-days" name="days">
                            <option value="1">"1 day"</option>
                            <option value="7">"7 days"</option>
                            <option value="30" selected>"30 days"</option>
                            <option value="90">"90 days"</option>
                            <option value="365">"365 days"</option>
                        </select>
                    }
                }}
                <button type="submit" disabled=move || create.pending().get()>"Create token"</button>
            </ActionForm>
            {move || create.value().get().and_then(Result::ok).map(|token| view! {
                <output class="alert notice" role="status">
                    "Your new token (shown only now; copy it somewhere safe): "
                    <code data-api-token>{token}</code>
                </output>
            })}
        </section>
        <Suspense fallback=|| view! { <p>"Loading your tokens…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match tokens.await {
                    Err(ApiError::Unauthenticated) => Either::Left(view! { <Redirect path="/login" /> }),
                    Err(error) => Either::Right(Either::Left(view! { <p class="alert error" role="alert">{error.to_string()}</p> })),
                    Ok(tokens) => Either::Right(Either::Right(view! {
                        <section class="card" aria-labelledby="tokens-heading">
                            <h2 id="tokens-heading">"Your tokens"</h2>
                            <FormAlert state=FormState::posted("api-tokens", flash, "Done.") />
                            {if tokens.is_empty() {
                                Either::Left(view! { <p>"No tokens yet."</p> })
                            } else {
                                Either::Right(view! {
                                    <table class="table" aria-labelledby="tokens-heading">
                                        <thead><tr><th scope="col">"Name"</th><th scope="col">"Token"</th><th scope="col">"Scopes"</th><th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                                        <tbody>
                                            {tokens.into_iter().map(|t| view! {
                                                <tr data-token=t.name.clone()>
                                                    <td>{t.name.clone()}</td>
                                                    <td><code>{t.shown}</code></td>
                                                    <td>{t.scopes}</td>
                                                    <td>{t.created}</td>
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
                        </section>
                    })),
                }
            })}
        </Suspense>
    }
}

/// `/account/tokens/cli?callback=&state=&name=`: what `kraft login` opens. Authorizing creates a
/// token and sends the browser back to the CLI's loopback address with it (the server checks the
/// address is this machine's loopback).
#[component]
pub fn CliLoginPage() -> impl IntoView {
    let query = use_query_map();
    let who = Resource::new(|| (), |_| crate::accounts::get_viewer());
    view! {
        <h1>"Authorize the kraft command line"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let signed_in = who.await.ok().and_then(|v| v.user);
                let q = query.get_untracked();
                let get = |k: &str| q.get(k).unwrap_or_default();
                match signed_in {
                    None => Either::Left(view! { <Redirect path=format!("/login?next={}", urlencode(&format!("/account/tokens/cli?callback={}&state={}&name={}", urlencode(&get("callback")), urlencode(&get("state")), urlencode(&get("name"))))) /> }),
                    Some(user) => Either::Right(view! {
                        <section class="card">
                            <p>
                                "The kraft command line on this computer asks for a token to act as "<strong>{user.username}</strong>
                                ": to list, create and delete your clusters and issue kubeconfigs, for 90 days. "
                                "It will appear as \""{get("name")}"\" on your "<a href="/account/tokens">"API tokens"</a>" page, where you can revoke it."
                            </p>
                            <p class="muted small">"Authorize only if you just ran kraft login yourself."</p>
                            <form method="post" action="/account/tokens/cli" class="form">
                                <input type="hidden" name="callback" value=get("callback") />
                                <input type="hidden" name="state" value=get("state") />
                                <input type="hidden" name="name" value=get("name") />
                                <button type="submit">"Authorize"</button>
                                " "<a href="/">"Cancel"</a>
                            </form>
                        </section>
                    }),
                }
            })}
        </Suspense>
    }
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
