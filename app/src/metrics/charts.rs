//! Small SVG charts of our own (no chart library fits Leptos 0.8 SSR + hydration without pulling
//! a JavaScript runtime): a line chart with hover values, and usage-against-quota bars.

use leptos::prelude::*;

use crate::metrics::{MetricSample, MetricsMessage, PodUsageView, Quota, UsedOfHard};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// Points of a polyline for `values` scaled into the chart box (0 at the bottom).
pub fn polyline(values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    let points: Vec<Option<f64>> = values.iter().map(|v| Some(*v)).collect();
    polyline_scaled(&points, max)
}

/// Like [`polyline`] for a series with holes (a pod missing from some samples), against a
/// shared maximum so several series can share one chart. Holes are skipped.
pub fn polyline_scaled(values: &[Option<f64>], max: f64) -> String {
    let max = max.max(f64::MIN_POSITIVE);
    let step = if values.len() > 1 { WIDTH / (values.len() - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| format!("{:.1},{:.1}", i as f64 * step, HEIGHT - (v / max) * (HEIGHT - 4.0)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pods that appear in `samples`, sorted, and each pod's values aligned with the samples.
pub fn pod_series(
    samples: &[MetricSample],
    value: fn(&PodUsageView) -> f64,
) -> Vec<(String, Vec<Option<f64>>)> {
    let mut pods: Vec<String> =
        samples.iter().flat_map(|s| s.by_pod.iter().map(|p| p.pod.clone())).collect();
    pods.sort();
    pods.dedup();
    pods.into_iter()
        .map(|pod| {
            let values =
                samples.iter().map(|s| s.by_pod.iter().find(|p| p.pod == pod).map(value)).collect();
            (pod, values)
        })
        .collect()
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

/// A chart of a cluster's total and of each of its pods over time. Hovering shows the values
/// at that moment.
#[component]
fn LineChart(
    #[prop(into)] label: String,
    samples: Signal<Vec<MetricSample>>,
    value: fn(&MetricSample) -> f64,
    pod_value: fn(&PodUsageView) -> f64,
    format: fn(f64) -> String,
) -> impl IntoView {
    let hovered = RwSignal::new(None::<usize>);
    let series = Memo::new(move |_| samples.with(|s| pod_series(s, pod_value)));
    let max = move || samples.with(|s| s.iter().map(value).fold(0.0_f64, f64::max));
    let total_points = move || {
        samples
            .with(|s| polyline_scaled(&s.iter().map(|x| Some(value(x))).collect::<Vec<_>>(), max()))
    };
    // The hovered sample, else the newest.
    let shown = move || {
        let index = hovered.get();
        samples.with(|s| index.filter(|i| *i < s.len()).or(s.len().checked_sub(1)))
    };
    let readout = move || {
        let index = shown()?;
        samples.with(|s| {
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
    let marker = move || {
        let count = samples.with(Vec::len);
        hovered.get().filter(|i| *i < count).map(|i| {
            let x = if count > 1 { i as f64 * WIDTH / (count - 1) as f64 } else { 0.0 };
            view! { <line class="marker" x1=x x2=x y1="0" y2=HEIGHT vector-effect="non-scaling-stroke" /> }
        })
    };
    let legend_label = label.clone();
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
                {move || {
                    let max = max();
                    series.with(|series| {
                        series
                            .iter()
                            .enumerate()
                            .map(|(i, (_, values))| view! {
                                <polyline class=format!("series series-{}", i % 6) points=polyline_scaled(values, max) fill="none" stroke-width="1.5" vector-effect="non-scaling-stroke" />
                            })
                            .collect_view()
                    })
                }}
                <polyline class="total" points=total_points fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
                {marker}
            </svg>
            <ul class="legend" aria-label=format!("{legend_label} by pod")>
                <li class="total">"Total"</li>
                {move || {
                    let index = shown();
                    series.with(|series| {
                        series
                            .iter()
                            .enumerate()
                            .map(|(i, (pod, values))| {
                                let at = index.and_then(|index| values.get(index).copied().flatten());
                                view! {
                                    <li class=format!("series-{}", i % 6) data-pod=pod.clone()>
                                        <span class="swatch"></span>
                                        {pod.clone()}
                                        ": "
                                        <span class="value">{at.map_or_else(|| "—".to_owned(), format)}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    })
                }}
            </ul>
        </figure>
    }
}

/// A small chart without axes for cards: the shape of the last minutes and the latest value.
#[component]
pub fn Sparkline(
    #[prop(into)] label: String,
    values: Signal<Vec<f64>>,
    latest: Signal<String>,
) -> impl IntoView {
    view! {
        <figure class="spark">
            <figcaption>
                <span>{label.clone()}</span>
                <span class="readout" data-readout=label.to_lowercase()>{latest}</span>
            </figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img" aria-label=format!("{label} over time")>
                <polyline points=move || values.with(|v| polyline(v)) fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
            </svg>
        </figure>
    }
}

#[component]
pub fn QuotaBar(
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
                <LineChart label="CPU" samples=samples_signal value=|s| s.cpu_millicores pod_value=|p| p.cpu_millicores format=format_cpu />
                <LineChart label="Memory" samples=samples_signal value=|s| s.memory_bytes as f64 pod_value=|p| p.memory_bytes as f64 format=format_bytes />
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
    use leptos::prelude::*;

    use super::apply;
    use crate::metrics::{MetricSample, MetricsMessage, Quota};

    pub fn follow(
        cluster: String,
        samples: RwSignal<Vec<MetricSample>>,
        quota: RwSignal<Option<Quota>>,
        unavailable: RwSignal<Option<String>>,
    ) {
        crate::socket::keep_open(
            move || format!("/ws/clusters/{cluster}/metrics"),
            move |text| {
                if let Ok(message) = serde_json::from_slice::<MetricsMessage>(text.as_bytes()) {
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
            },
            |_| {},
        );
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
    fn pods_line_up_with_samples_and_holes_are_skipped() {
        let pod = |name: &str, cpu: f64| PodUsageView {
            pod: name.into(),
            role: crate::metrics::PodRole::Server,
            cpu_millicores: cpu,
            memory_bytes: 0,
        };
        let at = |by_pod: Vec<PodUsageView>| MetricSample {
            ts: "2026-11-22T03:00:00Z".into(),
            cpu_millicores: by_pod.iter().map(|p| p.cpu_millicores).sum(),
            memory_bytes: 0,
            by_pod,
        };
        let samples = vec![
            at(vec![pod("server-0", 10.0)]),
            at(vec![pod("server-0", 20.0), pod("agent-0", 5.0)]),
        ];
        let series = pod_series(&samples, |p| p.cpu_millicores);
        assert_eq!(
            series,
            vec![
                ("agent-0".to_owned(), vec![None, Some(5.0)]),
                ("server-0".to_owned(), vec![Some(10.0), Some(20.0)]),
            ]
        );
        assert_eq!(polyline_scaled(&series[0].1, 25.0), "600.0,96.8");
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
