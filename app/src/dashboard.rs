//! The dashboard: home once signed in. Every cluster of the user as a card (phase, endpoint, CPU
//! and memory sparklines, quota bars), the user's totals against their limits, and guidance for
//! a first cluster. The page renders on the server from [`get_dashboard`]; in the browser one
//! websocket (`/ws/dashboard`) keeps phases and numbers live.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, platform, require_user};
use crate::clusters::api::{ClusterPhase, ClusterSummary};
use crate::clusters::pages::PhaseBadge;
use crate::error::ApiError;
use crate::metrics::charts::{self, format_bytes, format_cpu, QuotaBar, Sparkline};
use crate::metrics::{DashboardMessage, MetricSample, MetricsMessage, Quota, UsedOfHard};

/// What the dashboard needs before its socket says anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub username: String,
    pub clusters: Vec<ClusterSummary>,
    pub max_clusters: usize,
    /// Seconds between measurements.
    pub interval_secs: u64,
}

/// The dashboard of the signed-in user; `None` for visitors (home shows the introduction).
#[server(prefix = "/api", endpoint = "dashboard")]
pub async fn get_dashboard() -> Result<Option<Dashboard>, ApiError> {
    answer(async {
        let current = match require_user().await {
            Ok(current) => current,
            Err(ApiError::Unauthenticated) => return Ok(None),
            Err(other) => return Err(other),
        };
        let platform = platform()?;
        let clusters = platform.clusters();
        let rows = clusters.list(current.user.id).await?;
        let interval_secs = platform.metrics().settings().interval.as_secs();
        Ok(Some(Dashboard {
            username: current.user.username.clone(),
            clusters: rows.iter().map(ClusterSummary::from).collect(),
            max_clusters: clusters
                .settings_for(current.user.id)
                .await
                .map_err(platform::clusters::ClusterError::from)?
                .max_clusters,
            interval_secs,
        }))
    })
    .await
}

/// One card's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardState {
    pub samples: Vec<MetricSample>,
    pub quota: Option<Quota>,
    pub unavailable: Option<String>,
}

/// Samples a sparkline keeps.
const SPARK_POINTS: usize = 90;

/// A per-cluster message as the cluster page's chart message, or `None` for the others.
fn per_cluster(message: DashboardMessage) -> Result<(String, MetricsMessage), DashboardMessage> {
    match message {
        DashboardMessage::History { cluster, samples } => {
            Ok((cluster, MetricsMessage::History { samples }))
        }
        DashboardMessage::Sample { cluster, sample } => {
            Ok((cluster, MetricsMessage::Sample { sample }))
        }
        DashboardMessage::Quota { cluster, quota } => {
            Ok((cluster, MetricsMessage::Quota { quota }))
        }
        DashboardMessage::Unavailable { cluster, reason } => {
            Ok((cluster, MetricsMessage::Unavailable { reason }))
        }
        other => Err(other),
    }
}

/// Applies one cluster's message to its card, keeping a bounded window of samples.
pub fn apply_card(card: &mut CardState, message: MetricsMessage) {
    charts::apply(message, &mut card.samples, &mut card.quota, &mut card.unavailable);
    let excess = card.samples.len().saturating_sub(SPARK_POINTS);
    card.samples.drain(..excess);
}

/// Applies one socket message. Returns the new cluster list if the message was one (cards of
/// clusters no longer in it go), and otherwise updates the card it names.
pub fn apply(
    message: DashboardMessage,
    cards: &mut BTreeMap<String, CardState>,
) -> Option<Vec<ClusterSummary>> {
    match per_cluster(message) {
        Ok((cluster, message)) => {
            apply_card(cards.entry(cluster).or_default(), message);
            None
        }
        Err(DashboardMessage::Clusters { clusters }) => {
            cards.retain(|id, _| clusters.iter().any(|c| &c.id == id));
            Some(clusters)
        }
        Err(_) => None,
    }
}

/// The user's totals: usage now (sum of the latest sample of every cluster with numbers) and
/// the quotas summed over their clusters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub cpu_millicores: f64,
    pub memory_bytes: f64,
    /// Clusters whose numbers are in the sums.
    pub measured: usize,
    pub cpu: Option<UsedOfHard>,
    pub memory: Option<UsedOfHard>,
    pub storage: Option<UsedOfHard>,
}

