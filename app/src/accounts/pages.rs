//! Sign-up, sign-in, the account page and the farewell page. Every form is a plain HTML form that
//! works without JavaScript (the server keeps its outcome for the next page) and is enhanced by
//! Leptos when the WebAssembly bundle is running.

use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::{Redirect, A};

use crate::accounts::api::*;
use crate::error::ApiError;
use crate::forms::{refresh_viewer_on_success, Field, FormAlert, FormState};
use crate::layout::ScrollRegion;

/// Bumped whenever who is signed in may have changed; everything that shows the viewer tracks it.
#[derive(Clone, Copy)]
pub struct AuthVersion(pub RwSignal<u64>);

impl AuthVersion {
    pub fn provide() {
        provide_context(AuthVersion(RwSignal::new(0)));
    }

    pub fn get() -> RwSignal<u64> {
        use_context::<AuthVersion>().map(|v| v.0).unwrap_or_else(|| RwSignal::new(0))
    }
}

/// Who is looking and how this KRaft signs people in, read once for a page (one function for
/// every page that needs it: one copy in the browser bundle).
pub fn viewer_once() -> crate::data::Data<Result<Viewer, ApiError>> {
    crate::data::data(|| (), |_| get_viewer())
}

/// The flash a plain form post left for this page, read once when the page is rendered.
pub fn flash_resource() -> crate::data::Data<Option<Flash>> {
    // Blocking: the response waits for it, so the flash is in the first HTML.
    Resource::<_, crate::data::Json>::new_with_options(
        || (),
        |_| async { take_flash().await.ok().flatten() },
        true,
    )
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let action = ServerAction::<Register>::new();
    refresh_viewer_on_success(action.value().into(), AuthVersion::get());
    let flash = flash_resource();
    let viewer = viewer_once();

    view! {
        <h1>"Create your account"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                let viewer = viewer.await.ok();
                let setup_pending = viewer.as_ref().is_some_and(|v| v.setup_pending);
                let signup = viewer.as_ref().map(|v| v.signup.clone()).unwrap_or_else(|| "open".into());
                let success = if signup == "approval" { crate::accounts::api::AWAITING_APPROVAL } else { "Welcome to KRaft!" };
                let state = FormState::new("register", action.value().into(), flash, success);
                // Single sign-on only; or a closed KRaft (which still lets its first admin in,
                // with the setup token). One shape of notice for both keeps the bundle small.
                let sso_only = viewer.as_ref().filter(|v| !v.password_sign_in).and_then(|v| v.sso.clone());
                if sso_only.is_some() || (signup == "closed" && !setup_pending) {
                    let text = match &sso_only {
                        Some(name) => format!("Accounts on this KRaft are made by signing in with {name}. "),
                        None => "Sign-up is closed on this KRaft. Ask an admin for an account.".to_owned(),
                    };
                    let link = sso_only.map(|name| view! { <a rel="external" href="/auth/oidc/start">"Sign in with " {name}</a> });
                    return Either::Left(view! { <p class="notice" role="status">{text}{link}</p> });
                }
                Either::Right(view! {
                    <ActionForm action=action attr:class="form" attr:aria-label="Create account">
                        {(signup == "approval").then(|| view! {
                            <p class="notice" role="status">"New accounts on this KRaft wait for an admin's approval."</p>
                        })}
                        <FormAlert state=state.clone() />
                        <Field state=state.clone() name="email" label="Email" kind="email" autocomplete="email" />
                        <Field
                            state=state.clone()
                            name="username"
                            label="Username"
                            autocomplete="username"
                            hint="3–32 characters: lowercase letters, digits and hyphens, starting with a letter. It appears in your clusters' addresses."
                        />
                        <Field
                            state=state.clone()
                            name="password"
                            label="Password"
                            kind="password"
                            autocomplete="new-password"
                            hint="At least 12 characters."
                        />
                        <Field
                            state=state.clone()
                            name="password_confirm"
                            label="Repeat the password"
                            kind="password"
                            autocomplete="new-password"
                        />
                        {(signup == "invite")
                            .then(|| {
                                view! {
                                    <Field
                                        state=state.clone()
                                        name="invite"
                                        label="Invite code"
                                        autocomplete="off"
                                        hint="Sign-up on this KRaft needs an invite code from an admin."
                                    />
                                }
                            })}
                        {setup_pending
                            .then(|| {
                                view! {
                                    <Field
                                        state=state.clone()
                                        name="setup_token"
                                        label="Setup token (first admin only)"
                                        autocomplete="off"
                                        hint="This KRaft has no admin yet. The setup token printed in the server's log makes this account its admin; leave it empty for a normal account."
                                    />
                                }
                            })}
                        <button type="submit" disabled=move || action.pending().get()>
                            "Create account"
                        </button>
                        <p class="aside">"Already have an account? " <A href="/login">"Sign in"</A></p>
                    </ActionForm>
                })
            })}
        </Suspense>
    }
}

