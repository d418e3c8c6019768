//! The log hub: one upstream `pods/{pod}/log?follow=true` stream per (namespace, pod, container)
//! however many viewers watch it, started by the first viewer and stopped shortly after the
//! last one leaves.
//!
//! Each upstream keeps a bounded ring of recent lines (what a new viewer's tail comes from) and
//! fans lines out through a bounded broadcast channel: a slow viewer loses lines and is told how
//! many, it never slows the others or grows memory. When the upstream drops it is reopened with
//! backoff from the last timestamp seen, and lines already delivered are skipped, counting lines
//! that share a timestamp so that none repeats and none vanishes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use tokio::sync::broadcast;

/// Which container's log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// One line as viewers get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The kubelet's timestamp of the line.
    pub ts: DateTime<Utc>,
    pub text: String,
    /// `info`, `warn`, `error`, `debug`... when the line says so (logfmt, JSON or klog).
    pub level: Option<&'static str>,
}

/// What a viewer receives after its initial tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    Line(Arc<LogLine>),
    /// Whether the upstream stream is open; `message` says why not.
    Status {
        connected: bool,
        message: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Lines kept per upstream for new viewers' tails ("all retained").
    pub ring_lines: usize,
    /// How far a viewer may fall behind before it loses lines.
    pub viewer_buffer: usize,
    /// How long an upstream stays open after its last viewer left.
    pub linger: Duration,
    /// Longer lines are cut, with a marker.
    pub max_line_chars: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            ring_lines: 10_000,
            viewer_buffer: 4_096,
            linger: Duration::from_secs(5),
            max_line_chars: 10_000,
        }
    }
}

/// A viewer's handle: its tail, and the live events after it. Dropping it leaves.
pub struct LogSubscription {
    pub tail: Vec<Arc<LogLine>>,
    pub connected: bool,
    pub events: broadcast::Receiver<LogEvent>,
    _viewer: ViewerGuard,
}

struct ViewerGuard(Arc<Upstream>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        if self.0.viewers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_one();
        }
    }
}

struct Upstream {
    key: LogKey,
    ring: Mutex<VecDeque<Arc<LogLine>>>,
    sender: broadcast::Sender<LogEvent>,
    viewers: AtomicUsize,
    connected: std::sync::atomic::AtomicBool,
    idle: tokio::sync::Notify,
}

pub struct LogHub {
    client: kube::Client,
    settings: LogSettings,
    upstreams: Mutex<HashMap<LogKey, Weak<Upstream>>>,
    /// Upstream log requests opened so far (for tests and benchmarks).
    opened: AtomicU64,
}

impl LogHub {
    pub fn new(client: kube::Client, settings: LogSettings) -> Arc<Self> {
        Arc::new(Self {
            client,
            settings,
            upstreams: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
        })
    }

