//! Small SVG charts of our own (no chart library fits Leptos 0.8 SSR + hydration without pulling
//! a JavaScript runtime): a line chart with hover values, and usage-against-quota bars.

use leptos::prelude::*;

use crate::metrics::{MetricSample, MetricsMessage, Quota, UsedOfHard};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// Points of a polyline for `values` scaled into the chart box (0 at the bottom).
pub fn polyline(values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let step = if values.len() > 1 { WIDTH / (values.len() - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, HEIGHT - (v / max) * (HEIGHT - 4.0)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn format_cpu(millicores: f64) -> String {
    if millicores >= 1000.0 {
        format!("{:.2} cores", millicores / 1000.0)
    } else {
        format!("{millicores:.0}m")
    }
}

pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[component]
fn LineChart(
    #[prop(into)] label: String,
    samples: Signal<Vec<MetricSample>>,
    value: fn(&MetricSample) -> f64,
    format: fn(f64) -> String,
) -> impl IntoView {
    let hovered = RwSignal::new(None::<usize>);
    let points = move || samples.with(|s| polyline(&s.iter().map(value).collect::<Vec<_>>()));
    let readout = move || {
        samples.with(|s| {
            let index = hovered.get().filter(|i| *i < s.len()).or(s.len().checked_sub(1))?;
            let sample = &s[index];
            Some(format!(
                "{} at {}",
                format(value(sample)),
                sample.ts.get(11..19).unwrap_or(&sample.ts)
            ))
        })
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let count = samples.with(Vec::len);
        if count == 0 {
            return;
        }
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            if let Some(target) =
                ev.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            {
                let rect = target.get_bounding_client_rect();
                let x = (ev.client_x() as f64 - rect.left()) / rect.width().max(1.0);
                hovered.set(Some(((x * (count - 1) as f64).round() as usize).min(count - 1)));
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    view! {
        <figure class="chart">
            <figcaption>
                <span>{label.clone()}</span>
                <span class="readout" aria-live="polite">{readout}</span>
            </figcaption>
            <svg
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                preserveAspectRatio="none"
                role="img"
                aria-label=label
                on:mousemove=on_move
                on:mouseleave=move |_| hovered.set(None)
            >
                <polyline points=points fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
            </svg>
        </figure>
    }
}

#[component]
fn QuotaBar(
    #[prop(into)] label: String,
    pair: Option<UsedOfHard>,
    format: fn(f64) -> String,
) -> impl IntoView {
    let Some(pair) = pair else {
        return view! { <div class="quota"><span>{label}</span><span class="muted">"no limit"</span></div> }.into_any();
    };
    let percent =
        if pair.hard > 0.0 { (pair.used / pair.hard * 100.0).clamp(0.0, 100.0) } else { 0.0 };
    view! {
        <div class="quota">
            <span>{label.clone()}</span>
            <meter min="0" max=pair.hard value=pair.used aria-label=label></meter>
            <span class="small">{format!("{} of {} ({percent:.0}%)", format(pair.used), format(pair.hard))}</span>
        </div>
    }
    .into_any()
}

/// The metrics section of a cluster's page, fed by `/ws/clusters/{id}/metrics`.
#[component]
pub fn ClusterMetrics(#[prop(into)] cluster_id: String) -> impl IntoView {
    let samples = RwSignal::new(Vec::<MetricSample>::new());
    let quota = RwSignal::new(None::<Quota>);
    let unavailable = RwSignal::new(None::<String>);
    #[cfg(feature = "hydrate")]
    browser::follow(cluster_id.clone(), samples, quota, unavailable);
    #[cfg(not(feature = "hydrate"))]
    let _ = &cluster_id;
    let samples_signal = Signal::from(samples);
    view! {
        <section class="card metrics" aria-labelledby="metrics-heading">
            <h2 id="metrics-heading">"Metrics"</h2>
            {move || unavailable.get().map(|reason| view! { <p class="alert error" role="status">{format!("Metrics unavailable: {reason}")}</p> })}
            {move || (samples.with(Vec::is_empty) && unavailable.with(Option::is_none)).then(|| view! { <p class="muted">"Waiting for the first measurement…"</p> })}
            <div class="charts">
                <LineChart label="CPU" samples=samples_signal value=|s| s.cpu_millicores format=format_cpu />
                <LineChart label="Memory" samples=samples_signal value=|s| s.memory_bytes as f64 format=format_bytes />
            </div>
            <h3>"Usage against quota"</h3>
            {move || {
                let q = quota.get().unwrap_or_default();
                view! {
                    <div class="quotas" aria-label="Quota usage">
                        <QuotaBar label="CPU" pair=q.cpu format=format_cpu />
                        <QuotaBar label="Memory" pair=q.memory format=format_bytes />
                        <QuotaBar label="Storage" pair=q.storage format=format_bytes />
                        <QuotaBar label="Pods" pair=q.pods format=|v| format!("{v:.0}") />
                    </div>
                }
            }}
        </section>
    }
}

/// Applies one message to the chart state (kept separate so it is easy to test).
pub fn apply(
    message: MetricsMessage,
    samples: &mut Vec<MetricSample>,
    quota: &mut Option<Quota>,
    unavailable: &mut Option<String>,
) {
    const KEEP: usize = 360;
    match message {
        MetricsMessage::History { samples: history } => *samples = history,
        MetricsMessage::Sample { sample } => {
            *unavailable = None;
            samples.push(sample);
            if samples.len() > KEEP {
                samples.remove(0);
            }
        }
        MetricsMessage::Quota { quota: q } => *quota = Some(q),
        MetricsMessage::Unavailable { reason } => *unavailable = Some(reason),
        MetricsMessage::Heartbeat => {}
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use futures::StreamExt;
    use gloo_net::websocket::{futures::WebSocket, Message};
    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::apply;
    use crate::metrics::{MetricSample, MetricsMessage, Quota};

    pub fn follow(
        cluster: String,
        samples: RwSignal<Vec<MetricSample>>,
        quota: RwSignal<Option<Quota>>,
        unavailable: RwSignal<Option<String>>,
    ) {
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        on_cleanup(move || stop.store(true, Ordering::Relaxed));
        spawn_local(async move {
            let mut backoff = 500;
            while !stopped.load(Ordering::Relaxed) {
                let url = web_sys::window().and_then(|w| {
                    let location = w.location();
                    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
                    Some(format!(
                        "{scheme}://{}/ws/clusters/{cluster}/metrics",
                        location.host().ok()?
                    ))
                });
                if let Some(socket) = url.and_then(|u| WebSocket::open(&u).ok()) {
                    let (_, mut incoming) = socket.split();
                    while let Some(Ok(Message::Text(text))) = incoming.next().await {
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        backoff = 500;
                        if let Ok(message) = serde_json::from_str::<MetricsMessage>(&text) {
                            let (mut s, mut q, mut u) = (
                                samples.get_untracked(),
                                quota.get_untracked(),
                                unavailable.get_untracked(),
                            );
                            apply(message, &mut s, &mut q, &mut u);
                            samples.set(s);
                            quota.set(q);
                            unavailable.set(u);
                        }
                    }
                }
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                gloo_timers::future::TimeoutFuture::new(backoff).await;
                backoff = (backoff * 2).min(10_000);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polyline_scales_to_the_box() {
        assert_eq!(polyline(&[0.0, 50.0, 100.0]), "0.0,120.0 300.0,62.0 600.0,4.0");
        assert_eq!(polyline(&[]), "");
    }

    #[test]
    fn units_read_well() {
        assert_eq!(format_cpu(250.0), "250m");
        assert_eq!(format_cpu(1500.0), "1.50 cores");
        assert_eq!(format_bytes(512.0 * 1024.0 * 1024.0), "512.0 MiB");
    }

    #[test]
    fn a_sample_after_an_outage_clears_it() {
        let (mut s, mut q, mut u) = (Vec::new(), None, None);
        apply(MetricsMessage::Unavailable { reason: "down".into() }, &mut s, &mut q, &mut u);
        assert_eq!(u.as_deref(), Some("down"));
        let sample = MetricSample {
            ts: "2026-11-22T03:00:00Z".into(),
            cpu_millicores: 1.0,
            memory_bytes: 2,
            by_pod: vec![],
        };
        apply(MetricsMessage::Sample { sample }, &mut s, &mut q, &mut u);
        assert!(u.is_none());
        assert_eq!(s.len(), 1);
    }
}
