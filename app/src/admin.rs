//! The admin's pages beyond the cluster list: every account with its clusters, the limits every
//! tenant gets, the sign-up mode, and invite codes.

use leptos::prelude::*;
use leptos_router::components::{Redirect, A};
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, meta, platform, require_admin, respond, Form};
use crate::error::ApiError;
use crate::layout::ScrollRegion;

/// One account as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserRow {
    pub username: String,
    pub email: String,
    pub admin: bool,
    /// RFC 3339.
    pub created_at: String,
    pub clusters: usize,
    /// Workshop seats they may give out (0: not an organizer).
    pub organizer_seats: i32,
    /// Disabled by an admin: cannot sign in; sessions and kubeconfigs refused.
    pub disabled: bool,
    /// Signed up in approval mode; not approved yet.
    pub awaiting_approval: bool,
    /// The row is the admin looking at it (no actions on oneself here).
    pub you: bool,
    /// How many clusters they may have (their own limit, or the platform's).
    pub max_clusters: usize,
}

/// What every tenant may have, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformLimits {
    /// open, invite or closed.
    pub signup: String,
    pub max_clusters: usize,
    pub max_servers: i32,
    pub max_agents: i32,
    pub max_storage_gi: i32,
    pub tenant_cpu: String,
    pub tenant_memory: String,
    pub tenant_storage: String,
    pub tenant_pods: String,
    pub pod_security: String,
}

/// One setting an admin may change while KRaft runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRow {
    pub key: String,
    /// In effect now.
    pub value: String,
    /// As the environment configured it.
    pub configured: String,
    /// An admin changed it.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOverview {
    pub users: Vec<AdminUserRow>,
    pub limits: PlatformLimits,
    pub settings: Vec<SettingRow>,
}

#[server(prefix = "/api", endpoint = "admin/users")]
pub async fn admin_users() -> Result<AdminOverview, ApiError> {
    answer(async {
        let current = require_admin().await?;
        let platform = platform()?;
        let clusters = platform.clusters();
        let rows = clusters.list_all().await?;
        let users = platform.accounts().list_users().await?;
        let settings = clusters.settings();
        let own = clusters.user_limits().await.map_err(platform::clusters::ClusterError::from)?;
        let signup = platform.accounts().signup_mode().as_str();
        Ok(AdminOverview {
            users: users
                .into_iter()
                .map(|u| AdminUserRow {
                    max_clusters: own
                        .get(&u.id)
                        .and_then(|l| l.max_clusters)
                        .unwrap_or(settings.max_clusters),
                    clusters: rows.iter().filter(|r| r.owner_id == Some(u.id)).count(),
                    admin: u.role == platform::accounts::Role::Admin,
                    organizer_seats: u.organizer_seats,
                    disabled: u.disabled,
                    awaiting_approval: u.awaiting_approval,
                    you: u.id == current.user.id,
                    created_at: u.created_at.to_rfc3339(),
                    username: u.username,
                    email: u.email,
                })
                .collect(),
            limits: PlatformLimits {
                signup: signup.to_owned(),
                max_clusters: settings.max_clusters,
                max_servers: settings.max_servers,
                max_agents: settings.max_agents,
                max_storage_gi: settings.max_storage_gi,
                tenant_cpu: settings.tenant.cpu.clone(),
                tenant_memory: settings.tenant.memory.clone(),
                tenant_storage: settings.tenant.storage.clone(),
                tenant_pods: settings.tenant.pods.clone(),
                pod_security: settings.tenant.pod_security.clone(),
            },
            settings: platform
                .settings()
                .view()
                .into_iter()
                .map(|v| SettingRow {
                    key: v.key.to_owned(),
                    value: v.value,
                    configured: v.configured,
                    changed: v.changed,
                })
                .collect(),
        })
    })
    .await
}