    /// How many upstream log requests the hub has opened.
    pub fn upstream_requests(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// How many upstreams are running now.
    pub fn upstreams(&self) -> usize {
        self.lock().values().filter(|u| u.strong_count() > 0).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LogKey, Weak<Upstream>>> {
        self.upstreams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins (or starts) the upstream for `key`. `tail` limits the initial lines (`None`: all
    /// retained); `after` resumes after a line already seen: its timestamp and how many lines
    /// with exactly that timestamp the viewer has.
    pub fn subscribe(
        self: &Arc<Self>,
        key: LogKey,
        tail: Option<usize>,
        after: Option<(DateTime<Utc>, usize)>,
    ) -> LogSubscription {
        let upstream = {
            let mut upstreams = self.lock();
            upstreams.retain(|_, u| u.strong_count() > 0);
            match upstreams.get(&key).and_then(Weak::upgrade) {
                Some(upstream) => upstream,
                None => {
                    let (sender, _) = broadcast::channel(self.settings.viewer_buffer.max(16));
                    let upstream = Arc::new(Upstream {
                        key: key.clone(),
                        ring: Mutex::new(VecDeque::new()),
                        sender,
                        viewers: AtomicUsize::new(0),
                        connected: std::sync::atomic::AtomicBool::new(false),
                        idle: tokio::sync::Notify::new(),
                    });
                    upstreams.insert(key, Arc::downgrade(&upstream));
                    tokio::spawn(self.clone().pump(upstream.clone()));
                    upstream
                }
            }
        };
        upstream.viewers.fetch_add(1, Ordering::AcqRel);
        // Subscribe and copy the ring under the ring's lock: the pump pushes to the ring and
        // broadcasts under the same lock, so no line falls between the tail and the events.
        let ring = upstream.ring.lock().unwrap_or_else(|p| p.into_inner());
        let events = upstream.sender.subscribe();
        let mut lines: Vec<Arc<LogLine>> = match after {
            Some((ts, seen)) => {
                let mut same = 0;
                ring.iter()
                    .filter(|l| {
                        if l.ts < ts {
                            false
                        } else if l.ts == ts {
                            same += 1;
                            same > seen
                        } else {
                            true
                        }
                    })
                    .cloned()
                    .collect()
            }
            None => ring.iter().cloned().collect(),
        };
        drop(ring);
        if let Some(tail) = tail {
            let skip = lines.len().saturating_sub(tail);
            lines.drain(..skip);
        }
        LogSubscription {
            tail: lines,
            connected: upstream.connected.load(Ordering::Acquire),
            events,
            _viewer: ViewerGuard(upstream),
        }
    }

    /// Runs one upstream until it has had no viewer for `linger`.
    async fn pump(self: Arc<Self>, upstream: Arc<Upstream>) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &upstream.key.namespace);
        let mut last: Option<(DateTime<Utc>, usize)> = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            let params = LogParams {
                container: Some(upstream.key.container.clone()),
                follow: true,
                timestamps: true,
                tail_lines: if last.is_none() {
                    Some(self.settings.ring_lines as i64)
                } else {
                    None
                },
                // Whole seconds, rounded down a second more: the skip below removes what repeats.
                since_seconds: last.map(|(ts, _)| ((Utc::now() - ts).num_seconds() + 2).max(1)),
                ..Default::default()
            };
            self.opened.fetch_add(1, Ordering::Relaxed);
            let outcome = tokio::select! {
                result = self.follow(&pods, &upstream, &params, &mut last) => result,
                () = self.wait_idle(&upstream) => return self.stop(&upstream),
            };
            let message = match outcome {
                Ok(()) => "the log stream ended".to_owned(),
                Err(error) => error,
            };
            if upstream.connected.swap(false, Ordering::AcqRel) {
                let _ = upstream
                    .sender
                    .send(LogEvent::Status { connected: false, message: Some(message.clone()) });
            }
            tracing::debug!(pod = %upstream.key.pod, %message, "log upstream dropped; reconnecting");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.wait_idle(&upstream) => return self.stop(&upstream),
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn stop(&self, upstream: &Arc<Upstream>) {
        let mut upstreams = self.lock();
        if let Some(current) = upstreams.get(&upstream.key) {
            if current.as_ptr() == Arc::as_ptr(upstream) {
                upstreams.remove(&upstream.key);
            }
        }
    }

    /// Resolves once the upstream has had no viewer for the linger time.
    async fn wait_idle(&self, upstream: &Upstream) {
        loop {
            if upstream.viewers.load(Ordering::Acquire) == 0 {
                tokio::time::sleep(self.settings.linger).await;
                if upstream.viewers.load(Ordering::Acquire) == 0 {
                    return;
                }
            }
            upstream.idle.notified().await;
        }
    }

    async fn follow(
        &self,
        pods: &Api<Pod>,
        upstream: &Upstream,
        params: &LogParams,
        last: &mut Option<(DateTime<Utc>, usize)>,
    ) -> Result<(), String> {
        let reader = pods.log_stream(&upstream.key.pod, params).await.map_err(|e| match &e {
            kube::Error::Api(status) => status.message.clone(),
            other => other.to_string(),
        })?;
        if !upstream.connected.swap(true, Ordering::AcqRel) {
            let _ = upstream.sender.send(LogEvent::Status { connected: true, message: None });
        }
        let resume = *last;
        let mut repeated = 0usize;
        let mut lines = reader.lines();
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| e.to_string())?;
            let Some((ts, text)) = split_timestamp(&line) else { continue };
            // Skip what was delivered before a reconnect: everything older, and as many lines
            // with the last timestamp as were already seen.
            if let Some((resume_ts, seen)) = resume {
                if ts < resume_ts {
                    continue;
                }
                if ts == resume_ts && repeated < seen {
                    repeated += 1;
                    continue;
                }
            }
            *last = Some(match *last {
                Some((prev, n)) if prev == ts => (ts, n + 1),
                _ => (ts, 1),
            });
            let line = Arc::new(LogLine {
                ts,
                level: level_of(text),
                text: truncate(text, self.settings.max_line_chars),
            });
            let mut ring = upstream.ring.lock().unwrap_or_else(|p| p.into_inner());
            if ring.len() == self.settings.ring_lines {
                ring.pop_front();
            }
            ring.push_back(line.clone());
            // Nobody listening right now is fine.
            let _ = upstream.sender.send(LogEvent::Line(line));
        }
        Ok(())
    }
}

/// `2026-11-22T03:00:00.123456789Z text` → (timestamp, text).
pub fn split_timestamp(line: &str) -> Option<(DateTime<Utc>, &str)> {
    let (ts, text) = line.split_once(' ').unwrap_or((line, ""));
    let ts = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    Some((ts, text.trim_end_matches('\r')))
}

/// Cuts `text` to `max` characters and says how many were cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let dropped = text[cut..].chars().count();
            format!("{} … [truncated {dropped} characters]", &text[..cut])
        }
    }
}

