//! The log viewer on a cluster's page: pick a server or agent pod, then follow its log live.
//!
//! Lines arrive over `/ws/clusters/{id}/logs` in batches. The browser keeps a bounded buffer and
//! renders only the rows in view (fixed row height), so 100,000 lines stay cheap; with wrapping on
//! it renders only the newest rows instead. A dropped socket reconnects by itself and resumes
//! after the last line it has (timestamp and how many lines share it), so nothing repeats or
//! goes missing.

use std::collections::VecDeque;

use leptos::prelude::*;

use crate::logs::{cluster_pods, LogLine, PodView};

/// A JSON line, pretty-printed (for "JSON pretty-print on demand"); `None` for other lines.
pub fn pretty_json(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(trimmed.as_bytes()).ok()?;
    serde_json::to_string_pretty(&value).ok()
}

/// A filter, matched case-insensitively. An ASCII filter (nearly every one typed into a log
/// viewer) is matched byte by byte in place: lowercasing a copy of every line made filtering
/// 100,000 lines one task of over 50 ms. Other filters compare lowercased copies.
#[derive(Debug, Clone, PartialEq)]
pub struct Needle {
    lower: String,
}

impl Needle {
    pub fn new(filter: &str) -> Self {
        Self { lower: filter.to_lowercase() }
    }

    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    /// Whether `text` contains the filter.
    pub fn matches(&self, text: &str) -> bool {
        if self.lower.is_ascii() {
            self.is_empty() || self.find(text, 0).is_some()
        } else {
            text.to_lowercase().contains(&self.lower)
        }
    }

    /// Where the filter next occurs in `text` at or after byte `from`, as a byte range of
    /// `text`; `None` when it does not (or when the match cannot be cut out of `text` exactly,
    /// which only a non-ASCII filter can meet).
    pub fn find(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        let needle = self.lower.as_bytes();
        let rest = text.get(from..)?;
        if needle.is_empty() {
            return None;
        }
        if self.lower.is_ascii() {
            // An ASCII byte never occurs inside a multi-byte character, so any match starts
            // and ends on character boundaries.
            let first = needle[0];
            let found = rest.as_bytes().windows(needle.len()).position(|window| {
                window[0].to_ascii_lowercase() == first
                    && window.iter().zip(needle).all(|(a, b)| a.to_ascii_lowercase() == *b)
            })?;
            return Some((from + found, from + found + needle.len()));
        }
        let lower = rest.to_lowercase();
        let found = lower.find(&self.lower)?;
        let (start, end) = (from + found, from + found + needle.len());
        (lower.len() == rest.len() && text.is_char_boundary(start) && text.is_char_boundary(end))
            .then_some((start, end))
    }
}

/// Lines kept in the browser.
pub const BUFFER_LINES: usize = 100_000;
/// Height of one row in pixels (unwrapped): the virtual list relies on it.
const ROW_PX: f64 = 20.0;
/// Rows rendered beyond the visible window, above and below.
const OVERSCAN: usize = 10;
/// Rows rendered when wrapping (heights vary, so no virtualisation): the newest ones.
const WRAPPED_ROWS: usize = 2_000;

/// The rows to render at a scroll position: those in view plus `OVERSCAN` on each side, within
/// `len`. A filter can shrink the list under the scroll position; then it is the last rows.
pub fn window(len: usize, scroll_top: f64, viewport_px: f64) -> (usize, usize) {
    let count = (viewport_px / ROW_PX).ceil() as usize;
    let first = ((scroll_top.max(0.0) / ROW_PX) as usize).min(len.saturating_sub(count));
    (first.saturating_sub(OVERSCAN), (first + count + OVERSCAN).min(len))
}

/// Which buffered lines pass the filter.
#[derive(Debug, Clone, PartialEq)]
enum Visible {
    /// No filter: every line (the version makes a full buffer that moved on compare unequal).
    All { len: usize, version: u64 },
    /// Buffer positions of the matching lines.
    Matching(Vec<usize>),
}

impl Visible {
    fn len(&self) -> usize {
        match self {
            Visible::All { len, .. } => *len,
            Visible::Matching(rows) => rows.len(),
        }
    }

