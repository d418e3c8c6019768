//! The admin's capacity overview: the host's nodes (allocatable CPU and memory) against what
//! tenants hold (their clusters' quotas) and use, and every tenant at a glance.
//! - `GET /admin/capacity`: the page, rendered on the server (it works without JavaScript);
//! - `GET /admin/capacity.js`: a few lines that keep it live (no WebAssembly: the page needs no
//!   more than replacing its tables);
//! - `GET /ws/admin/capacity`: pushes the overview, already rendered, at every poll (one poll
//!   per metrics interval for any number of admins watching; none when nobody does);
//! - `POST /admin/capacity/limits`: one account's own limits over the platform's (a plain form:
//!   the page answers with the outcome, the typed values kept on an error).

use app::api::ssr::{ClientAddr, CurrentUser};
use app::error::ApiError;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures::StreamExt;
use platform::accounts::Role;
use platform::clusters::ClusterError;
use platform::host::capacity::{CapacityOverview, Held};
use platform::Platform;
use tokio_stream::wrappers::WatchStream;

use crate::live::{self, SessionGuard};
use crate::standalone::{escape, page_with_status};
use crate::startup::AppState;

fn cores(millicores: f64) -> String {
    format!("{:.2} cores", millicores / 1000.0)
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

fn share(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!(" ({:.0}%)", part * 100.0 / whole)
    } else {
        String::new()
    }
}

/// The overview's tables, as the page shows them and the socket sends them.
pub fn render(overview: &CapacityOverview) -> String {
    let mut html = String::new();
    if let Some(error) = &overview.error {
        html.push_str(&format!(
            "<p class=\"alert error\" role=\"alert\">The host did not answer: {}</p>",
            escape(error)
        ));
    }
    let (cpu, memory) = (overview.allocatable_cpu_millicores, overview.allocatable_memory_bytes);
    let held: &Held = &overview.held;
    if held.cpu_hard_millicores > cpu || held.memory_hard_bytes > memory {
        html.push_str(
            "<p class=\"notice\" role=\"status\">Tenants' quotas together promise more than the \
             host's ready nodes have: clusters may not all get what they are allowed.</p>",
        );
    }
    html.push_str(
        "<section class=\"card\" aria-labelledby=\"host-heading\"><h2 id=\"host-heading\">Host</h2>\
         <div class=\"scroll\"><table class=\"table\" aria-label=\"Host capacity\"><thead><tr>\
         <th scope=\"col\">Node</th><th scope=\"col\">Ready</th><th scope=\"col\">CPU</th>\
         <th scope=\"col\">Memory</th></tr></thead><tbody>",
    );
    for node in &overview.nodes {
        html.push_str(&format!(
            "<tr data-node=\"{name}\"><td>{name}</td><td>{ready}</td><td>{cpu}</td><td>{memory}</td></tr>",
            name = escape(&node.name),
            ready = if node.ready { "yes" } else { "no" },
            cpu = cores(node.cpu_millicores),
            memory = gib(node.memory_bytes),
        ));
    }
    html.push_str(&format!(
        "</tbody><tfoot>\
         <tr data-row=\"allocatable\"><th scope=\"row\">Allocatable (ready nodes)</th><td></td><td>{}</td><td>{}</td></tr>\
         <tr data-row=\"held\"><th scope=\"row\">Tenants may request (quotas)</th><td></td><td>{}{}</td><td>{}{}</td></tr>\
         <tr data-row=\"used\"><th scope=\"row\">Tenants request now</th><td></td><td>{}{}</td><td>{}{}</td></tr>\
         </tfoot></table></div></section>",
        cores(cpu),
        gib(memory),
        cores(held.cpu_hard_millicores),
        share(held.cpu_hard_millicores, cpu),
        gib(held.memory_hard_bytes),
        share(held.memory_hard_bytes, memory),
        cores(held.cpu_used_millicores),
        share(held.cpu_used_millicores, cpu),
        gib(held.memory_used_bytes),
        share(held.memory_used_bytes, memory),
    ));
    html.push_str(&format!(
        "<section class=\"card\" aria-labelledby=\"tenants-heading\"><h2 id=\"tenants-heading\">Tenants ({})</h2>",
        overview.tenants.len()
    ));
    if overview.tenants.is_empty() {
        html.push_str("<p>No clusters yet.</p></section>");
        return html;
    }
    html.push_str(
        "<div class=\"scroll\"><table class=\"table\" aria-label=\"Tenants\"><thead><tr>\
         <th scope=\"col\">User</th><th scope=\"col\">Clusters</th>\
         <th scope=\"col\">CPU requested / quota</th><th scope=\"col\">Memory requested / quota</th>\
         </tr></thead><tbody>",
    );
    for tenant in &overview.tenants {
        html.push_str(&format!(
            "<tr data-tenant=\"{name}\"><td>{name}</td><td>{clusters}</td><td>{} / {}</td><td>{} / {}</td></tr>",
            cores(tenant.held.cpu_used_millicores),
            cores(tenant.held.cpu_hard_millicores),
            gib(tenant.held.memory_used_bytes),
            gib(tenant.held.memory_hard_bytes),
            name = escape(&tenant.username),
            clusters = tenant.clusters,
        ));
    }
    html.push_str("</tbody></table></div></section>");
    html
}