pub fn totals(cards: &BTreeMap<String, CardState>) -> Totals {
    let mut totals = Totals::default();
    let add = |sum: &mut Option<UsedOfHard>, pair: Option<UsedOfHard>| {
        if let Some(pair) = pair {
            let s = sum.get_or_insert(UsedOfHard { used: 0.0, hard: 0.0 });
            s.used += pair.used;
            s.hard += pair.hard;
        }
    };
    for card in cards.values() {
        if card.unavailable.is_none() {
            if let Some(last) = card.samples.last() {
                totals.cpu_millicores += last.cpu_millicores;
                totals.memory_bytes += last.memory_bytes as f64;
                totals.measured += 1;
            }
        }
        if let Some(quota) = &card.quota {
            add(&mut totals.cpu, quota.cpu);
            add(&mut totals.memory, quota.memory);
            add(&mut totals.storage, quota.storage);
        }
    }
    totals
}

/// The dashboard's live state. Each card reads its own slice through a memo, so a sample
/// re-renders only its card.
#[derive(Clone, Copy)]
struct Live {
    clusters: RwSignal<Vec<ClusterSummary>>,
    cards: RwSignal<BTreeMap<String, CardState>>,
    connected: RwSignal<bool>,
}

impl Live {
    /// The browser side of [`apply`].
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn receive(&self, message: DashboardMessage) {
        if message == DashboardMessage::Heartbeat {
            return;
        }
        let mut list = None;
        self.cards.update(|cards| list = apply(message, cards));
        if let Some(clusters) = list {
            self.clusters.set(clusters);
        }
    }
}

#[component]
pub fn DashboardView(dashboard: Dashboard) -> impl IntoView {
    let live = Live {
        clusters: RwSignal::new(dashboard.clusters.clone()),
        cards: RwSignal::new(BTreeMap::new()),
        connected: RwSignal::new(false),
    };
    #[cfg(feature = "hydrate")]
    browser::follow(live);
    let max_clusters = dashboard.max_clusters;
    let interval = dashboard.interval_secs;
    let count = move || live.clusters.with(Vec::len);
    let totals = Memo::new(move |_| live.cards.with(totals));
    view! {
        <div class="page-head">
            <h1>"Dashboard"</h1>
            <span class="live-indicator" class:connected=move || live.connected.get() aria-live="polite">
                {move || if live.connected.get() { "Live" } else { "Connecting…" }}
            </span>
            <A href="/clusters/new" attr:class="button">"Create a cluster"</A>
        </div>
        <section class="card totals" aria-labelledby="totals-heading">
            <h2 id="totals-heading">"Your usage"</h2>
            <dl class="totals-grid" aria-label="Your totals">
                <div>
                    <dt>"Clusters"</dt>
                    <dd data-total="clusters">{move || format!("{} of {max_clusters}", count())}</dd>
                </div>
                <div>
                    <dt>"CPU in use"</dt>
                    <dd data-total="cpu">{move || totals.with(|t| if t.measured == 0 { "—".to_owned() } else { format_cpu(t.cpu_millicores) })}</dd>
                </div>
                <div>
                    <dt>"Memory in use"</dt>
                    <dd data-total="memory">{move || totals.with(|t| if t.measured == 0 { "—".to_owned() } else { format_bytes(t.memory_bytes) })}</dd>
                </div>
            </dl>
            {move || {
                let t = totals.get();
                (t.cpu.is_some() || t.memory.is_some() || t.storage.is_some()).then(|| view! {
                    <div class="quotas" aria-label="Quota of all your clusters">
                        <QuotaBar label="CPU requests" pair=t.cpu format=format_cpu />
                        <QuotaBar label="Memory requests" pair=t.memory format=format_bytes />
                        <QuotaBar label="Storage" pair=t.storage format=format_bytes />
                    </div>
                })
            }}
            <p class="muted small">{format!("Measured every {interval} s. Each cluster has its own quota; the bars add them up.")}</p>
        </section>
        <Show when=move || count() != 0 fallback=|| view! { <FirstCluster /> }>
            <div class="cards" role="list" aria-label="Your clusters">
                <For
                    each=move || live.clusters.get()
                    key=card_key
                    let:cluster
                >
                    <ClusterCard card=card_of(live, cluster.id.clone()) cluster />
                </For>
            </div>
        </Show>
    }
}

/// Everything a card shows of its cluster's summary: the card is built again when any of it
/// changes (its numbers come through its own memo). A field left out goes stale on the page, as
/// the expiry warning did: still "Deleted in 3 h" after the cluster was kept.
type CardKey = (String, ClusterPhase, Option<String>, Option<String>, Option<String>);

fn card_key(c: &ClusterSummary) -> CardKey {
    (c.id.clone(), c.phase, c.endpoint.clone(), c.message.clone(), c.expires_soon.clone())
}

fn card_of(live: Live, id: String) -> Memo<CardState> {
    Memo::new(move |_| live.cards.with(|cards| cards.get(&id).cloned().unwrap_or_default()))
}