    /// The buffer position of the `i`th visible line.
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Visible::All { len, .. } => (i < *len).then_some(i),
            Visible::Matching(rows) => rows.get(i).copied(),
        }
    }
}

/// The viewer's line buffer; not a signal itself, `version` says when it changed.
#[derive(Default)]
struct Buffer {
    lines: VecDeque<(u64, LogLine)>,
    next_seq: u64,
    /// Lines received while paused, shown on resume (at most `BUFFER_LINES`, the newest).
    held: VecDeque<LogLine>,
    /// Last timestamp received and how many lines carried it (to resume after a reconnect), shown
    /// or held: a reconnect while paused must not fetch the held lines again.
    last_ts: Option<String>,
    at_last_ts: usize,
}

impl Buffer {
    /// Lines from the server: shown, or held while paused.
    fn receive(&mut self, lines: Vec<LogLine>, paused: bool) {
        // The resume point moves to the batch's last line: one timestamp kept per batch, not
        // one copy per line.
        if let Some(last) = lines.last() {
            let same = lines.iter().rev().take_while(|l| l.ts == last.ts).count();
            if same == lines.len() && self.last_ts.as_deref() == Some(last.ts.as_str()) {
                self.at_last_ts += same;
            } else {
                self.last_ts = Some(last.ts.clone());
                self.at_last_ts = same;
            }
        }
        for line in lines {
            if paused {
                if self.held.len() == BUFFER_LINES {
                    self.held.pop_front();
                }
                self.held.push_back(line);
            } else {
                self.push(line);
            }
        }
    }

    /// Shows what was held while paused.
    fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        held.into_iter().for_each(|line| self.push(line));
    }

    /// Where a reconnect resumes: the last timestamp received and how many lines carried it.
    #[cfg(any(feature = "hydrate", test))]
    fn resume_point(&self) -> Option<(String, usize)> {
        self.last_ts.clone().map(|ts| (ts, self.at_last_ts))
    }

    fn push(&mut self, line: LogLine) {
        if self.lines.len() == BUFFER_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back((self.next_seq, line));
        self.next_seq += 1;
    }
}

/// While lines pour in, the list is redrawn at most this often (the server batches as often).
#[cfg(feature = "hydrate")]
const REDRAW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// How soon the pods are listed again while there are none to follow (none yet, or the list
/// failed): pods that start, and a host that answers again, show up by themselves.
#[cfg(feature = "hydrate")]
const PODS_AGAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Redraws of the list as lines arrive: on the next animation frame, then not again for
/// `REDRAW_EVERY`, so a burst of batches costs one redraw instead of one per batch.
#[derive(Default)]
struct Redraw {
    /// A redraw is wanted and not done yet.
    asked: bool,
    /// A redraw was done less than `REDRAW_EVERY` ago.
    cooling: bool,
}

impl Redraw {
    fn ask(state: StoredValue<Redraw>, version: RwSignal<u64>) {
        let now = state
            .try_update_value(|r| {
                let now = !r.asked && !r.cooling;
                r.asked = true;
                now
            })
            .unwrap_or(false);
        if now {
            #[cfg(feature = "hydrate")]
            request_animation_frame(move || Self::draw(state, version));
            #[cfg(not(feature = "hydrate"))]
            Self::draw(state, version);
        }
    }

