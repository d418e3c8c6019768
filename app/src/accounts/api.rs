//! Account server functions and the types they send. Each is a public endpoint: it starts with its
//! guard, calls one platform method and converts the result.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, internal, meta, platform, require_user, respond, session, Form};
use crate::error::ApiError;

/// The signed-in user as the UI shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub username: String,
    pub email: String,
    pub admin: bool,
    /// May organize workshops (an admin, or a seat allowance).
    pub organizer: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// Who is looking, and whether they could sign up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub user: Option<UserView>,
    /// "open", "invite" or "closed".
    pub signup: String,
    /// Clusters run on the built-in simulated host (zero-config mode): the UI says so.
    pub simulated_host: bool,
    /// No admin exists yet: the sign-up form asks for the setup token from the server's log.
    pub setup_pending: bool,
    /// Single sign-on's provider, as its button names it ("Sign in with …"), when configured.
    pub sso: Option<String>,
    /// Whether the password forms (sign-in, sign-up) are offered.
    pub password_sign_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub occurred_at: String,
    pub action: String,
    pub target: Option<String>,
    pub client_addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOverview {
    pub user: UserView,
    pub sessions: Vec<SessionView>,
    pub events: Vec<AuditView>,
    pub tokens: Vec<crate::accounts::tokens::ApiTokenView>,
}

/// The outcome of a form posted without JavaScript, kept in the session for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub form: String,
    pub error: Option<ApiError>,
    pub notice: Option<String>,
    /// What the user typed (never passwords), so a failed form loses nothing.
    pub values: Vec<(String, String)>,
}

