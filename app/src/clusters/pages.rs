//! The clusters list, the create form and the detail page.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_router::components::{Redirect, A};
use leptos_router::hooks::use_params_map;

use crate::accounts::pages::flash_resource;
use crate::clusters::api::*;
use crate::clusters::live::{use_live_clusters, LiveClusters};
use crate::data::Shown;
use crate::error::ApiError;
use crate::forms::{Field, FormAlert, FormState};
use crate::layout::ScrollRegion;
use crate::logs::viewer::LogViewer;
use crate::metrics::charts::ClusterMetrics;
use crate::pages::not_found::NotFound;

/// A phase's badge class; the words are the host's.
fn phase_class(phase: ClusterPhase) -> &'static str {
    match phase {
        ClusterPhase::Ready => "phase ready",
        ClusterPhase::Degraded => "phase degraded",
        ClusterPhase::Failed => "phase failed",
        ClusterPhase::Deleting | ClusterPhase::Terminating => "phase deleting",
        ClusterPhase::Pending | ClusterPhase::Provisioning | ClusterPhase::Unknown => {
            "phase progress"
        }
    }
}

/// A phase as a coloured badge.
#[component]
pub fn PhaseBadge(phase: ClusterPhase) -> impl IntoView {
    view! { <span class=phase_class(phase)>{phase.as_str()}</span> }
}

fn age(created_at: &str) -> String {
    created_at
        .get(0..16)
        .map(|s| s.replace('T', " ") + " UTC")
        .unwrap_or_else(|| created_at.to_owned())
}

#[component]
pub fn ClustersPage() -> impl IntoView {
    let initial = crate::data::shown(|| (), |_| list_clusters());
    let live = use_live_clusters();
    view! {
        <div class="page-head">
            <h1>"Clusters"</h1>
            <A href="/clusters/new" attr:class="button">"Create cluster"</A>
        </div>
        <Suspense fallback=|| view! { <p>"Loading your clusters…"</p> }>
            {move || Suspend::new(async move {
                match initial.await {
                    Err(ApiError::Unauthenticated) => EitherOf3::A(view! { <Redirect path="/login" /> }),
                    Err(error) => EitherOf3::B(view! { <p class="alert error" role="alert">{error.to_string()}</p> }),
                    Ok(first) => EitherOf3::C(view! { <ClusterTable first live /> }),
                }
            })}
        </Suspense>
    }
}

/// The table's rows as HTML, the same on the server and in the browser. The list is rendered as
/// one string and set with `inner_html`: hydration leaves the server's rows as they are, so the
/// page does not carry the list a second time as JSON (see [`crate::data::LenOnly`]), and a server
/// renders it several times faster than a keyed `<For>` of components (one reactive owner and a
/// dozen views per row). In the browser the live list re-renders it; an unchanged list changes
/// nothing (tachys compares the strings).
pub fn cluster_rows_html(clusters: &[ClusterSummary]) -> String {
    let mut html = String::with_capacity(clusters.len() * 480);
    for cluster in clusters {
        html.push_str("<tr><td>");
        push_cluster_link(&mut html, cluster);
        html.push_str("</td><td>");
        push_phase_badge(&mut html, cluster.phase);
        if let Some(message) = &cluster.message {
            html.push_str("<div class=\"muted small\">");
            push_escaped(&mut html, message);
            html.push_str("</div>");
        }
        html.push_str("</td><td><code>");
        push_escaped(&mut html, cluster.endpoint.as_deref().unwrap_or("—"));
        html.push_str("</code></td><td>");
        html.push_str(&format!("{} server(s), {} agent(s)", cluster.servers, cluster.agents));
        html.push_str("</td><td>");
        push_escaped(&mut html, &cluster.version);
        html.push_str("</td><td>");
        push_escaped(&mut html, &age(&cluster.created_at));
        html.push_str("</td></tr>");
    }
    html
}