/// Saves the platform settings form: every field at once; an empty one goes back to what KRaft
/// was started with.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "admin/settings")]
pub async fn save_settings(
    #[server(default)] signup_mode: String,
    #[server(default)] max_clusters: String,
    #[server(default)] max_servers: String,
    #[server(default)] max_agents: String,
    #[server(default)] max_storage_gi: String,
    #[server(default)] versions: String,
    #[server(default)] modes: String,
    #[server(default)] tenant_cpu: String,
    #[server(default)] tenant_memory: String,
    #[server(default)] tenant_storage: String,
    #[server(default)] idle_expiry_hours: String,
) -> Result<(), ApiError> {
    let input = platform::settings::SettingsInput {
        signup_mode,
        max_clusters,
        max_servers,
        max_agents,
        max_storage_gi,
        versions,
        modes,
        tenant_cpu,
        tenant_memory,
        tenant_storage,
        idle_expiry_hours,
    };
    let mut form = Form::new("admin-settings")
        .notice("Saved: every replica applies the settings within a few seconds.");
    for (name, value) in [
        ("signup_mode", &input.signup_mode),
        ("max_clusters", &input.max_clusters),
        ("max_servers", &input.max_servers),
        ("max_agents", &input.max_agents),
        ("max_storage_gi", &input.max_storage_gi),
        ("versions", &input.versions),
        ("modes", &input.modes),
        ("tenant_cpu", &input.tenant_cpu),
        ("tenant_memory", &input.tenant_memory),
        ("tenant_storage", &input.tenant_storage),
        ("idle_expiry_hours", &input.idle_expiry_hours),
    ] {
        form = form.keep(name, value);
    }
    respond(form, async {
        let current = require_admin().await?;
        let meta = meta().await;
        platform()?.settings().update(&current.user, &input, meta.client_addr.as_deref()).await?;
        Ok(())
    })
    .await
}

/// A setting's form field: its name and label.
fn setting_field(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "signup_mode" => ("signup_mode", "Sign-up (open, invite, approval, closed)"),
        "max_clusters" => ("max_clusters", "Clusters per user"),
        "max_servers" => ("max_servers", "Servers per cluster (1 or 3)"),
        "max_agents" => ("max_agents", "Agents per cluster"),
        "max_storage_gi" => ("max_storage_gi", "Volume size per server, GiB"),
        "versions" => ("versions", "K3s versions offered (the first is the default)"),
        "modes" => ("modes", "Modes offered (shared, virtual)"),
        "tenant_cpu" => ("tenant_cpu", "CPU per cluster namespace"),
        "tenant_memory" => ("tenant_memory", "Memory per cluster namespace"),
        "tenant_storage" => ("tenant_storage", "Storage per cluster namespace"),
        "idle_expiry_hours" => ("idle_expiry_hours", "Delete idle clusters after (hours, or off)"),
        _ => return None,
    })
}

/// Issues a single-use invite code, valid for 7 days. The code is shown once; only its hash is
/// kept.
#[server(prefix = "/api", endpoint = "admin/invite")]
pub async fn issue_invite() -> Result<String, ApiError> {
    answer(async {
        let current = require_admin().await?;
        let platform = platform()?;
        let code = platform
            .accounts()
            .create_invite(Some(current.user.id), std::time::Duration::from_secs(7 * 86_400))
            .await?;
        Ok(code)
    })
    .await
}

/// Disables (`disabled` = "true") or enables an account.
#[server(prefix = "/api", endpoint = "admin/users/disabled")]
pub async fn set_user_disabled(username: String, disabled: String) -> Result<(), ApiError> {
    let done = if disabled == "true" {
        "Disabled: its sessions ended; it cannot sign in, and its API tokens and kubeconfigs are refused."
    } else {
        "Enabled: it can sign in again."
    };
    respond(Form::new("admin-users").notice(done), async {
        let current = require_admin().await?;
        let meta = meta().await;
        let platform = platform()?;
        let user = platform
            .accounts()
            .set_disabled(&current.user, &username, disabled == "true", &meta)
            .await?;
        // At once on this replica; the others look again within a few seconds.
        platform.access().api_tokens().forget_user(user.id);
        Ok(())
    })
    .await
}