#[component]
fn FirstCluster() -> impl IntoView {
    view! {
        <div class="empty card">
            <h2>"Create your first cluster"</h2>
            <ol class="steps">
                <li>"Create a cluster: pick a name, and we set up a Kubernetes API server for you in a few seconds."</li>
                <li>"Download its kubeconfig from the cluster's page."</li>
                <li><code>"kubectl --kubeconfig <file> get nodes"</code>" and you are in."</li>
            </ol>
            <p>"Its CPU and memory show up here as soon as it is running."</p>
            <A href="/clusters/new" attr:class="button">"Create a cluster"</A>
        </div>
    }
}

/// Why a card has no numbers, in words.
fn no_numbers(phase: ClusterPhase, unavailable: Option<&str>) -> Option<String> {
    match phase {
        ClusterPhase::Ready | ClusterPhase::Degraded => {
            unavailable.map(|reason| format!("Metrics unavailable: {reason}"))
        }
        ClusterPhase::Failed => Some("No metrics: the cluster failed.".to_owned()),
        ClusterPhase::Deleting | ClusterPhase::Terminating => {
            Some("No metrics: the cluster is being deleted.".to_owned())
        }
        ClusterPhase::Pending | ClusterPhase::Provisioning | ClusterPhase::Unknown => {
            Some("Metrics appear once the cluster is Ready.".to_owned())
        }
    }
}