/// Appends `value` escaped for HTML text and for a double-quoted attribute value alike: `&`, `<`,
/// `>` and `"` become references. (Written here rather than taken from `html-escape`: the
/// browser bundle has no other use for that crate, and it cost about 800 bytes of gzip.)
fn push_escaped(html: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = rest.find(['&', '<', '>', '"']) {
        html.push_str(&rest[..at]);
        html.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&quot;",
        });
        rest = &rest[at + 1..];
    }
    html.push_str(rest);
}

/// A plain link to the cluster's page: the router takes over every same-origin `<a>` click.
fn push_cluster_link(html: &mut String, cluster: &ClusterSummary) {
    html.push_str("<a href=\"/clusters/");
    push_escaped(html, &cluster.id);
    html.push_str("\">");
    push_escaped(html, &cluster.name);
    html.push_str("</a>");
}

/// [`PhaseBadge`] as HTML.
fn push_phase_badge(html: &mut String, phase: ClusterPhase) {
    html.push_str("<span class=\"");
    html.push_str(phase_class(phase));
    html.push_str("\">");
    html.push_str(phase.as_str());
    html.push_str("</span>");
}

#[component]
fn ClusterTable(first: Shown<ClusterSummary>, live: LiveClusters) -> impl IntoView {
    let len = first.len;
    let count = move || live.clusters.with(|list| list.as_ref().map_or(len, Vec::len));
    // On the server and after a client-side navigation `first` has the list; where the page
    // hydrates it is empty, and the rows the server sent stay until the live list brings its own.
    let first = StoredValue::new(first.items);
    let body = NodeRef::<leptos::html::Tbody>::new();
    let rows = move || {
        #[cfg(feature = "hydrate")]
        browser::keep_focus(body);
        live.clusters.with(|list| match list {
            Some(list) => cluster_rows_html(list),
            None => first.with_value(|first| cluster_rows_html(first)),
        })
    };
    view! {
        <Show
            when=move || count() != 0
            fallback=|| view! {
                <div class="empty card">
                    <h2>"No clusters yet"</h2>
                    <p>"A cluster takes a few seconds to create. You get a kubeconfig for kubectl as soon as it is ready."</p>
                    <A href="/clusters/new" attr:class="button">"Create your first cluster"</A>
                </div>
            }
        >
            <ScrollRegion label="Your clusters">
                <table class="table clusters" aria-label="Your clusters">
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"API endpoint"</th>
                            <th scope="col">"Nodes"</th>
                            <th scope="col">"Version"</th>
                            <th scope="col">"Created"</th>
                        </tr>
                    </thead>
                    <tbody node_ref=body inner_html=rows></tbody>
                </table>
            </ScrollRegion>
        </Show>
    }
}

