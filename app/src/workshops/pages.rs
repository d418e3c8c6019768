//! The organizer's workshops page and board, and the attendee's join pages. Every form works
//! without JavaScript; with it, the board is live (one websocket).

use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::{Redirect, A};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::accounts::api::{Flash, Register, UserView};
use crate::accounts::pages::{flash_resource, AuthVersion};
use crate::clusters::pages::PhaseBadge;
use crate::error::ApiError;
use crate::forms::{refresh_viewer_on_success, Field, FormAlert, FormState};
use crate::layout::ScrollRegion;
use crate::workshops::api::*;

/// `2026-12-05T14:00:00+00:00` as `2026-12-05 14:00 UTC`.
fn when(rfc3339: &str) -> String {
    rfc3339.get(0..16).map(|s| s.replace('T', " ") + " UTC").unwrap_or_else(|| rfc3339.to_owned())
}

/// This page's origin once hydrated (the server does not know which name the browser used).
fn origin() -> ReadSignal<String> {
    let (origin, set_origin) = signal(String::new());
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Ok(o) = window().location().origin() {
            set_origin.set(o);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = set_origin;
    });
    origin
}

#[component]
pub fn WorkshopsPage() -> impl IntoView {
    let flash = flash_resource();
    let overview = crate::data::data(|| (), |_| organizer_overview());
    // The browser's time zone, so the times typed are read as local times (UTC without it).
    let (tz_offset, set_tz_offset) = signal(String::new());
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        set_tz_offset.set(js_sys::Date::new_0().get_timezone_offset().to_string());
        #[cfg(not(feature = "hydrate"))]
        let _ = set_tz_offset;
    });
    view! {
        <h1>"Workshops"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match overview.await {
                    Err(ApiError::Unauthenticated) => view! { <Redirect path="/login?next=/workshops" /> }.into_any(),
                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(overview) => {
                        let state = FormState::posted("create-workshop", flash, "Workshop created.");
                        let kept = |field: &str, default: &str| state.kept_value(field).unwrap_or_else(|| default.to_owned());
                        let options = overview.options.clone();
                        let mode = kept("mode", options.modes.first().map(|m| m.as_str()).unwrap_or("shared"));
                        let version = kept("version", options.versions.first().map(String::as_str).unwrap_or(""));
                        let persistence = kept("persistence", "ephemeral");
                        let allowance = match overview.allowance {
                            Some(n) => format!("Your open workshops hold {} of your {} seats.", overview.held, n),
                            None => format!("Your open workshops hold {} seats (admins have no allowance).", overview.held),
                        };
                        view! {
                            <p class="muted">{allowance}</p>
                            <section class="card" aria-labelledby="workshops-heading">
                                <h2 id="workshops-heading">"Your workshops"</h2>
                                {if overview.workshops.is_empty() {
                                    Either::Left(view! { <p>"None yet. Create one below: attendees join with its link or code and get a cluster each."</p> })
                                } else {
                                    Either::Right(view! {
                                        <ScrollRegion label="Your workshops">
                                            <table class="table" aria-label="Your workshops">
                                                <thead><tr><th scope="col">"Title"</th><th scope="col">"Code"</th><th scope="col">"When"</th><th scope="col">"Seats"</th><th scope="col">"State"</th></tr></thead>
                                                <tbody>
                                                    {overview.workshops.into_iter().map(|w| view! {
                                                        <tr>
                                                            <td><A href=format!("/workshops/{}", w.id)>{w.title.clone()}</A></td>
                                                            <td><code>{w.code.clone()}</code></td>
                                                            <td>{format!("{} – {}", when(&w.starts_at), when(&w.ends_at))}</td>
                                                            <td>{format!("{} of {}", w.taken, w.seats)}</td>
                                                            <td>{w.phase.as_str()}</td>
                                                        </tr>
                                                    }).collect_view()}
                                                </tbody>
                                            </table>
                                        </ScrollRegion>
                                    })
                                }}
                            </section>
                            <section class="card" aria-labelledby="new-workshop-heading">
                                <h2 id="new-workshop-heading">"New workshop"</h2>
                                <form method="post" action="/api/workshops/create" class="form wide" aria-label="Create workshop">
                                    <FormAlert state=state.clone() />
                                    <Field state=state.clone() name="title" label="Title" autocomplete="off" />
                                    <input type="hidden" name="tz_offset" prop:value=move || tz_offset.get() />
                                    <Field state=state.clone() name="starts_at" label="Starts" kind="datetime-local" autocomplete="off" hint="In your time zone (UTC if JavaScript is off)." />
                                    <Field state=state.clone() name="ends_at" label="Ends" kind="datetime-local" autocomplete="off" hint="Every workshop cluster is deleted at the end plus the grace period." />
                                    <Field state=state.clone() name="grace_minutes" label="Grace period (minutes)" kind="number" autocomplete="off" hint="0 to 1440; 30 if left empty." />
                                    <Field state=state.clone() name="seats" label="Seats" kind="number" autocomplete="off" hint="One cluster per attendee. Workshop clusters count against these seats, not the attendees' own limits." />
                                    <Field state=state.clone() name="pool" label="Warm pool" kind="number" autocomplete="off" hint="Clusters made ahead, so a joining attendee gets a Ready one at once; refilled while seats remain. 0 if left empty." />
                                    <div class="field">
                                        <label for="field-mode">"Mode"</label>
                                        <select id="field-mode" name="mode">
                                            {options.modes.iter().map(|m| view! { <option value=m.as_str() selected=m.as_str() == mode>{m.as_str()}</option> }).collect_view()}
                                        </select>
                                        <p class="field-error">{let e = state.field_error("mode"); move || e.get()}</p>
                                    </div>
                                    <div class="field">
                                        <label for="field-version">"Kubernetes version"</label>
                                        <select id="field-version" name="version">
                                            {options.versions.iter().map(|v| view! { <option value=v.clone() selected=*v == version>{v.clone()}</option> }).collect_view()}
                                        </select>
                                        <p class="field-error">{let e = state.field_error("version"); move || e.get()}</p>
                                    </div>
                                    <Field state=state.clone() name="servers" label="Servers per cluster" kind="number" autocomplete="off" hint="1, or 3 for a highly available control plane." />
                                    <Field state=state.clone() name="agents" label="Agents per cluster" kind="number" autocomplete="off" hint="Virtual clusters only." />
                                    <fieldset class="field">
                                        <legend>"Storage"</legend>
                                        <label class="choice"><input type="radio" name="persistence" value="ephemeral" checked=persistence == "ephemeral" />"Ephemeral (fastest to start)"</label>
                                        <label class="choice"><input type="radio" name="persistence" value="dynamic" checked=persistence == "dynamic" />"Persistent volume"</label>
                                        <p class="field-error">{let e = state.field_error("persistence"); move || e.get()}</p>
                                    </fieldset>
                                    <Field state=state.clone() name="storage_gi" label="Volume size (GiB)" kind="number" autocomplete="off" />
                                    <button type="submit">"Create workshop"</button>
                                </form>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn WorkshopBoardPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let flash = flash_resource();
    let board = crate::data::data(id, workshop_board);
    // Once hydrated, one websocket brings the board whenever a seat changes and every seat
    // cluster's usage as it is measured.
    let live = LiveBoard::new();
    #[cfg(feature = "hydrate")]
    live.follow(id);
    let origin = origin();
    view! {
        <Transition fallback=|| view! { <p>"Loading the board…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match board.await {
                    Err(ApiError::Unauthenticated) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(ApiError::NotFound) => view! { <h1>"Not found"</h1><p>"There is no such workshop."</p> }.into_any(),
                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(board) => {
                        // What the socket pushes replaces only what moves (seats, counts, pool):
                        // the forms above are never re-made under the organizer's typing.
                        let first = board.clone();
                        let current = Memo::new(move |_| live.board.get().unwrap_or_else(|| first.clone()));
                        let w = board.workshop.clone();
                        let ended = w.phase == WorkshopPhase::Ended;
                        let state = FormState::posted("workshop-board", flash.clone(), "Done.");
                        let link = w.link.clone();
                        let shown_link = w.link.clone();
                        let (id_a, id_b, id_c) = (w.id.clone(), w.id.clone(), w.id.clone());
                        view! {
                            <div class="page-head">
                                <h1>{w.title.clone()}</h1>
                                <span class="phase" data-workshop-phase=w.phase.as_str()>{w.phase.as_str()}</span>
                            </div>
                            <FormAlert state=state.clone() />
                            <section class="card" aria-labelledby="join-heading">
                                <h2 id="join-heading">"How attendees join"</h2>
                                <dl class="details">
                                    <dt>"Code"</dt><dd><code data-workshop-code>{w.code.clone()}</code>" at "<code>{move || format!("{}/join", origin.get())}</code></dd>
                                    <dt>"Link"</dt><dd><a href=link.clone() data-workshop-link><code>{move || format!("{}{}", origin.get(), shown_link)}</code></a></dd>
                                    <dt>"When"</dt><dd>{format!("{} – {} (clusters deleted {} min after the end)", when(&w.starts_at), when(&w.ends_at), w.grace_minutes)}</dd>
                                    <dt>"Seats"</dt><dd data-seats-taken>{move || current.with(|b| format!("{} of {} taken", b.workshop.taken, b.workshop.seats))}</dd>
                                    <dt>"Clusters"</dt><dd>{w.template.clone()}</dd>
                                    <dt>"Warm pool"</dt><dd data-pool-ready=move || current.with(|b| b.pool_ready.to_string())>{move || current.with(|b| format!("{} ready, {} waiting, target {}", b.pool_ready, b.pool_waiting, b.pool_target))}</dd>
                                    <dt>"Joining"</dt><dd>{if w.joining_open { "open" } else { "closed" }}</dd>
                                </dl>
                                {(!ended).then(move || view! {
                                    <div class="actions">
                                        <form method="post" action="/api/workshops/joining" class="inline-form">
                                            <input type="hidden" name="id" value=id_a />
                                            <input type="hidden" name="open" value=if w.joining_open { "false" } else { "true" } />
                                            <button type="submit">{if w.joining_open { "Close joining" } else { "Open joining" }}</button>
                                        </form>
                                        <form method="post" action="/api/workshops/extend" class="inline-form" aria-label="Extend the workshop">
                                            <input type="hidden" name="id" value=id_b />
                                            <label for="field-minutes">"Extend by (minutes)"</label>
                                            <input id="field-minutes" name="minutes" type="number" min="1" value="30" />
                                            <button type="submit">"Extend"</button>
                                        </form>
                                        <details class="danger">
                                            <summary>"End now"</summary>
                                            <p>"Every workshop cluster is deleted now. Attendees keep their accounts."</p>
                                            <form method="post" action="/api/workshops/end" class="inline-form">
                                                <input type="hidden" name="id" value=id_c />
                                                <button type="submit" class="danger">"End the workshop and delete its clusters"</button>
                                            </form>
                                        </details>
                                    </div>
                                })}
                            </section>
                            <section class="card" aria-labelledby="seats-heading">
                                <h2 id="seats-heading">{move || current.with(|b| format!("Seats ({})", b.seats.len()))}</h2>
                                // A plain link: the browser downloads the file (rel=external keeps the router out).
                                <p><a href=format!("/workshops/{}/seats.csv", w.id) rel="external" download="">"Download the seat list (CSV)"</a></p>
                                <ScrollRegion label="Seats">
                                    <table class="table" aria-label="Seats">
                                        <thead><tr><th scope="col">"Attendee"</th><th scope="col">"Cluster"</th><th scope="col">"Usage"</th><th scope="col">"Last API request"</th><th scope="col">"Joined"</th><th scope="col">"Actions"</th></tr></thead>
                                        <tbody>
                                            {move || current.get().seats.into_iter().map(|seat| {
                                                let workshop = w.id.clone();
                                                let (ws_a, ws_b) = (workshop.clone(), workshop);
                                                let (seat_a, seat_b) = (seat.id.clone(), seat.id.clone());
                                                let (who_a, who_b) = (seat.attendee.clone(), seat.attendee.clone());
                                                view! {
                                                    <tr data-attendee=seat.attendee.clone()>
                                                        <td>{seat.attendee.clone()}</td>
                                                        <td>{match seat.cluster.clone() {
                                                            Some(c) => Either::Left(view! { <PhaseBadge phase=c.phase />" "<span class="muted small">{c.name}</span> }),
                                                            None => Either::Right(view! { <span class="muted">"deleted"</span> }),
                                                        }}</td>
                                                        <td class="seat-usage">{seat.cluster.as_ref().map(|c| {
                                                            use crate::metrics::charts::{format_bytes, format_cpu, Sparkline};
                                                            let id = c.id.clone();
                                                            view! {
                                                                <Sparkline label="CPU" values=live.series(id.clone(), |s| s.0) latest=live.latest(id.clone(), |s| format_cpu(s.0)) />
                                                                <Sparkline label="Memory" values=live.series(id.clone(), |s| s.1 as f64) latest=live.latest(id, |s| format_bytes(s.1 as f64)) />
                                                            }
                                                        })}</td>
                                                        <td>{seat.last_api_request.clone().unwrap_or_else(|| "never".into())}</td>
                                                        <td>{when(&seat.joined_at)}</td>
                                                        <td>{(!ended).then(move || view! {
                                                            <form method="post" action="/api/workshops/reset-seat" class="inline-form">
                                                                <input type="hidden" name="id" value=ws_a />
                                                                <input type="hidden" name="seat" value=seat_a />
                                                                <button type="submit" aria-label=format!("Reset {who_a}'s cluster")>"Reset"</button>
                                                            </form>
                                                            <form method="post" action="/api/workshops/remove-attendee" class="inline-form">
                                                                <input type="hidden" name="id" value=ws_b />
                                                                <input type="hidden" name="seat" value=seat_b />
                                                                <button type="submit" class="danger" aria-label=format!("Remove {who_b}")>"Remove"</button>
                                                            </form>
                                                        })}</td>
                                                    </tr>
                                                }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </ScrollRegion>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// What the board's websocket brought: the board, and each seat cluster's recent usage.
#[derive(Clone, Copy)]
struct LiveBoard {
    board: RwSignal<Option<Board>>,
    usage: RwSignal<std::collections::HashMap<String, std::collections::VecDeque<(f64, u64)>>>,
}

/// Samples a seat's sparklines keep.
const SPARK_SAMPLES: usize = 30;

impl LiveBoard {
    fn new() -> Self {
        Self { board: RwSignal::new(None), usage: RwSignal::new(Default::default()) }
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn receive(&self, message: BoardMessage) {
        match message {
            BoardMessage::Board { board } => self.board.set(Some(board)),
            BoardMessage::History { cluster, samples } => self.usage.update(|u| {
                let skip = samples.len().saturating_sub(SPARK_SAMPLES);
                u.insert(cluster, samples.into_iter().skip(skip).collect());
            }),
            BoardMessage::Sample { cluster, cpu_millicores, memory_bytes } => {
                self.usage.update(|u| {
                    let samples = u.entry(cluster).or_default();
                    samples.push_back((cpu_millicores, memory_bytes));
                    while samples.len() > SPARK_SAMPLES {
                        samples.pop_front();
                    }
                })
            }
            BoardMessage::Heartbeat => {}
        }
    }

    #[cfg(feature = "hydrate")]
    fn follow(self, id: impl Fn() -> String + 'static) {
        let path = format!("/ws/workshops/{}", id());
        crate::socket::keep_open(
            move || path.clone(),
            move |text| {
                if let Ok(message) = serde_json::from_slice::<BoardMessage>(text.as_bytes()) {
                    self.receive(message);
                }
            },
            |_| {},
        );
    }

    /// One of a seat cluster's series, oldest first.
    fn series(self, cluster: String, pick: fn(&(f64, u64)) -> f64) -> Signal<Vec<f64>> {
        Signal::derive(move || {
            self.usage
                .with(|u| u.get(&cluster).map(|s| s.iter().map(pick).collect()).unwrap_or_default())
        })
    }

    fn latest(self, cluster: String, show: fn(&(f64, u64)) -> String) -> Signal<String> {
        Signal::derive(move || {
            self.usage.with(|u| {
                u.get(&cluster).and_then(|s| s.back()).map(show).unwrap_or_else(|| "—".into())
            })
        })
    }
}

/// `/join`: type a workshop's code (a plain GET form: it works without JavaScript).
#[component]
pub fn JoinCodePage() -> impl IntoView {
    let query = use_query_map();
    let code = move || query.with(|q| q.get("code")).filter(|c| !c.trim().is_empty());
    view! {
        {move || match code() {
            Some(code) => Either::Left(view! { <Redirect path=crate::workshops::join_path(&code) /> }),
            None => Either::Right(view! {
                <h1>"Join a workshop"</h1>
                <form method="get" action="/join" class="form" aria-label="Join a workshop">
                    <div class="field">
                        <label for="field-code">"Workshop code"</label>
                        <input id="field-code" name="code" autocomplete="off" autocapitalize="characters" placeholder="K7M3-XP2Q" aria-describedby="field-code-hint" />
                        <p class="hint" id="field-code-hint">"The organizer shows it on the screen: 8 letters and digits."</p>
                    </div>
                    <button type="submit">"Continue"</button>
                </form>
            }),
        }}
    }
}

/// `/join/<link token or code>`: what the workshop is, and one step to a cluster: join when
/// signed in, or create an account right here (the link is the invitation).
#[component]
pub fn JoinPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || params.with(|p| p.get("key").unwrap_or_default());
    let register = ServerAction::<Register>::new();
    refresh_viewer_on_success(register.value().into(), AuthVersion::get());
    let flash = flash_resource();
    let invitation = crate::data::data(key, workshop_invitation);
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                let key = key();
                match invitation.await {
                    Err(ApiError::NotFound) => view! {
                        <h1>"No such workshop"</h1>
                        <p>"Check the code with the organizer, or " <A href="/join">"type it again"</A>"."</p>
                    }.into_any(),
                    Err(error) => view! { <p class="alert error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(invitation) => {
                        let head = view! {
                            <h1>{invitation.title.clone()}</h1>
                            <p class="muted">{format!("Organized by {} · {} – {}", invitation.organizer, when(&invitation.starts_at), when(&invitation.ends_at))}</p>
                        };
                        let body = if let Some(cluster) = invitation.your_cluster.clone() {
                            view! {
                                <p class="alert ok" role="status">"You have a seat in this workshop."</p>
                                <A href=format!("/clusters/{cluster}") attr:class="button">"Open your cluster"</A>
                            }.into_any()
                        } else if let Some(why) = invitation.closed_because.clone() {
                            view! { <p class="alert error" role="alert" data-join-refused>{why}</p> }.into_any()
                        } else if invitation.signed_in {
                            let state = FormState::posted("join", flash, "Joined.");
                            view! {
                                <form method="post" action="/api/workshops/join" class="form" aria-label="Join the workshop">
                                    <FormAlert state=state />
                                    <input type="hidden" name="key" value=key.clone() />
                                    <p>"You get a Kubernetes cluster of your own for this workshop, ready in seconds."</p>
                                    <button type="submit">"Join and get my cluster"</button>
                                </form>
                            }.into_any()
                        } else {
                            let state = FormState::new("register", register.value().into(), flash, "Welcome to KRaft!");
                            let next = format!("/login?next={}", crate::workshops::join_path(&key));
                            view! {
                                <p>"Create an account to get your own Kubernetes cluster for this workshop. "
                                   "Already have one? " <A href=next>"Sign in"</A>" and come back to this link."</p>
                                <ActionForm action=register attr:class="form" attr:aria-label="Create account and join">
                                    <FormAlert state=state.clone() />
                                    <input type="hidden" name="workshop" value=key.clone() />
                                    <Field state=state.clone() name="email" label="Email" kind="email" autocomplete="email" />
                                    <Field state=state.clone() name="username" label="Username" autocomplete="username" hint="3–32 characters: lowercase letters, digits and hyphens, starting with a letter." />
                                    <Field state=state.clone() name="password" label="Password" kind="password" autocomplete="new-password" hint="At least 12 characters." />
                                    <Field state=state.clone() name="password_confirm" label="Repeat the password" kind="password" autocomplete="new-password" />
                                    <button type="submit" disabled=move || register.pending().get()>"Create account and join"</button>
                                </ActionForm>
                            }.into_any()
                        };
                        view! { {head} {body} }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// The admin's form to make a user an organizer (a seat allowance; 0 takes it away).
#[component]
pub fn OrganizerSeatsForm(flash: Option<Flash>) -> impl IntoView {
    let state = FormState::posted("organizer-seats", flash, "Saved.");
    view! {
        <form method="post" action="/api/admin/organizer-seats" class="form" aria-label="Organizer seats">
            <FormAlert state=state.clone() />
            <Field state=state.clone() name="username" label="Username" autocomplete="off" />
            <Field state=state.clone() name="seats" label="Seats their open workshops may have in all" kind="number" autocomplete="off" hint="0 means the user cannot organize workshops." />
            <button type="submit">"Set"</button>
        </form>
    }
}

/// The state of a plain HTML form (not a Leptos action): the organizer's forms post and come
/// back with the outcome in the flash. Their server functions then never reach the WebAssembly
/// bundle (frontend/wasm-budget.txt).
/// Whether the nav shows the workshops link.
pub fn organizes(user: &UserView) -> bool {
    user.organizer || user.admin
}