/// What the limits form says after a post: the outcome, and the values to show again.
#[derive(Debug, Default, serde::Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    account: String,
    #[serde(default)]
    clusters: String,
    #[serde(default)]
    servers: String,
    #[serde(default)]
    agents: String,
    #[serde(default)]
    volume_gi: String,
}

fn limits_section(
    own: &[(String, String)],
    typed: &LimitsForm,
    outcome: Option<Result<String, Vec<(String, String)>>>,
) -> String {
    let mut html = String::from(
        "<section class=\"card\" aria-labelledby=\"limits-heading\"><h2 id=\"limits-heading\">Limits of one account</h2>\
         <p>Give one account more or less than the platform's limits. An empty field uses the platform's; all empty: the platform's again.</p>",
    );
    let mut field_errors: Vec<(String, String)> = Vec::new();
    match outcome {
        Some(Ok(done)) => {
            html.push_str(&format!("<p class=\"alert ok\" role=\"status\">{}</p>", escape(&done)))
        }
        Some(Err(errors)) => {
            html.push_str(
                "<div class=\"alert error\" role=\"alert\"><p>Nothing was changed:</p><ul>",
            );
            for (_, message) in &errors {
                html.push_str(&format!("<li>{}</li>", escape(message)));
            }
            html.push_str("</ul></div>");
            field_errors = errors;
        }
        None => {}
    }
    html.push_str("<form method=\"post\" action=\"/admin/capacity/limits\" class=\"form\" aria-label=\"Limits of one account\">");
    for (name, label, value, kind) in [
        ("account", "Account (username)", &typed.account, "text"),
        ("clusters", "Their clusters", &typed.clusters, "number"),
        ("servers", "Their servers per cluster (1 or 3)", &typed.servers, "number"),
        ("agents", "Their agents per cluster", &typed.agents, "number"),
        ("volume_gi", "Their volume size per server (GiB)", &typed.volume_gi, "number"),
    ] {
        let error = field_errors.iter().find(|(field, _)| field == name);
        html.push_str(&format!(
            "<div class=\"field\"><label for=\"limits-{name}\">{label}</label>\
             <input id=\"limits-{name}\" name=\"{name}\" type=\"{kind}\" value=\"{value}\" autocomplete=\"off\"{invalid}>{message}</div>",
            value = escape(value),
            invalid = if error.is_some() {
                format!(" aria-invalid=\"true\" aria-describedby=\"limits-{name}-error\"")
            } else {
                String::new()
            },
            message = error
                .map(|(_, m)| format!("<p class=\"field-error\" id=\"limits-{name}-error\">{}</p>", escape(m)))
                .unwrap_or_default(),
        ));
    }
    html.push_str("<button type=\"submit\">Set limits</button></form>");
    if !own.is_empty() {
        html.push_str("<h3>Accounts with limits of their own</h3><ul aria-label=\"Accounts with limits of their own\">");
        for (username, limits) in own {
            html.push_str(&format!(
                "<li data-own-limits=\"{u}\"><strong>{u}</strong>: {l}</li>",
                u = escape(username),
                l = escape(limits)
            ));
        }
        html.push_str("</ul>");
    }
    html.push_str("</section>");
    html
}