#[component]
pub fn CreateClusterPage() -> impl IntoView {
    let action = ServerAction::<CreateCluster>::new();
    let flash = flash_resource();
    let options = crate::data::data(|| (), |_| get_cluster_options());
    view! {
        <h1>"Create a cluster"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match options.await {
                    Err(ApiError::Unauthenticated) => Either::Left(view! { <Redirect path="/login" /> }.into_any()),
                    Err(error) => Either::Left(view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any()),
                    Ok(options) => {
                        let state = FormState::new("create-cluster", action.value().into(), flash, "Creating your cluster…");
                        let kept = |field: &str, default: &str| state.kept_value(field).unwrap_or_else(|| default.to_owned());
                        let mode = kept("mode", options.modes.first().map(|m| m.as_str()).unwrap_or("virtual"));
                        let version = kept("version", options.versions.first().map(String::as_str).unwrap_or(""));
                        let servers = kept("servers", "1");
                        let persistence = kept("persistence", "dynamic");
                        let servers_error = state.field_error("servers");
                        let mode_error = state.field_error("mode");
                        let version_error = state.field_error("version");
                        let persistence_error = state.field_error("persistence");
                        let sans_error = state.field_error("tls_sans");
                        Either::Right(view! {
                            <ActionForm action=action attr:class="form wide" attr:aria-label="Create cluster">
                                <FormAlert state=state.clone() />
                                <Field
                                    state=state.clone()
                                    name="name"
                                    label="Name"
                                    autocomplete="off"
                                    hint="Lowercase letters, digits and hyphens, starting with a letter; at most 30 characters."
                                />
                                <div class="field">
                                    <label for="field-mode">"Mode"</label>
                                    <select id="field-mode" name="mode" aria-describedby="field-mode-hint field-mode-error">
                                        {options.modes.iter().map(|m| {
                                            let selected = m.as_str() == mode;
                                            let label = match m {
                                                ClusterMode::Virtual => "virtual — k3s agents in pods",
                                                ClusterMode::Shared => "shared — workloads on the host's nodes",
                                                ClusterMode::Hcp => "hcp — hosted control plane, bring your own nodes",
                                            };
                                            view! { <option value=m.as_str() selected=selected>{label}</option> }
                                        }).collect_view()}
                                    </select>
                                    <p class="hint" id="field-mode-hint">"Agents apply to virtual clusters only."</p>
                                    <p class="field-error" id="field-mode-error">{move || mode_error.get()}</p>
                                </div>
                                <div class="field">
                                    <label for="field-servers">"Servers"</label>
                                    <select id="field-servers" name="servers" aria-describedby="field-servers-error">
                                        <option value="1" selected=servers == "1">"1 server"</option>
                                        {(options.max_servers >= 3).then(|| view! {
                                            <option value="3" selected=servers == "3">"3 servers (highly available)"</option>
                                        })}
                                    </select>
                                    <p class="field-error" id="field-servers-error">{move || servers_error.get()}</p>
                                </div>
                                <Field
                                    state=state.clone()
                                    name="agents"
                                    label="Agents"
                                    kind="number"
                                    autocomplete="off"
                                    hint=format!("0 to {}.", options.max_agents)
                                />
                                <div class="field">
                                    <label for="field-version">"Kubernetes version"</label>
                                    <select id="field-version" name="version" aria-describedby="field-version-error">
                                        {options.versions.iter().map(|v| view! { <option value=v.clone() selected=*v == version>{v.clone()}</option> }).collect_view()}
                                    </select>
                                    <p class="field-error" id="field-version-error">{move || version_error.get()}</p>
                                </div>
                                <fieldset class="field">
                                    <legend>"Storage"</legend>
                                    <label class="choice">
                                        <input type="radio" name="persistence" value="dynamic" checked=persistence == "dynamic" />
                                        "Persistent volume (data survives restarts)"
                                    </label>
                                    <label class="choice">
                                        <input type="radio" name="persistence" value="ephemeral" checked=persistence == "ephemeral" />
                                        "Ephemeral (no volume; data is lost when a server restarts)"
                                    </label>
                                    <p class="field-error">{move || persistence_error.get()}</p>
                                </fieldset>
                                <Field
                                    state=state.clone()
                                    name="storage_gi"
                                    label="Volume size (GiB)"
                                    kind="number"
                                    autocomplete="off"
                                    hint=format!("1 to {} GiB, for persistent volumes.", options.max_storage_gi)
                                />
                                <div class="field">
                                    <label for="field-tls_sans">"Extra TLS names (optional)"</label>
                                    <textarea id="field-tls_sans" name="tls_sans" rows="3" aria-describedby="field-tls_sans-hint field-tls_sans-error">
                                        {state.kept_value("tls_sans").unwrap_or_default()}
                                    </textarea>
                                    <p class="hint" id="field-tls_sans-hint">
                                        {format!("DNS names or IP addresses the API certificate should cover, up to 10, separated by commas or new lines. Every cluster also gets <name>-<your username>.{}.", options.base_domain)}
                                    </p>
                                    <p class="field-error" id="field-tls_sans-error">{move || sans_error.get()}</p>
                                </div>
                                <button type="submit" disabled=move || action.pending().get()>"Create cluster"</button>
                            </ActionForm>
                        }.into_any())
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn ClusterPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let live = use_live_clusters();
    let delete = ServerAction::<DeleteCluster>::new();
    let flash = flash_resource();
    // Bumped to look again: while a change is rolling out, and when the live list says this
    // cluster is not as the page shows it.
    let (tick, set_tick) = signal(0u64);
    let detail = crate::data::data(move || (id(), tick.get()), |(id, _)| get_cluster(id));
    view! {
        <Suspense fallback=|| view! { <p>"Loading the cluster…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match detail.await {
                    Err(ApiError::Unauthenticated) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(ApiError::NotFound) => view! { <NotFound /> }.into_any(),
                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(detail) => {
                        // The live list is compared with what this view shows, by an effect made
                        // with it: an effect runs after the view it was made with is hydrated,
                        // and never on the server. Looking at the list before the details were
                        // hydrated changed the resource under them and hydration panicked (tachys
                        // hydration.rs; a reload in CI did so); refetching whenever the list
                        // spoke fetched the details twice on every visit and re-made the page's
                        // log and metrics sockets.
                        let shown = (detail.summary.phase, detail.summary.message.clone(), detail.summary.endpoint.clone());
                        let current = detail.summary.id.clone();
                        Effect::new(move |_| {
                            let listed = live.clusters.with(|list| {
                                list.as_ref().map(|l| l.iter().find(|c| c.id == current).map(|c| (c.phase, c.message.clone(), c.endpoint.clone())))
                            });
                            if listed.is_some_and(|listed| listed.as_ref() != Some(&shown)) {
                                set_tick.update(|t| *t += 1);
                            }
                        });
                        let delete_state = FormState::new("delete-cluster", delete.value().into(), flash.clone(), "Deleting…");
                        let change_state = FormState::posted("change-cluster", flash.clone(), "Done.");
                        let keep_state = FormState::posted("keep-cluster", flash, "Kept.");
                        view! { <ClusterDetails detail delete delete_state change_state keep_state refresh=set_tick /> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ClusterDetails(
    detail: ClusterDetail,
    delete: ServerAction<DeleteCluster>,
    delete_state: FormState,
    change_state: FormState,
    keep_state: FormState,
    refresh: WriteSignal<u64>,
) -> impl IntoView {
    // Follow a rollout: look again in a couple of seconds (only in the browser, after hydration).
    if detail.rollout.is_some() {
        Effect::new(move |_| {
            #[cfg(feature = "hydrate")]
            set_timeout(move || refresh.update(|t| *t += 1), std::time::Duration::from_secs(2));
            #[cfg(not(feature = "hydrate"))]
            let _ = refresh;
        });
    }
    let summary = detail.summary.clone();
    let ready = summary.phase.is_running();
    let sans =
        if detail.tls_sans.is_empty() { "—".to_owned() } else { detail.tls_sans.join(", ") };
    view! {
        <div class="page-head">
            <h1>{summary.name.clone()}</h1>
            <PhaseBadge phase=summary.phase />
        </div>
        {summary.message.clone().map(|m| view! { <p class="status-message" role="status">{m}</p> })}
        <FormAlert state=keep_state />
        {detail.expiry.clone().map(|e| {
            let class = if e.soon { "alert warning" } else { "alert info" };
            let text = if e.workshop {
                format!("This cluster is deleted {} ({}), when its workshop ends. Keep what you need elsewhere.", e.words, age(&e.at))
            } else {
                format!("This cluster is deleted {} ({}) unless it is used: a cluster nobody reaches through KRaft for a while is removed.", e.words, age(&e.at))
            };
            let id = summary.id.clone();
            view! {
                <div class=class role="status" data-expires=e.at.clone() data-expires-soon=e.soon.to_string()>
                    <p>{text}</p>
                    {(!e.workshop).then(|| view! {
                        <form method="post" action="/api/clusters/keep" class="inline-form">
                            <input type="hidden" name="id" value=id />
                            <button type="submit">"Keep this cluster"</button>
                        </form>
                    })}
                </div>
            }
        })}
        {detail.rollout.clone().map(|r| {
            let (done, wanted) = (r.servers_done + r.agents_done, r.servers_wanted + r.agents_wanted);
            view! {
                <div class="alert info" role="status" data-rollout=format!("{done}/{wanted}")>
                    <p>{format!("Changing on the host: {} of {} server(s){} running {}.", r.servers_done, r.servers_wanted,
                        if r.agents_wanted > 0 { format!(" and {} of {} agent(s)", r.agents_done, r.agents_wanted) } else { String::new() }, r.version)}</p>
                    <progress max=wanted.max(1).to_string() value=done.to_string() aria-label="Change progress"></progress>
                </div>
            }
        })}
        <section class="card" aria-labelledby="overview-heading">
            <h2 id="overview-heading">"Overview"</h2>
            <dl class="details" aria-label="Cluster details">
                <dt>"API endpoint"</dt><dd><code>{summary.endpoint.clone().unwrap_or_else(|| "available when Ready".into())}</code></dd>
                <dt>"Hostname"</dt><dd><code>{detail.hostname.clone()}</code></dd>
                <dt>"Mode"</dt><dd>{summary.mode.as_str()}</dd>
                <dt>"Nodes"</dt><dd>{format!("{} server(s), {} agent(s)", summary.servers, summary.agents)}</dd>
                <dt>"Version"</dt><dd>{summary.version.clone()}</dd>
                <dt>"Storage"</dt><dd>{match detail.persistence { Persistence::Ephemeral => "ephemeral".to_owned(), Persistence::Dynamic => format!("{} GiB volume", detail.storage_gi) }}</dd>
                <dt>"Extra TLS names"</dt><dd>{sans}</dd>
                <dt>"Created"</dt><dd>{age(&summary.created_at)}</dd>
            </dl>
        </section>
        <Kubeconfigs cluster_id=summary.id.clone() ready last_api_request=detail.last_api_request.clone() />
        {ready.then(|| view! { <ClusterMetrics cluster_id=summary.id.clone() /> }.into_any())}
        {ready.then(|| view! { <LogViewer cluster_id=summary.id.clone() /> }.into_any())}
        <section class="card" aria-labelledby="conditions-heading">
            <h2 id="conditions-heading">"Conditions"</h2>
            {if detail.conditions.is_empty() {
                Either::Left(view! { <p class="muted">"The host has not reported any condition yet."</p> })
            } else {
                Either::Right(view! {
                    <ScrollRegion label="Conditions">
                        <table class="table" aria-labelledby="conditions-heading">
                            <thead><tr><th scope="col">"Type"</th><th scope="col">"Status"</th><th scope="col">"Reason"</th><th scope="col">"Message"</th></tr></thead>
                            <tbody>
                                {detail.conditions.iter().map(|c| view! {
                                    <tr><td>{c.kind.clone()}</td><td>{c.status.clone()}</td><td>{c.reason.clone()}</td><td>{c.message.clone()}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </ScrollRegion>
                })
            }}
        </section>
        <section class="card" aria-labelledby="events-heading">
            <h2 id="events-heading">"Host events"</h2>
            {detail.blocked_by.clone().map(|why| view! {
                <p class="alert error" role="status">{why}</p>
            })}
            {if detail.events.is_empty() {
                Either::Left(view! { <p class="muted">"No events."</p> })
            } else {
                Either::Right(view! {
                    <ul class="activity" aria-labelledby="events-heading">
                        {detail.events.iter().map(|e| view! {
                            <li class=if e.kind == "Warning" { "warning" } else { "" }>
                                <strong>{e.reason.clone()}</strong>
                                {(!e.object.starts_with("Cluster ")).then(|| view! {
                                    " "<span class="muted">{e.object.clone()}</span>
                                })}
                                " "{e.message.clone()}
                                {(e.count > 1).then(|| format!(" (×{})", e.count))}
                            </li>
                        }).collect_view()}
                    </ul>
                })
            }}
        </section>
        {detail.change.clone().map(|c| {
            let id = summary.id.clone();
            let current = summary.version.clone();
            let servers = summary.servers;
            let agents = summary.agents;
            let ephemeral = matches!(detail.persistence, Persistence::Ephemeral);
            // A plain form post: its errors come with the page, nothing to follow live.
            let field_error = |name| change_state.field_error(name).get_untracked();
            let (version_error, servers_error) = (field_error("version"), field_error("servers"));
            let start_empty_error = field_error("start_empty");
            view! {
                <section class="card" aria-labelledby="change-heading">
                    <h2 id="change-heading">"Upgrade or scale"</h2>
                    <form method="post" action="/api/clusters/change" class="form" aria-label="Upgrade or scale">
                        <FormAlert state=change_state.clone() />
                        <input type="hidden" name="id" value=id />
                        <div class="field">
                            <label for="field-change-version">"Version"</label>
                            <select id="field-change-version" name="version" aria-describedby="field-change-version-hint field-change-version-error">
                                <option value=current.clone() selected>{format!("{current} (current)")}</option>
                                {c.upgrades.iter().map(|v| view! { <option value=v.clone()>{v.clone()}</option> }).collect_view()}
                            </select>
                            <p class="hint" id="field-change-version-hint">{if c.upgrades.is_empty() {
                                "No newer version is offered. Clusters move forward only, one minor version at a time."
                            } else if servers == 1 {
                                "Forward only, one minor version at a time. With one server, the cluster's API is down while its server is replaced (a minute or two)."
                            } else {
                                "Forward only, one minor version at a time; servers are replaced one by one."
                            }}</p>
                            <p class="field-error" id="field-change-version-error">{version_error}</p>
                        </div>
                        <div class="field">
                            <label for="field-change-servers">"Servers"</label>
                            <select id="field-change-servers" name="servers" aria-describedby="field-change-servers-error">
                                {[1, 3].into_iter().filter(|n| *n <= c.max_servers || *n == servers).map(|n| view! {
                                    <option value=n.to_string() selected=n == servers>{n.to_string()}</option>
                                }).collect_view()}
                            </select>
                            <p class="field-error" id="field-change-servers-error">{servers_error}</p>
                        </div>
                        {(c.max_agents > 0).then(|| view! {
                            <Field state=change_state.clone() name="agents" label="Agents" kind="number" autocomplete="off"
                                initial=agents.to_string() hint=format!("0 to {}.", c.max_agents) />
                        })}
                        {ephemeral.then(|| view! {
                            <div class="field">
                                <label class="choice"><input type="checkbox" name="start_empty" value="on" aria-describedby="field-start_empty-error" />
                                    "It may start empty: its data lives in its server pods, which an upgrade (or going between one server and several) replaces."</label>
                                <p class="field-error" id="field-start_empty-error">{start_empty_error}</p>
                            </div>
                        })}
                        <button type="submit">"Apply"</button>
                    </form>
                </section>
            }
        })}
        <section class="card danger" aria-labelledby="delete-heading">
            <h2 id="delete-heading">"Delete cluster"</h2>
            <p>"This deletes the cluster and all its data from the host. It cannot be undone."</p>
            <ActionForm action=delete attr:class="form" attr:aria-label="Delete cluster">
                <FormAlert state=delete_state.clone() />
                <input type="hidden" name="id" value=summary.id.clone() />
                <Field
                    state=delete_state
                    name="confirm_name"
                    label=format!("Type the cluster's name ({}) to confirm", summary.name)
                    autocomplete="off"
                />
                <button type="submit" class="danger" disabled=move || delete.pending().get()>"Delete this cluster"</button>
            </ActionForm>
        </section>
    }
}

/// The cluster's kubeconfigs: a form that issues a named one (a file download: the token exists
/// only in it), and the list with when each was last used, to revoke one or all.
#[component]
fn Kubeconfigs(cluster_id: String, ready: bool, last_api_request: Option<String>) -> impl IntoView {
    let action = format!("/api/clusters/{cluster_id}/kubeconfig");
    let revoke = ServerAction::<RevokeKubeconfig>::new();
    // Bumped after a download: the list then shows the new one.
    let issued = RwSignal::new(0u32);
    let id = cluster_id.clone();
    let list = crate::data::data(
        move || (id.clone(), revoke.version().get(), issued.get()),
        |(id, _, _)| list_kubeconfigs(id),
    );
    let on_issue = move |_| {
        set_timeout(move || issued.update(|n| *n += 1), std::time::Duration::from_millis(700));
    };
    let all_id = cluster_id.clone();
    view! {
        <section class="card" aria-labelledby="kubeconfig-heading">
            <h2 id="kubeconfig-heading">"Kubeconfigs"</h2>
            <p>"Each kubeconfig reaches the cluster through KRaft with its own token. Name it for where it will live, keep it secret, and revoke it when it is no longer needed."</p>
            <form method="post" action=action class="inline-form" aria-label="New kubeconfig" on:submit=on_issue>
                <label for="kubeconfig-name">"Name"</label>
                <input id="kubeconfig-name" name="name" required maxlength="64" placeholder="laptop" autocomplete="off" />
                <label for="kubeconfig-days">"Valid for"</label>
                <select id="kubeconfig-days" name="days">
                    <option value="1">"1 day"</option>
                    <option value="7">"7 days"</option>
                    <option value="30" selected=true>"30 days"</option>
                    <option value="90">"90 days"</option>
                </select>
                <button type="submit">"Download kubeconfig"</button>
            </form>
            {(!ready).then(|| view! { <p class="hint">"kubectl reaches the cluster once it is Ready."</p> })}
            {last_api_request.map(|when| view! { <p class="muted">{format!("Last API request: {when}.")}</p> })}
            {move || revoke.value().get().and_then(Result::err).map(|e| view! { <p class="alert error" role="alert">{e.to_string()}</p> })}
            <Suspense fallback=|| view! { <p>"Loading kubeconfigs…"</p> }>
                {move || {
                    let all_id = all_id.clone();
                    Suspend::new(async move {
                        match list.await {
                            Err(error) => EitherOf3::A(view! { <p class="alert error" role="alert">{error.to_string()}</p> }),
                            Ok(rows) if rows.is_empty() => EitherOf3::B(view! { <p class="muted">"No kubeconfigs yet."</p> }),
                            Ok(rows) => {
                                let any_active = rows.iter().any(|r| r.state == KubeconfigState::Active);
                                let revoke_all_id = all_id.clone();
                                EitherOf3::C(view! {
                                    <ScrollRegion label="Kubeconfigs">
                                        <table class="table" aria-label="Kubeconfigs">
                                            <thead><tr><th scope="col">"Name"</th><th scope="col">"Token"</th><th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                                            <tbody>
                                                {rows.into_iter().map(|r| {
                                                    let cluster = all_id.clone();
                                                    let label = format!("Revoke {}", r.name);
                                                    view! {
                                                        <tr>
                                                            <td>{r.name.clone()}</td>
                                                            <td><code>{r.shown.clone()}</code></td>
                                                            <td>{r.created.clone()}</td>
                                                            <td>{r.expires.clone()}</td>
                                                            <td>{r.last_used.clone().unwrap_or_else(|| "never".into())}</td>
                                                            <td>{match r.state {
                                                                KubeconfigState::Active => Either::Left(view! {
                                                                    <ActionForm action=revoke attr:class="inline-form">
                                                                        <input type="hidden" name="id" value=cluster />
                                                                        <input type="hidden" name="kubeconfig" value=r.id.clone() />
                                                                        <button type="submit" class="secondary" aria-label=label>"Revoke"</button>
                                                                    </ActionForm>
                                                                }),
                                                                KubeconfigState::Expired => Either::Right("expired"),
                                                                KubeconfigState::Revoked => Either::Right("revoked"),
                                                            }}</td>
                                                        </tr>
                                                    }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    </ScrollRegion>
                                    {any_active.then(|| view! {
                                        <ActionForm action=revoke attr:class="inline-form" attr:aria-label="Revoke all kubeconfigs">
                                            <input type="hidden" name="id" value=revoke_all_id />
                                            <input type="hidden" name="kubeconfig" value="all" />
                                            <button type="submit" class="danger">"Revoke all"</button>
                                        </ActionForm>
                                    })}
                                })
                            }
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

/// Every cluster on this KRaft, for admins.
#[component]
pub fn AdminClustersPage() -> impl IntoView {
    let rows = crate::data::data(|| (), |_| admin_clusters());
    view! {
        <h1>"All clusters"</h1>
        <crate::admin::AdminTabs />
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match rows.await {
                    Err(ApiError::Unauthenticated) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(ApiError::Forbidden) => view! { <p class="alert error" role="alert">"Only admins can see this page."</p> }.into_any(),
                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(rows) if rows.is_empty() => view! { <p class="muted">"No clusters yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <ScrollRegion label="All clusters">
                            <table class="table" aria-label="All clusters">
                                <thead><tr><th scope="col">"Name"</th><th scope="col">"Owner"</th><th scope="col">"Status"</th><th scope="col">"Host namespace"</th><th scope="col">"Nodes"</th><th scope="col">"Created"</th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|r| view! {
                                        <tr>
                                            <td>{r.cluster.name.clone()}</td>
                                            <td>{r.owner.clone().unwrap_or_else(|| "(deleted account)".into())}</td>
                                            <td><PhaseBadge phase=r.cluster.phase /></td>
                                            <td><code>{r.host_namespace.clone()}</code></td>
                                            <td>{format!("{} server(s), {} agent(s)", r.cluster.servers, r.cluster.agents)}</td>
                                            <td>{age(&r.cluster.created_at)}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </ScrollRegion>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;
    use leptos::wasm_bindgen::JsCast;

    /// Called just before new rows replace the table's: a keyboard user on a row's link keeps
    /// their place, on the new link to the same cluster, instead of being sent back to the top of
    /// the document.
    pub(super) fn keep_focus(body: NodeRef<leptos::html::Tbody>) {
        let (Some(body), Some(active)) = (body.get_untracked(), document().active_element()) else {
            return;
        };
        if !body.contains(Some(&active)) {
            return;
        }
        // Cluster addresses are /clusters/<uuid>: nothing to quote in a selector.
        let Some(href) = active.get_attribute("href") else { return };
        queue_microtask(move || {
            let link = body.query_selector(&format!("a[href=\"{href}\"]")).ok().flatten();
            if let Some(link) = link.and_then(|l| l.dyn_into::<web_sys::HtmlElement>().ok()) {
                let _ = link.focus();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, message: Option<&str>) -> ClusterSummary {
        ClusterSummary {
            id: "8eb987b5-89eb-4f00-8507-d4ac5e4717ce".into(),
            name: name.into(),
            phase: ClusterPhase::Failed,
            message: message.map(Into::into),
            endpoint: None,
            mode: ClusterMode::Shared,
            servers: 1,
            agents: 2,
            version: "v1.31.4-k3s1".into(),
            created_at: "2026-12-07T16:09:12Z".into(),
            expires_soon: None,
        }
    }

    #[test]
    fn rows_are_the_table_markup_with_every_text_escaped() {
        let html = cluster_rows_html(&[summary("demo", None)]);
        assert_eq!(
            html,
            "<tr><td><a href=\"/clusters/8eb987b5-89eb-4f00-8507-d4ac5e4717ce\">demo</a></td>\
             <td><span class=\"phase failed\">Failed</span></td><td><code>—</code></td>\
             <td>1 server(s), 2 agent(s)</td><td>v1.31.4-k3s1</td><td>2026-12-07 16:09 UTC</td></tr>"
        );
        // The host's words reach the page as text, never as markup.
        let html = cluster_rows_html(&[summary("x", Some("<img src=x onerror=alert(1)> & \"q\""))]);
        assert!(
            html.contains(
                "<div class=\"muted small\">&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;</div>"
            ),
            "{html}"
        );
        assert!(cluster_rows_html(&[]).is_empty());
    }

    #[test]
    fn escaping_covers_text_and_quoted_attributes() {
        let mut html = String::new();
        push_escaped(&mut html, r#"a&b <c> "d" 'e' ünï"#);
        assert_eq!(html, "a&amp;b &lt;c&gt; &quot;d&quot; 'e' ünï");
        push_escaped(&mut html, "");
        push_escaped(&mut html, "&");
        assert_eq!(html, "a&amp;b &lt;c&gt; &quot;d&quot; 'e' ünï&amp;");
    }
}