#[component]
fn ClusterCard(cluster: ClusterSummary, card: Memo<CardState>) -> impl IntoView {
    let phase = cluster.phase;
    let cpu = Signal::derive(move || {
        card.with(|c| c.samples.iter().map(|s| s.cpu_millicores).collect::<Vec<_>>())
    });
    let memory = Signal::derive(move || {
        card.with(|c| c.samples.iter().map(|s| s.memory_bytes as f64).collect::<Vec<_>>())
    });
    let message = move || card.with(|c| no_numbers(phase, c.unavailable.as_deref()));
    let latest = move |f: fn(&MetricSample) -> String| {
        move || {
            card.with(|c| match (&c.unavailable, c.samples.last()) {
                (None, Some(s)) => f(s),
                _ => "—".to_owned(),
            })
        }
    };
    let href = format!("/clusters/{}", cluster.id);
    let quota_label = format!("Quota of {}", cluster.name);
    let name = cluster.name.clone();
    view! {
        <article class="card cluster-card" role="listitem" data-cluster=cluster.name.clone() aria-label=cluster.name.clone()>
            <header>
                // A plain link, as in the clusters table: the router takes over the click anyway,
                // and <A>'s active-link tracking would cost an owner and a memo per card.
                <h2><a href=href>{name}</a></h2>
                <PhaseBadge phase=phase />
            </header>
            {cluster.message.clone().map(|m| view! { <p class="muted small">{m}</p> })}
            // Same view type as the message's: no new code in the bundle.
            {cluster.expires_soon.clone().map(|e| view! { <p class="expiry">{format!("Deleted {e} unless kept on its page.")}</p> })}
            <p class="endpoint"><code>{cluster.endpoint.clone().unwrap_or_else(|| "API endpoint available when Ready".into())}</code></p>
            {move || message().map(|m| view! { <p class="muted unavailable" role="status">{m}</p> })}
            <div class="sparks">
                <Sparkline label="CPU" values=cpu latest=Signal::derive(latest(|s| format_cpu(s.cpu_millicores))) />
                <Sparkline label="Memory" values=memory latest=Signal::derive(latest(|s| format_bytes(s.memory_bytes as f64))) />
            </div>
            {move || card.with(|c| c.quota.clone()).map(|q| view! {
                <div class="quotas" aria-label=quota_label.clone()>
                    <QuotaBar label="CPU" pair=q.cpu format=format_cpu />
                    <QuotaBar label="Memory" pair=q.memory format=format_bytes />
                    <QuotaBar label="Pods" pair=q.pods format=|v| format!("{v:.0}") />
                </div>
            })}
        </article>
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;

    use super::Live;
    use crate::metrics::DashboardMessage;

    pub(super) fn follow(live: Live) {
        crate::socket::keep_open(
            || "/ws/dashboard".to_owned(),
            move |text| {
                if let Ok(message) = serde_json::from_slice::<DashboardMessage>(text.as_bytes()) {
                    live.receive(message);
                }
            },
            move |connected| live.connected.set(connected),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str) -> ClusterSummary {
        ClusterSummary {
            id: id.into(),
            name: id.into(),
            phase: ClusterPhase::Ready,
            message: None,
            endpoint: None,
            mode: crate::clusters::api::ClusterMode::Virtual,
            servers: 1,
            agents: 0,
            version: "v1.31".into(),
            created_at: "2026-11-22T00:00:00Z".into(),
            expires_soon: None,
        }
    }

    fn sample(cpu: f64, memory: u64) -> MetricSample {
        MetricSample {
            ts: "2026-11-22T00:00:00Z".into(),
            cpu_millicores: cpu,
            memory_bytes: memory,
            by_pod: vec![],
        }
    }

    #[test]
    fn a_card_is_built_again_when_anything_it_shows_changes() {
        let before = summary("a");
        let changes: [fn(&mut ClusterSummary); 4] = [
            |c| c.phase = ClusterPhase::Degraded,
            |c| c.endpoint = Some("https://a.example".into()),
            |c| c.message = Some("Waiting for the server".into()),
            |c| c.expires_soon = Some("in 3 h".into()),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut after = before.clone();
            change(&mut after);
            assert_ne!(card_key(&before), card_key(&after), "change {i} left the card as it was");
        }
        // A cluster keeps its name; its size and version are not on the card.
        let mut after = before.clone();
        after.servers = 3;
        after.version = "v1.32".into();
        assert_eq!(card_key(&before), card_key(&after));
    }

    #[test]
    fn messages_land_on_their_own_card() {
        let mut cards = BTreeMap::new();
        let history =
            DashboardMessage::History { cluster: "a".into(), samples: vec![sample(1.0, 1)] };
        assert!(apply(history, &mut cards).is_none());
        apply(DashboardMessage::Sample { cluster: "b".into(), sample: sample(5.0, 7) }, &mut cards);
        apply(DashboardMessage::Sample { cluster: "a".into(), sample: sample(2.0, 2) }, &mut cards);
        assert_eq!(cards["a"].samples.len(), 2);
        assert_eq!(cards["b"].samples.len(), 1);
        let list = apply(DashboardMessage::Clusters { clusters: vec![summary("a")] }, &mut cards);
        assert_eq!(list.map(|l| l.len()), Some(1));
        assert!(!cards.contains_key("b"), "a deleted cluster's card goes");
    }

    #[test]
    fn sparklines_keep_a_bounded_window() {
        let mut cards = BTreeMap::new();
        for i in 0..(SPARK_POINTS + 25) {
            let message =
                DashboardMessage::Sample { cluster: "a".into(), sample: sample(i as f64, 0) };
            apply(message, &mut cards);
        }
        assert_eq!(cards["a"].samples.len(), SPARK_POINTS);
        assert_eq!(cards["a"].samples.last().map(|s| s.cpu_millicores), Some(114.0));
    }

    #[test]
    fn totals_add_up_clusters_with_numbers_and_their_quotas() {
        let mut cards = BTreeMap::new();
        let quota = |used, hard| Quota {
            cpu: Some(UsedOfHard { used, hard }),
            memory: None,
            storage: Some(UsedOfHard { used: 1.0, hard: 10.0 }),
            pods: None,
        };
        apply(
            DashboardMessage::Sample { cluster: "a".into(), sample: sample(100.0, 10) },
            &mut cards,
        );
        apply(
            DashboardMessage::Sample { cluster: "b".into(), sample: sample(50.0, 5) },
            &mut cards,
        );
        apply(
            DashboardMessage::Quota { cluster: "a".into(), quota: quota(200.0, 4000.0) },
            &mut cards,
        );
        apply(
            DashboardMessage::Quota { cluster: "b".into(), quota: quota(300.0, 4000.0) },
            &mut cards,
        );
        // c is down: its last sample must not count as current usage.
        apply(
            DashboardMessage::Sample { cluster: "c".into(), sample: sample(999.0, 999) },
            &mut cards,
        );
        apply(
            DashboardMessage::Unavailable { cluster: "c".into(), reason: "down".into() },
            &mut cards,
        );
        let t = totals(&cards);
        assert_eq!(t.measured, 2);
        assert_eq!(t.cpu_millicores, 150.0);
        assert_eq!(t.memory_bytes, 15.0);
        assert_eq!(t.cpu, Some(UsedOfHard { used: 500.0, hard: 8000.0 }));
        assert_eq!(t.storage, Some(UsedOfHard { used: 2.0, hard: 20.0 }));
        assert_eq!(t.memory, None);
    }

    #[test]
    fn cards_explain_missing_numbers() {
        assert_eq!(no_numbers(ClusterPhase::Ready, None), None);
        assert_eq!(
            no_numbers(ClusterPhase::Ready, Some("the metrics API is unavailable")).as_deref(),
            Some("Metrics unavailable: the metrics API is unavailable")
        );
        assert_eq!(
            no_numbers(ClusterPhase::Provisioning, None).as_deref(),
            Some("Metrics appear once the cluster is Ready.")
        );
    }
}