/// The page, with the limits form in the state a post left it.
async fn render_page(
    state: &AppState,
    status: StatusCode,
    typed: &LimitsForm,
    outcome: Option<Result<String, Vec<(String, String)>>>,
) -> Response {
    let clusters = state.platform.clusters();
    let overview = clusters.capacity().await;
    let names: std::collections::HashMap<_, _> = match state.platform.accounts().list_users().await
    {
        Ok(users) => users.into_iter().map(|u| (u.id, u.username)).collect(),
        Err(error) => {
            tracing::warn!(%error, "capacity page: cannot list users");
            Default::default()
        }
    };
    let mut own: Vec<(String, String)> = clusters
        .user_limits()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(id, limits)| Some((names.get(&id)?.clone(), limits.describe())))
        .collect();
    own.sort();
    let body = format!(
        "<nav class=\"tabs\" aria-label=\"Admin\"><a href=\"/admin/users\">Users</a> \
         <a href=\"/admin/clusters\">All clusters</a> <a href=\"/admin/capacity\" aria-current=\"page\">Capacity</a></nav>\
         <p class=\"muted small\"><span id=\"capacity-status\" role=\"status\">Updated at {at}</span>; \
         quotas count what pods request.</p>\
         <div id=\"capacity\">{tables}</div>{limits}<script src=\"/admin/capacity.js\" defer></script>",
        at = overview.at.format("%H:%M:%S UTC"),
        tables = render(&overview),
        limits = limits_section(&own, typed, outcome),
    );
    page_with_status(state, status, "Capacity and limits", &body)
}

/// The admin behind the request; anyone else is answered here: a visitor goes to sign in, a
/// tenant is told no.
fn admin_only(
    state: &AppState,
    current: Result<CurrentUser, ApiError>,
) -> Result<CurrentUser, Box<Response>> {
    match current {
        Ok(current) if current.user.role == Role::Admin => Ok(current),
        Ok(_) => Err(Box::new(page_with_status(
            state,
            StatusCode::FORBIDDEN,
            "Capacity and limits",
            "<p class=\"alert error\" role=\"alert\">Only admins can see this page.</p>",
        ))),
        Err(_) => Err(Box::new(Redirect::to("/login?next=/admin/capacity").into_response())),
    }
}

/// `GET /admin/capacity`.
pub async fn overview_page(
    State(state): State<AppState>,
    current: Result<CurrentUser, ApiError>,
) -> Response {
    if let Err(refused) = admin_only(&state, current) {
        return *refused;
    }
    render_page(&state, StatusCode::OK, &LimitsForm::default(), None).await
}

/// `POST /admin/capacity/limits`.
pub async fn set_limits(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    current: Result<CurrentUser, ApiError>,
    Form(form): Form<LimitsForm>,
) -> Response {
    let admin_user = match admin_only(&state, current) {
        Ok(current) => current.user,
        Err(refused) => return *refused,
    };
    let input = platform::clusters::limits::UserLimitsInput {
        max_clusters: form.clusters.clone(),
        max_servers: form.servers.clone(),
        max_agents: form.agents.clone(),
        max_storage_gi: form.volume_gi.clone(),
    };
    let set = state
        .platform
        .clusters()
        .set_user_limits(&admin_user, &form.account, &input, Some(&client.to_string()))
        .await;
    match set {
        Ok(limits) => {
            let done = format!(
                "{}: {} from its next create or change.",
                form.account.trim(),
                limits.describe()
            );
            render_page(&state, StatusCode::OK, &LimitsForm::default(), Some(Ok(done))).await
        }
        Err(ClusterError::Invalid(errors)) => {
            let errors = errors.into_iter().map(|e| (e.field.to_owned(), e.message)).collect();
            render_page(&state, StatusCode::UNPROCESSABLE_ENTITY, &form, Some(Err(errors))).await
        }
        Err(error) => {
            tracing::error!(%error, "setting an account's limits");
            let errors =
                vec![(String::new(), "Something went wrong on our side. Try again.".into())];
            render_page(&state, StatusCode::INTERNAL_SERVER_ERROR, &form, Some(Err(errors))).await
        }
    }
}

/// `GET /admin/capacity.js`.
pub async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

const SCRIPT: &str = r#"// Keeps KRaft's capacity page live: the server pushes the overview, already rendered.
(() => {
  const tables = document.getElementById('capacity');
  const status = document.getElementById('capacity-status');
  let delay = 1000;
  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws/admin/capacity`);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== 'capacity') return;
      delay = 1000;
      tables.innerHTML = message.html;
      status.textContent = `Live, updated at ${new Date(message.overview.at).toLocaleTimeString()}`;
    };
    socket.onclose = (event) => {
      if (event.code === 4401) {
        location.href = '/login?next=/admin/capacity';
        return;
      }
      status.textContent = 'Reconnecting…';
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
"#;

/// `GET /ws/admin/capacity`.
pub async fn live(
    State(platform): State<Platform>,
    current: CurrentUser,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if current.user.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let guard = SessionGuard::new(&platform, &current.session).await?.admin_only();
    let feed = WatchStream::new(platform.watch_capacity()).filter_map(|overview| async move {
        let overview = overview?;
        Some(live::json(&serde_json::json!({
            "type": "capacity",
            "overview": &*overview,
            "html": render(&overview),
        })))
    });
    Ok(live::serve("capacity", upgrade, guard, feed))
}