/// Approves an account that signed up in approval mode.
#[server(prefix = "/api", endpoint = "admin/users/approve")]
pub async fn approve_user(username: String) -> Result<(), ApiError> {
    respond(Form::new("admin-users").notice("Approved: the account can sign in."), async {
        let current = require_admin().await?;
        let meta = meta().await;
        platform()?.accounts().approve(&current.user, &username, &meta).await?;
        Ok(())
    })
    .await
}

/// Deletes an account and every cluster it has, as its owner could.
#[server(prefix = "/api", endpoint = "admin/users/delete")]
pub async fn delete_user(username: String, confirm_username: String) -> Result<(), ApiError> {
    let form =
        Form::new("admin-users").notice("Deleted: its clusters are being removed from the host.");
    respond(form, async {
        let current = require_admin().await?;
        let meta = meta().await;
        platform()?
            .delete_account_as_admin(&current.user, &username, &confirm_username, &meta)
            .await?;
        Ok(())
    })
    .await
}

/// Links between the admin pages.
#[component]
pub fn AdminTabs() -> impl IntoView {
    view! {
        <nav class="tabs" aria-label="Admin">
            <A href="/admin/users">"Users"</A>
            <A href="/admin/clusters">"All clusters"</A>
            // Rendered by the server and kept live without WebAssembly: the router lets it go.
            <a href="/admin/capacity" rel="external">"Capacity"</a>
        </nav>
    }
}