/// The level a k3s line states: logfmt `level=info`, JSON `"level":"info"`, or klog `I1122 …`.
pub fn level_of(text: &str) -> Option<&'static str> {
    let word = if let Some(i) = text.find("level=") {
        text[i + 6..].trim_start_matches('"').split(|c: char| !c.is_ascii_alphabetic()).next()
    } else if let Some(i) = text.find("\"level\":") {
        text[i + 8..]
            .trim_start()
            .trim_start_matches('"')
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
    } else {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some('I'), Some(d)) if d.is_ascii_digit() => Some("info"),
            (Some('W'), Some(d)) if d.is_ascii_digit() => Some("warning"),
            (Some('E'), Some(d)) if d.is_ascii_digit() => Some("error"),
            (Some('F'), Some(d)) if d.is_ascii_digit() => Some("fatal"),
            _ => None,
        }
    }?;
    match word.to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warning"),
        "error" | "err" => Some("error"),
        "fatal" | "panic" => Some("fatal"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_read_from_logfmt_json_and_klog() {
        assert_eq!(
            level_of(r#"time="2026-11-22T03:00:00Z" level=info msg="Starting k3s""#),
            Some("info")
        );
        assert_eq!(level_of(r#"{"level":"warn","msg":"slow"}"#), Some("warning"));
        assert_eq!(level_of("E1122 03:00:00.000000 1 controller.go:1] boom"), Some("error"));
        assert_eq!(level_of("[INFO] [2026-11-22] Starting single node setup..."), None);
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let line = "é".repeat(10_005);
        let cut = truncate(&line, 10_000);
        assert!(cut.starts_with(&"é".repeat(10_000)));
        assert!(cut.ends_with("… [truncated 5 characters]"), "{}", &cut[cut.len() - 40..]);
        assert_eq!(truncate("short", 10_000), "short");
    }

    #[test]
    fn timestamps_are_split_off() {
        let (ts, text) = split_timestamp("2026-11-22T03:00:00.123456789Z hello world").unwrap();
        assert_eq!(ts.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(text, "hello world");
        assert!(split_timestamp("no timestamp here").is_none());
    }
}