impl Flash {
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

#[server(prefix = "/api", endpoint = "account/viewer")]
pub async fn get_viewer() -> Result<Viewer, ApiError> {
    answer(async {
        let platform = platform()?;
        let signup = platform.accounts().signup_mode().as_str();
        let user = match require_user().await {
            Ok(current) => Some(UserView::from(&current.user)),
            Err(ApiError::Unauthenticated) => None,
            Err(other) => return Err(other),
        };
        let simulated_host = platform.clusters().host().simulated();
        let setup_pending = user.is_none() && platform.accounts().awaiting_setup().await?;
        let accounts = platform.accounts();
        Ok(Viewer {
            user,
            signup: signup.to_owned(),
            simulated_host,
            setup_pending,
            sso: accounts.oidc().map(|oidc| oidc.settings().display_name.clone()),
            password_sign_in: accounts.password_sign_in(),
        })
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/flash")]
pub async fn take_flash() -> Result<Option<Flash>, ApiError> {
    answer(async { crate::api::ssr::take_flash() }).await
}

/// What a sign-up in approval mode is told.
pub const AWAITING_APPROVAL: &str =
    "Thanks! Your account waits for an admin's approval: sign in once it is approved.";

#[server(prefix = "/api", endpoint = "account/register")]
pub async fn register(
    email: String,
    username: String,
    password: String,
    password_confirm: String,
    #[server(default)] invite: Option<String>,
    #[server(default)] setup_token: Option<String>,
    #[server(default)] workshop: Option<String>,
) -> Result<(), ApiError> {
    let mut form = Form::new("register")
        .keep("email", &email)
        .keep("username", &username)
        .keep_opt("invite", &invite);
    let approval = platform()
        .map(|p| p.accounts().signup_mode() == platform::accounts::SignupMode::Approval)
        .unwrap_or(false);
    if approval {
        form = form.notice(AWAITING_APPROVAL);
    }
    respond(form, async {
        let meta = meta().await;
        let input = platform::accounts::RegisterInput {
            email,
            username,
            password,
            password_confirm,
            invite,
            setup_token,
            workshop: workshop.clone(),
        };
        let platform = platform()?;
        let user = platform.accounts().register(input, &meta).await?;
        if user.awaiting_approval {
            // No session until an admin approves it.
            leptos_axum::redirect("/login");
            return Ok(());
        }
        session()
            .await?
            .begin(user.id, meta.user_agent, meta.client_addr.clone())
            .await
            .map_err(internal)?;
        // Signed up through a workshop's link: straight to the new seat's cluster. If the seat
        // went meanwhile (full), the join page says why.
        match workshop.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => match platform.workshops().join(&user, key, meta.client_addr.as_deref()).await {
                Ok(cluster) => leptos_axum::redirect(&format!("/clusters/{cluster}")),
                Err(error) => {
                    tracing::info!(%error, "signed up through a workshop link but could not join");
                    leptos_axum::redirect(&crate::workshops::join_path(key));
                }
            },
            None => leptos_axum::redirect("/account"),
        }
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/login")]
pub async fn login(
    identifier: String,
    password: String,
    #[server(default)] next: Option<String>,
) -> Result<(), ApiError> {
    let form = Form::new("login").keep("identifier", &identifier);
    respond(form, async {
        let meta = meta().await;
        let user = platform()?.accounts().login(&identifier, &password, &meta).await?;
        session()
            .await?
            .begin(user.id, meta.user_agent, meta.client_addr)
            .await
            .map_err(internal)?;
        leptos_axum::redirect(next.as_deref().and_then(local_path).unwrap_or("/account"));
        Ok(())
    })
    .await
}

/// `path` if it is a path on this site (`/join/abc`), never another origin (`//evil.example`,
/// `/\evil.example`, `https://…`).
pub fn local_path(path: &str) -> Option<&str> {
    let path = path.trim();
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 512
        && path.chars().all(|c| c.is_ascii_graphic() && c != '\\');
    safe.then_some(path)
}

#[server(prefix = "/api", endpoint = "account/logout")]
pub async fn logout() -> Result<(), ApiError> {
    respond(Form::new("logout"), async {
        let user = require_user().await.ok().map(|current| current.user.id);
        platform()?.accounts().sign_out(&session().await?, user, &meta().await).await?;
        leptos_axum::redirect("/login");
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/overview")]
pub async fn get_account_overview() -> Result<AccountOverview, ApiError> {
    answer(async {
        let current = require_user().await?;
        let platform = platform()?;
        let accounts = platform.accounts();
        let keep = current.session.id_hash();
        let sessions = accounts.sessions(current.user.id, keep.as_deref()).await?;
        let events = accounts.audit_log(current.user.id, 50).await?;
        Ok(AccountOverview {
            user: UserView::from(&current.user),
            sessions: sessions.into_iter().map(SessionView::from).collect(),
            events: events.into_iter().map(AuditView::from).collect(),
            tokens: crate::accounts::tokens::token_views(
                platform.access().api_tokens().list(current.user.id).await?,
            ),
        })
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    new_password_confirm: String,
) -> Result<(), ApiError> {
    let form =
        Form::new("password").notice("Your password was changed. Other sessions were signed out.");
    respond(form, async {
        let current = require_user().await?;
        let keep = current.session.id_hash();
        platform()?
            .accounts()
            .change_password(
                current.user.id,
                &current_password,
                &new_password,
                &new_password_confirm,
                keep.as_deref(),
                &meta().await,
            )
            .await?;
        current.session.rotate().await.map_err(internal)?;
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/sessions/revoke")]
pub async fn revoke_session(id: String) -> Result<(), ApiError> {
    respond(Form::new("sessions").notice("The session was signed out."), async {
        let current = require_user().await?;
        let id = id.parse().map_err(|_| ApiError::NotFound)?;
        platform()?.accounts().revoke_session(current.user.id, id, &meta().await).await?;
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/sessions/revoke-others")]
pub async fn revoke_other_sessions() -> Result<u64, ApiError> {
    respond(Form::new("sessions").notice("All other sessions were signed out."), async {
        let current = require_user().await?;
        let keep = current.session.id_hash().ok_or(ApiError::Unauthenticated)?;
        Ok(platform()?
            .accounts()
            .revoke_other_sessions(current.user.id, &keep, &meta().await)
            .await?)
    })
    .await
}

#[server(prefix = "/api", endpoint = "account/delete")]
pub async fn delete_account(password: String, confirm_username: String) -> Result<(), ApiError> {
    let form = Form::new("delete").keep("confirm_username", &confirm_username);
    respond(form, async {
        let current = require_user().await?;
        platform()?
            .delete_account(current.user.id, &password, &confirm_username, &meta().await)
            .await?;
        current.session.end().await.map_err(internal)?;
        leptos_axum::redirect("/goodbye");
        Ok(())
    })
    .await
}