/// Where single sign-on starts, coming back to `next` (a path on this site) once signed in.
fn sso_start(next: &str) -> String {
    if next.is_empty() {
        return "/auth/oidc/start".into();
    }
    let mut url = String::from("/auth/oidc/start?next=");
    for byte in next.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    // Where to go after signing in (a workshop's join link, say); the server takes only a path
    // on this site.
    let query = leptos_router::hooks::use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    refresh_viewer_on_success(action.value().into(), AuthVersion::get());
    let flash = flash_resource();
    let viewer = viewer_once();

    view! {
        <h1>"Sign in"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let state = FormState::new("login", action.value().into(), flash.await, "Signed in.");
                let viewer = viewer.await.ok();
                let password = viewer.as_ref().is_none_or(|v| v.password_sign_in);
                let sso = viewer.and_then(|v| v.sso).map(|name| view! {
                    // A server route, not a page of this app: the router must let the browser go.
                    <p><a class="button" rel="external" href=sso_start(&next())>"Sign in with " {name}</a></p>
                });
                view! {
                    {sso}
                    // Hidden rather than left out when only single sign-on is on: one shape of
                    // page either way keeps the bundle small.
                    <ActionForm action=action attr:class="form" attr:aria-label="Sign in" attr:hidden=!password>
                        <FormAlert state=state.clone() />
                        <input type="hidden" name="next" value=next() />
                        <Field
                            state=state.clone()
                            name="identifier"
                            label="Email or username"
                            autocomplete="username"
                        />
                        <Field
                            state=state.clone()
                            name="password"
                            label="Password"
                            kind="password"
                            autocomplete="current-password"
                        />
                        <button type="submit" disabled=move || action.pending().get()>
                            "Sign in"
                        </button>
                        <p class="aside">"New here? " <A href="/register">"Create an account"</A></p>
                    </ActionForm>
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let auth = AuthVersion::get();
    let password = ServerAction::<ChangePassword>::new();
    let revoke = ServerAction::<RevokeSession>::new();
    let revoke_others = ServerAction::<RevokeOtherSessions>::new();
    let delete = ServerAction::<DeleteAccount>::new();
    let flash = flash_resource();
    let overview = crate::data::data(
        move || {
            (
                auth.get(),
                password.version().get(),
                revoke.version().get(),
                revoke_others.version().get(),
            )
        },
        |_| get_account_overview(),
    );

    view! {
        <Suspense fallback=|| view! { <p>"Loading your account…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match overview.await {
                    Err(ApiError::Unauthenticated) => Either::Left(view! { <Redirect path="/login" /> }.into_any()),
                    Err(error) => Either::Left(view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()),
                    Ok(overview) => {
                        let password_state = FormState::new(
                            "password",
                            password.value().into(),
                            flash.clone(),
                            "Your password was changed. Other sessions were signed out.",
                        );
                        let sessions_state = FormState::new("sessions", revoke.value().into(), flash.clone(), "Signed out.")
                            .or_from(revoke_others.value().into());
                        let tokens_state = FormState::posted("api-tokens", flash.clone(), "Done.");
                        let delete_state = FormState::new("delete", delete.value().into(), flash, "Deleted.");
                        Either::Right(view! {
                            <h1>"Your account"</h1>
                            <Details user=overview.user.clone() />
                            <section aria-labelledby="password-heading" class="card">
                                <h2 id="password-heading">"Change password"</h2>
                                <ActionForm action=password attr:class="form" attr:aria-label="Change password">
                                    <FormAlert state=password_state.clone() />
                                    <Field state=password_state.clone() name="current_password" label="Current password" kind="password" autocomplete="current-password" />
                                    <Field state=password_state.clone() name="new_password" label="New password" kind="password" autocomplete="new-password" hint="At least 12 characters." />
                                    <Field state=password_state.clone() name="new_password_confirm" label="Repeat the new password" kind="password" autocomplete="new-password" />
                                    <button type="submit" disabled=move || password.pending().get()>"Change password"</button>
                                </ActionForm>
                            </section>
                            <Sessions sessions=overview.sessions.clone() state=sessions_state revoke revoke_others />
                            <crate::accounts::tokens::ApiTokens tokens=overview.tokens.clone() state=tokens_state />
                            <Activity events=overview.events.clone() />
                            <section aria-labelledby="delete-heading" class="card danger">
                                <h2 id="delete-heading">"Delete account"</h2>
                                <p>
                                    "This deletes your account, "<strong>"every cluster you own"</strong>
                                    " and all their data. It cannot be undone."
                                </p>
                                <ActionForm action=delete attr:class="form" attr:aria-label="Delete account">
                                    <FormAlert state=delete_state.clone() />
                                    <Field state=delete_state.clone() name="password" label="Your password" kind="password" autocomplete="current-password" />
                                    <Field
                                        state=delete_state.clone()
                                        name="confirm_username"
                                        label=format!("Type your username ({}) to confirm", overview.user.username)
                                        autocomplete="off"
                                    />
                                    <button type="submit" class="danger" disabled=move || delete.pending().get()>
                                        "Delete my account and all my clusters"
                                    </button>
                                </ActionForm>
                            </section>
                        }.into_any())
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Details(user: UserView) -> impl IntoView {
    view! {
        <section aria-labelledby="details-heading" class="card">
            <h2 id="details-heading">"Details"</h2>
            <dl class="details" aria-label="Account details">
                <dt>"Username"</dt>
                <dd>{user.username}</dd>
                <dt>"Email"</dt>
                <dd>{user.email}</dd>
                <dt>"Role"</dt>
                <dd>{if user.admin { "Admin" } else { "User" }}</dd>
                <dt>"Member since"</dt>
                <dd><time datetime=user.created_at.clone()>{short_time(&user.created_at)}</time></dd>
            </dl>
        </section>
    }
}

#[component]
fn Sessions(
    sessions: Vec<SessionView>,
    state: FormState,
    revoke: ServerAction<RevokeSession>,
    revoke_others: ServerAction<RevokeOtherSessions>,
) -> impl IntoView {
    let others = sessions.iter().filter(|s| !s.current).count();
    view! {
        <section aria-labelledby="sessions-heading" class="card">
            <h2 id="sessions-heading">"Active sessions"</h2>
            <FormAlert state=state />
            <ScrollRegion label="Active sessions">
                <table class="table" aria-labelledby="sessions-heading">
                    <thead>
                        <tr>
                            <th scope="col">"Device"</th>
                            <th scope="col">"Address"</th>
                            <th scope="col">"Signed in"</th>
                            <th scope="col">"Last seen"</th>
                            <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        {sessions
                            .into_iter()
                            .map(|s| {
                                let device = s.user_agent.clone().unwrap_or_else(|| "Unknown device".into());
                                view! {
                                    <tr>
                                        <td>{device}</td>
                                        <td>{s.client_addr.clone().unwrap_or_default()}</td>
                                        <td>{short_time(&s.created_at)}</td>
                                        <td>{short_time(&s.last_seen_at)}</td>
                                        <td>
                                            {if s.current {
                                                Either::Left(view! { <span class="badge">"This session"</span> })
                                            } else {
                                                Either::Right(view! {
                                                    <ActionForm action=revoke attr:class="inline">
                                                        <input type="hidden" name="id" value=s.id.clone() />
                                                        <button type="submit" class="secondary">"Sign out"</button>
                                                    </ActionForm>
                                                })
                                            }}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </ScrollRegion>
            {(others > 0)
                .then(|| {
                    view! {
                        <ActionForm action=revoke_others attr:class="inline">
                            <button type="submit" class="secondary">"Sign out everywhere else"</button>
                        </ActionForm>
                    }
                })}
        </section>
    }
}

#[component]
fn Activity(events: Vec<AuditView>) -> impl IntoView {
    view! {
        <section aria-labelledby="activity-heading" class="card">
            <h2 id="activity-heading">"Recent activity"</h2>
            <ul class="activity" aria-labelledby="activity-heading">
                {events
                    .into_iter()
                    .map(|e| {
                        view! {
                            <li>
                                <time datetime=e.occurred_at.clone()>{short_time(&e.occurred_at)}</time>
                                " "
                                <span class="action">{describe(&e.action).to_owned()}</span>
                                {e.target.map(|t| format!(" · {t}"))}
                                {e.client_addr.map(|a| format!(" · from {a}"))}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

#[component]
pub fn GoodbyePage() -> impl IntoView {
    view! {
        <h1>"Your account was deleted"</h1>
        <p>"Your account, your clusters and their data are gone. Thank you for using KRaft."</p>
        <p><A href="/">"Back to the start page"</A></p>
    }
}

/// The account's own words for an audit action.
fn describe(action: &str) -> &str {
    match action {
        "account.registered" => "Account created",
        "login.succeeded" => "Signed in",
        "login.failed" => "Failed sign-in attempt",
        "logout" => "Signed out",
        "password.changed" => "Password changed",
        "session.revoked" => "Signed out a session",
        "sessions.revoked_others" => "Signed out all other sessions",
        "invite.created" => "Invite code created",
        "identity.linked" => "Single sign-on linked",
        "account.groups_applied" => "Role set from your provider's groups",
        other => other,
    }
}

/// "2026-11-22 14:03 UTC" from an RFC 3339 time; the raw text if it does not parse.
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(0..10), rfc3339.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => rfc3339.to_owned(),
    }
}