    fn draw(state: StoredValue<Redraw>, version: RwSignal<u64>) {
        state.try_update_value(|r| {
            r.asked = false;
            r.cooling = cfg!(feature = "hydrate");
        });
        version.try_update(|v| *v += 1);
        #[cfg(feature = "hydrate")]
        set_timeout(
            move || {
                let again = state
                    .try_update_value(|r| {
                        r.cooling = false;
                        r.asked
                    })
                    .unwrap_or(false);
                if again {
                    request_animation_frame(move || Self::draw(state, version));
                }
            },
            REDRAW_EVERY,
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
    /// Showing a previous run's log: complete, nothing more will come.
    Previous,
}

#[component]
pub fn LogViewer(#[prop(into)] cluster_id: String) -> impl IntoView {
    let id = cluster_id.clone();
    let pods = crate::data::data(move || id.clone(), cluster_pods);
    let selected_pod = RwSignal::new(None::<String>);
    let selected_container = RwSignal::new(None::<String>);
    let tail = RwSignal::new("1000".to_owned());
    let paused = RwSignal::new(false);
    let timestamps = RwSignal::new(true);
    let wrap = RwSignal::new(false);
    let filter = RwSignal::new(String::new());
    let follow = RwSignal::new(true);
    let connection = RwSignal::new(Connection::Connecting);
    let skipped = RwSignal::new(0u64);
    let pending = RwSignal::new(0usize);
    let buffer = StoredValue::new(Buffer::default());
    let version = RwSignal::new(0u64);
    let scroll_top = RwSignal::new(0.0f64);
    let viewport_px = RwSignal::new(480.0f64);
    let log_ref = NodeRef::<leptos::html::Div>::new();
    let previous = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let json_view = RwSignal::new(None::<String>);

    // Lines that pass the filter, as buffer positions (without a filter, all of them: no list).
    let visible = Memo::new(move |_| {
        let version = version.get();
        let needle = filter.with(|f| Needle::new(f));
        buffer.with_value(|b| {
            if needle.is_empty() {
                return Visible::All { len: b.lines.len(), version };
            }
            Visible::Matching(
                b.lines
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, l))| needle.matches(&l.text))
                    .map(|(i, _)| i)
                    .collect(),
            )
        })
    });

    let redraw = StoredValue::new(Redraw::default());
    let deliver = move |lines: Vec<LogLine>| {
        let paused = paused.get_untracked();
        buffer.update_value(|b| b.receive(lines, paused));
        if paused {
            pending.set(buffer.with_value(|b| b.held.len()));
        } else {
            Redraw::ask(redraw, version);
        }
    };

    #[cfg(feature = "hydrate")]
    {
        let cluster_id = cluster_id.clone();
        let generation = StoredValue::new(0u64);
        Effect::new(move |_| {
            let (Some(pod), container, tail, previous) =
                (selected_pod.get(), selected_container.get(), tail.get(), previous.get())
            else {
                return;
            };
            buffer.set_value(Buffer::default());
            pending.set(0);
            skipped.set(0);
            problem.set(None);
            version.update(|v| *v += 1);
            generation.update_value(|g| *g += 1);
            if previous {
                // A finished log: fetched once, no socket.
                connection.set(Connection::Previous);
                let asked = generation.get_value();
                let cluster = cluster_id.clone();
                leptos::task::spawn_local(async move {
                    let answer = crate::logs::previous_log(cluster, pod, container).await;
                    if generation.try_get_value() != Some(asked) {
                        return;
                    }
                    match answer {
                        Ok(lines) => {
                            buffer.update_value(|b| lines.into_iter().for_each(|l| b.push(l)));
                            version.update(|v| *v += 1);
                        }
                        Err(error) => problem.set(Some(error.to_string())),
                    }
                });
                return;
            }
            connection.set(Connection::Connecting);
            browser::follow(
                browser::Target { cluster: cluster_id.clone(), pod, container, tail },
                buffer,
                deliver,
                connection,
                skipped,
            );
        });
        // Keep the newest line in view while following.
        Effect::new(move |_| {
            version.track();
            if follow.get_untracked() {
                // Past the end: the browser stops at the bottom. Reading the height instead would
                // force a layout on every batch.
                if let Some(el) = log_ref.get() {
                    el.set_scroll_top(i32::MAX);
                }
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&deliver, log_ref, cluster_id.clone(), problem);

    let on_scroll = move |_| {
        if let Some(el) = log_ref.get() {
            let top = el.scroll_top() as f64;
            let height = el.client_height() as f64;
            scroll_top.set(top);
            viewport_px.set(height.max(ROW_PX));
            // Following stops when the user scrolls up and resumes at the bottom.
            let at_bottom = top + height >= el.scroll_height() as f64 - ROW_PX;
            follow.set(at_bottom);
        }
    };

    let resume = move || {
        paused.set(false);
        buffer.update_value(Buffer::release);
        pending.set(0);
        Redraw::ask(redraw, version);
    };

    let copy_visible = move |_| {
        let text = buffer.with_value(|b| {
            visible.with_untracked(|rows| {
                (0..rows.len())
                    .filter_map(|i| b.lines.get(rows.get(i)?))
                    .map(|(_, l)| {
                        if timestamps.get_untracked() {
                            format!("{} {}", l.ts, l.text)
                        } else {
                            l.text.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        });
        #[cfg(feature = "hydrate")]
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(&text);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = text;
    };

    let clear = move |_| {
        buffer.update_value(|b| b.lines.clear());
        version.update(|v| *v += 1);
    };

    // The rows to draw: a window around the scroll position, or the newest rows when wrapping.
    // Following, the window is the newest rows: the scroll that keeps them in view then changes
    // nothing, so each batch is drawn once.
    let top = move || if follow.get() { f64::INFINITY } else { scroll_top.get() };
    let rows = move || {
        let (start, end) = visible.with(|v| {
            if wrap.get() {
                (v.len().saturating_sub(WRAPPED_ROWS), v.len())
            } else {
                window(v.len(), top(), viewport_px.get())
            }
        });
        let needle = filter.get();
        buffer.with_value(|b| {
            visible.with(|v| {
                (start..end)
                    .filter_map(|i| b.lines.get(v.get(i)?).cloned())
                    .map(|(seq, line)| (seq, line, needle.clone()))
                    .collect::<Vec<_>>()
            })
        })
    };
    let spacer_above = move || {
        if wrap.get() {
            0.0
        } else {
            visible.with(|v| window(v.len(), top(), viewport_px.get()).0) as f64 * ROW_PX
        }
    };
    let total_px =
        move || if wrap.get() { 0.0 } else { visible.with(Visible::len) as f64 * ROW_PX };

    let download_href = move || {
        let pod = selected_pod.get().unwrap_or_default();
        let container = selected_container.get().unwrap_or_default();
        let previous = if previous.get() { "&previous=true" } else { "" };
        format!(
            "/api/clusters/{cluster_id}/logs/download?pod={pod}&container={container}{previous}"
        )
    };

    view! {
        <section class="card logs" aria-labelledby="logs-heading">
            <h2 id="logs-heading">"Logs"</h2>
            <Suspense fallback=|| view! { <p>"Loading pods…"</p> }>
                {move || Suspend::new(async move {
                    let pods = match pods.await {
                        Ok(pods) if !pods.is_empty() => pods,
                        answer => {
                            #[cfg(feature = "hydrate")]
                            set_timeout(move || pods.refetch(), PODS_AGAIN);
                            let text = match answer {
                                Err(error) => format!("The cluster's pods cannot be listed: {error} Trying again…"),
                                Ok(_) => "No server or agent pod yet: logs appear when the cluster's pods start.".to_owned(),
                            };
                            return view! { <p class="muted" role="status">{text}</p> }.into_any();
                        }
                    };
                    if selected_pod.get_untracked().is_none() {
                        selected_pod.set(pods.first().map(|p| p.name.clone()));
                    }

                    view! { <PodPicker pods selected_pod selected_container previous /> }.into_any()
                })}
            </Suspense>
            <div class="log-controls" role="toolbar" aria-label="Log controls">
                <label>"Tail "
                    <select aria-label="Tail" on:change=move |ev| tail.set(event_target_value(&ev))>
                        <option value="100">"100"</option>
                        <option value="1000" selected=true>"1,000"</option>
                        <option value="10000">"10,000"</option>
                        <option value="all">"all retained"</option>
                    </select>
                </label>
                <input type="search" placeholder="Filter" aria-label="Filter lines" prop:value=move || filter.get() on:input=move |ev| filter.set(event_target_value(&ev)) />
                <button type="button" class="secondary" on:click=move |_| if paused.get_untracked() { resume() } else { paused.set(true) }>
                    {move || if paused.get() { "Resume" } else { "Pause" }}
                </button>
                <label class="choice"><input type="checkbox" prop:checked=move || timestamps.get() on:change=move |ev| timestamps.set(event_target_checked(&ev)) />"Timestamps"</label>
                <label class="choice"><input type="checkbox" prop:checked=move || wrap.get() on:change=move |ev| wrap.set(event_target_checked(&ev)) />"Wrap"</label>
                <button type="button" class="secondary" on:click=copy_visible>"Copy"</button>
                <a class="button secondary-link" href=download_href download="">"Download"</a>
                <button type="button" class="secondary" on:click=clear>"Clear"</button>
                <span class="connection" role="status" aria-label="Connection">
                    {move || match connection.get() {
                        Connection::Live => "● live",
                        Connection::Connecting => "○ connecting…",
                        Connection::Reconnecting => "○ reconnecting…",
                        Connection::Previous => "■ previous run (ended)",
                    }}
                </span>
            </div>
            {move || problem.get().map(|p| view! { <p class="alert error" role="alert">{p}</p> })}
            {move || (pending.get() > 0).then(|| view! { <p class="muted small">{format!("Paused: {} new lines waiting", pending.get())}</p> })}
            {move || (skipped.get() > 0).then(|| view! { <p class="muted small" role="note">{format!("{} lines were skipped because the viewer fell behind", skipped.get())}</p> })}
            <div class="log-lines" class:wrap=move || wrap.get() node_ref=log_ref on:scroll=on_scroll role="log" aria-label="Log lines" tabindex="0">
                <div style:height=move || format!("{}px", total_px()) class="log-space">
                    <div style:transform=move || format!("translateY({}px)", spacer_above())>
                        <For each=rows key=|(seq, _, needle)| (*seq, needle.clone()) let:row>
                            <LogRow line=row.1 needle=row.2 timestamps json_view />
                        </For>
                    </div>
                </div>
            </div>
            {move || json_view.get().map(|pretty| view! {
                <div class="json-pretty">
                    <div class="json-head">
                        <strong>"JSON line"</strong>
                        <button type="button" class="secondary" on:click=move |_| json_view.set(None)>"Close"</button>
                    </div>
                    <pre aria-label="Pretty-printed JSON">{pretty}</pre>
                </div>
            })}
        </section>
    }
}

#[component]
fn PodPicker(
    pods: Vec<PodView>,
    selected_pod: RwSignal<Option<String>>,
    selected_container: RwSignal<Option<String>>,
    previous: RwSignal<bool>,
) -> impl IntoView {
    // Restarts of the chosen pod: a previous run exists when there were any.
    let restarts = {
        let pods = pods.clone();
        move || {
            let current = selected_pod.get();
            pods.iter().find(|p| Some(&p.name) == current.as_ref()).map_or(0, |p| p.restarts)
        }
    };
    let containers = {
        let pods = pods.clone();
        move || {
            let current = selected_pod.get();
            pods.iter()
                .find(|p| Some(&p.name) == current.as_ref())
                .map(|p| p.containers.clone())
                .unwrap_or_default()
        }
    };
    view! {
        <div class="log-controls">
            <label>"Pod "
                <select aria-label="Pod" on:change=move |ev| { selected_container.set(None); selected_pod.set(Some(event_target_value(&ev))); }>
                    <optgroup label="Servers">
                        {pods.iter().filter(|p| p.role == crate::metrics::PodRole::Server).map(|p| view! { <option value=p.name.clone()>{format!("{} ({})", p.name, p.phase)}</option> }).collect_view()}
                    </optgroup>
                    <optgroup label="Agents">
                        {pods.iter().filter(|p| p.role != crate::metrics::PodRole::Server).map(|p| view! { <option value=p.name.clone()>{format!("{} ({})", p.name, p.phase)}</option> }).collect_view()}
                    </optgroup>
                </select>
            </label>
            <label>"Container "
                <select aria-label="Container" on:change=move |ev| selected_container.set(Some(event_target_value(&ev)))>
                    {move || containers().into_iter().map(|c| view! { <option value=c.clone()>{c.clone()}</option> }).collect_view()}
                </select>
            </label>
                {move || (restarts() > 0 || previous.get()).then(|| view! {
                    <label class="choice" title="The log of the container before its last restart">
                        <input type="checkbox" prop:checked=move || previous.get() on:change=move |ev| previous.set(event_target_checked(&ev)) />
                        {format!("Previous run ({} restart{})", restarts(), if restarts() == 1 { "" } else { "s" })}
                    </label>
                })}
        </div>
    }
}

#[component]
fn LogRow(
    line: LogLine,
    needle: String,
    timestamps: RwSignal<bool>,
    json_view: RwSignal<Option<String>>,
) -> impl IntoView {
    let pretty = pretty_json(&line.text);
    let level = line.level.map_or("", crate::logs::Level::as_str);
    let text = line.text.clone();
    let needle = Needle::new(&needle);
    let body = if needle.is_empty() {
        view! { <span>{text}</span> }.into_any()
    } else {
        // Highlight every match.
        let mut parts = Vec::new();
        let mut at = 0;
        while let Some((start, end)) = needle.find(&text, at) {
            parts.push(view! { <span>{text[at..start].to_owned()}</span> }.into_any());
            parts.push(view! { <mark>{text[start..end].to_owned()}</mark> }.into_any());
            at = end;
        }
        parts.push(view! { <span>{text[at..].to_owned()}</span> }.into_any());
        view! { <span>{parts}</span> }.into_any()
    };
    view! {
        <div class=format!("log-line level-{level}")>
            {move || timestamps.get().then(|| view! { <span class="ts">{line.ts.clone()}" "</span> })}
            {pretty.map(|pretty| view! {
                <button type="button" class="json-toggle" title="Pretty-print this JSON line" aria-label="Pretty-print JSON" on:click=move |_| json_view.set(Some(pretty.clone()))>"{ }"</button>
            })}
            {body}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::{pretty_json, window, Buffer, Needle, BUFFER_LINES, OVERSCAN, ROW_PX};
    use crate::logs::LogLine;

    #[test]
    fn the_rendered_window_stays_inside_the_list() {
        // In the middle: the rows in view and the overscan.
        assert_eq!(
            window(100_000, 1_000.0 * ROW_PX, 10.0 * ROW_PX),
            (1_000 - OVERSCAN, 1_010 + OVERSCAN)
        );
        // At the top.
        assert_eq!(window(100_000, 0.0, 10.0 * ROW_PX), (0, 10 + OVERSCAN));
        // A filter just shrank the list far below the scroll position: the last rows, no panic.
        assert_eq!(window(57_143, 99_957.0 * ROW_PX, 10.0 * ROW_PX), (57_133 - OVERSCAN, 57_143));
        assert_eq!(window(0, 5_000.0, 400.0), (0, 0));
        assert_eq!(window(3, 0.0, 400.0), (0, 3));
        // Following: the newest rows, however far the scroll position is.
        assert_eq!(window(100, f64::INFINITY, 10.0 * ROW_PX), (90 - OVERSCAN, 100));
    }

    #[test]
    fn lines_held_while_paused_move_the_resume_point_and_show_on_resume() {
        let line = |ts: &str, text: &str| LogLine { ts: ts.into(), text: text.into(), level: None };
        let mut buffer = Buffer::default();
        buffer.receive(vec![line("t1", "a"), line("t2", "b")], false);
        assert_eq!(buffer.resume_point(), Some(("t2".into(), 1)));
        // Paused: nothing is shown, but a reconnect now must not ask for these lines again.
        buffer.receive(vec![line("t2", "c"), line("t3", "d"), line("t3", "e")], true);
        assert_eq!(buffer.lines.len(), 2);
        assert_eq!(buffer.held.len(), 3);
        assert_eq!(buffer.resume_point(), Some(("t3".into(), 2)));
        // Lines that share a timestamp across batches are counted together.
        buffer.receive(vec![line("t3", "f")], true);
        assert_eq!(buffer.resume_point(), Some(("t3".into(), 3)));
        buffer.receive(vec![], true);
        assert_eq!(buffer.resume_point(), Some(("t3".into(), 3)));
        buffer.release();
        let texts: Vec<_> = buffer.lines.iter().map(|(_, l)| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c", "d", "e", "f"]);
        assert!(buffer.held.is_empty());
        // A long pause holds the newest lines only.
        buffer.receive((0..BUFFER_LINES + 5).map(|i| line("t4", &i.to_string())).collect(), true);
        assert_eq!(buffer.held.len(), BUFFER_LINES);
        assert_eq!(buffer.held.front().unwrap().text, "5");
    }

    #[test]
    fn the_filter_matches_and_highlights_case_insensitively() {
        let info = Needle::new("Level=INFO");
        let line = r#"time="x" LEVEL=info msg="ünïcode level=Info""#;
        assert!(info.matches(line));
        let first = info.find(line, 0).unwrap();
        assert_eq!(&line[first.0..first.1], "LEVEL=info");
        let second = info.find(line, first.1).unwrap();
        assert_eq!(&line[second.0..second.1], "level=Info");
        assert_eq!(info.find(line, second.1), None);
        assert!(!info.matches("level=warning"));
        assert!(!info.matches("level=inf"));
        assert!(Needle::new("").matches("anything"));
        // A filter past the end of the text, or not ASCII.
        assert_eq!(info.find("level=info", 11), None);
        let accented = Needle::new("ÜNÏ");
        assert!(accented.matches(line));
        let found = accented.find(line, 0).unwrap();
        assert_eq!(&line[found.0..found.1], "ünï");
        assert!(!accented.matches("unicode"));
        // Lowercasing that changes the length: matched, though not highlighted.
        let dotted = Needle::new("i̇x");
        assert!(dotted.matches("İx"));
        assert_eq!(dotted.find("İx", 0), None);
    }

    #[test]
    fn json_lines_pretty_print_and_others_do_not() {
        assert_eq!(
            pretty_json(r#"{"level":"info","msg":"compact","revision":7}"#).as_deref(),
            Some("{\n  \"level\": \"info\",\n  \"msg\": \"compact\",\n  \"revision\": 7\n}")
        );
        assert_eq!(pretty_json(r#"time="x" level=info msg="{not json}""#), None);
        assert_eq!(pretty_json("{broken"), None);
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;

    use super::{Buffer, Connection};
    use crate::logs::{LogLine, LogMessage};

    pub struct Target {
        pub cluster: String,
        pub pod: String,
        pub container: Option<String>,
        pub tail: String,
    }

    /// Percent-encodes a query value (with the browser's own encoder).
    fn encode(value: &str) -> String {
        js_sys::encode_uri_component(value).into()
    }

    /// Follows one container until the component goes away; reconnects and resumes by itself
    /// after the last line it holds.
    pub fn follow(
        target: Target,
        buffer: StoredValue<Buffer>,
        deliver: impl Fn(Vec<LogLine>) + Clone + 'static,
        connection: RwSignal<Connection>,
        skipped: RwSignal<u64>,
    ) {
        let path = move || {
            let mut path = format!(
                "/ws/clusters/{}/logs?pod={}",
                encode(&target.cluster),
                encode(&target.pod)
            );
            if let Some(container) = &target.container {
                path.push_str(&format!("&container={}", encode(container)));
            }
            match buffer.with_value(Buffer::resume_point) {
                Some((ts, seen)) => {
                    path.push_str(&format!("&since={}&seen={seen}&tail=all", encode(&ts)))
                }
                None => path.push_str(&format!("&tail={}", encode(&target.tail))),
            }
            path
        };
        crate::socket::keep_open(
            path,
            move |text| match LogMessage::from_json(&text) {
                Ok(LogMessage::Lines { lines }) => {
                    if connection.get_untracked() != Connection::Live {
                        connection.set(Connection::Live);
                    }
                    deliver(lines);
                }
                Ok(LogMessage::Status { connected, .. }) => connection.set(if connected {
                    Connection::Live
                } else {
                    Connection::Reconnecting
                }),
                Ok(LogMessage::Skipped { n }) => skipped.update(|s| *s += n),
                Ok(LogMessage::Heartbeat) | Err(_) => {}
            },
            move |connected| {
                if !connected {
                    connection.set(Connection::Reconnecting);
                }
            },
        );
    }
}