#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let overview = crate::data::data(|| (), |_| admin_users());
    let invite = ServerAction::<IssueInvite>::new();
    let flash = crate::accounts::pages::flash_resource();
    view! {
        <h1>"Users and limits"</h1>
        <AdminTabs />
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match overview.await {
                    Err(ApiError::Unauthenticated) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(ApiError::Forbidden) => view! { <p class="alert error" role="alert">"Only admins can see this page."</p> }.into_any(),
                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(overview) => {
                        let limits = overview.limits.clone();
                        let signup_hint = match limits.signup.as_str() {
                            "open" => "Anyone can create an account.",
                            "invite" => "A new account needs an invite code from an admin.",
                            "approval" => "Anyone can ask for an account; it waits for an admin's approval below.",
                            _ => "Nobody can create an account; admins add users with `kraft admin create-user`.",
                        };
                        let state = crate::forms::FormState::posted("admin-users", flash.clone(), "Done.");
                        let settings_state = crate::forms::FormState::posted("admin-settings", flash.clone(), "Saved.");
                        view! {
                            <crate::forms::FormAlert state=state />
                            <section class="card" aria-labelledby="users-heading">
                                <h2 id="users-heading">{format!("Accounts ({})", overview.users.len())}</h2>
                                <ScrollRegion label="Accounts">
                                    <table class="table" aria-label="Accounts">
                                        <thead><tr><th scope="col">"Username"</th><th scope="col">"Email"</th><th scope="col">"Role"</th><th scope="col">"Clusters"</th><th scope="col">"Workshop seats"</th><th scope="col">"Created"</th><th scope="col">"Actions"</th></tr></thead>
                                        <tbody>
                                            {overview.users.into_iter().map(|u| view! {
                                                <tr data-user=u.username.clone() data-disabled=u.disabled.to_string()>
                                                    <td>{u.username.clone()}{u.disabled.then(|| view! { " "<span class="phase">{if u.awaiting_approval { "awaiting approval" } else { "disabled" }}</span> })}</td>
                                                    <td>{u.email}</td>
                                                    <td>{if u.admin { "admin" } else { "user" }}</td>
                                                    <td>{format!("{} of {}", u.clusters, u.max_clusters)}</td>
                                                    <td>{u.organizer_seats}</td>
                                                    <td>{u.created_at.get(0..10).unwrap_or(&u.created_at).to_owned()}</td>
                                                    <td>{(!u.you).then(|| {
                                                        let (name_a, name_b, name_c) = (u.username.clone(), u.username.clone(), u.username.clone());
                                                        view! {
                                                            {if u.awaiting_approval {
                                                                leptos::either::Either::Left(view! {
                                                                    <form method="post" action="/api/admin/users/approve" class="inline-form">
                                                                        <input type="hidden" name="username" value=name_a.clone() />
                                                                        <button type="submit" aria-label=format!("Approve {name_a}")>"Approve"</button>
                                                                    </form>
                                                                })
                                                            } else {
                                                                leptos::either::Either::Right(view! {
                                                                    <form method="post" action="/api/admin/users/disabled" class="inline-form">
                                                                        <input type="hidden" name="username" value=name_a.clone() />
                                                                        <input type="hidden" name="disabled" value=if u.disabled { "false" } else { "true" } />
                                                                        <button type="submit" aria-label=format!("{} {name_a}", if u.disabled { "Enable" } else { "Disable" })>{if u.disabled { "Enable" } else { "Disable" }}</button>
                                                                    </form>
                                                                })
                                                            }}
                                                            <details class="danger">
                                                                <summary aria-label=format!("Delete {name_b}")>"Delete"</summary>
                                                                <form method="post" action="/api/admin/users/delete" class="inline-form">
                                                                    <input type="hidden" name="username" value=name_b.clone() />
                                                                    <label for=format!("confirm-{name_c}")>{format!("Type {name_c} to delete the account and its clusters")}</label>
                                                                    <input id=format!("confirm-{name_c}") name="confirm_username" autocomplete="off" />
                                                                    <button type="submit" class="danger">"Delete"</button>
                                                                </form>
                                                            </details>
                                                        }
                                                    })}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </ScrollRegion>
                            </section>
                            <section class="card" aria-labelledby="organizers-heading">
                                <h2 id="organizers-heading">"Workshop organizers"</h2>
                                <p>"An organizer runs workshops: a join link, a cluster for every attendee, cleanup at the end. Give a user a seat allowance to make them one."</p>
                                <crate::workshops::pages::OrganizerSeatsForm flash=flash.clone() />
                            </section>
                            <p class="muted small">"Limits of one account: on the " <a href="/admin/capacity" rel="external">"Capacity"</a> " page."</p>
                            <section class="card" aria-labelledby="signup-heading">
                                <h2 id="signup-heading">"Sign-up"</h2>
                                <p>"Mode: " <strong data-signup=limits.signup.clone()>{limits.signup.clone()}</strong>". " {signup_hint}</p>
                                <p class="muted small">"Change it under Platform settings below."</p>
                                <ActionForm action=invite attr:class="inline-form" attr:aria-label="Issue an invite code">
                                    <button type="submit" disabled=move || invite.pending().get()>"Issue an invite code"</button>
                                </ActionForm>
                                {move || invite.value().get().map(|answer| match answer {
                                    Ok(code) => view! {
                                        <p class="alert ok" role="status">
                                            "Invite code (single use, valid 7 days; shown only now): "
                                            <code data-invite>{code}</code>
                                        </p>
                                    }.into_any(),
                                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                                })}
                            </section>
                            <section class="card" aria-labelledby="settings-heading">
                                <h2 id="settings-heading">"Platform settings"</h2>
                                <p class="muted small">{format!("Every replica applies a change within seconds. An empty field uses the value KRaft was started with. Each cluster namespace also gets {} pods at most and pod security {}.", limits.tenant_pods, limits.pod_security)}</p>
                                <form method="post" action="/api/admin/settings" class="form" aria-label="Platform settings">
                                    <crate::forms::FormAlert state=settings_state.clone() />
                                    {overview.settings.into_iter().filter_map(|row| {
                                        let (name, label) = setting_field(&row.key)?;
                                        let now = format!("Now {}; configured {}.", row.value, row.configured);
                                        Some(view! {
                                            <crate::forms::Field state=settings_state.clone() name=name label=label autocomplete="off" initial=if row.changed { row.value } else { String::new() } />
                                            <p class="muted small" data-setting=name>{now}</p>
                                        })
                                    }).collect_view()}
                                    <button type="submit">"Save settings"</button>
                                </form>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
