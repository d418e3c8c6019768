//! The log hub: one upstream `pods/{pod}/log?follow=true` stream per (namespace, pod, container)
//! however many viewers watch it, started by the first viewer and stopped shortly after the
//! last one leaves (or when the hub closes).
//!
//! Each upstream keeps one bounded ring of recent lines, numbered in arrival order. It is both what
//! a new viewer's tail comes from and the only buffer there is: a viewer is a cursor into the ring,
//! woken when lines arrive, and takes everything after its cursor at once. A viewer that falls
//! further behind than the ring holds loses the oldest lines and is told how many; it never slows
//! the others, and memory does not grow with viewers. Nor with upstreams: the rings of all of them
//! together stay within one memory budget, shared evenly by the running upstreams (a new one makes
//! the others give up their oldest lines past the new share). Lines are read from the upstream in the
//! chunks the network delivers and enter the ring under one lock per chunk, so the cost per line
//! does not depend on the number of viewers.
//!
//! An upstream starts by reading the retained history once (a plain request, so its end is known),
//! then follows from there. Viewers that arrive before the history is in get their tail or resume
//! point applied once it is, so a tail is exact and a resume duplicates nothing even when the
//! upstream is new. When the followed stream drops it is reopened with backoff from the last
//! timestamp seen, and lines already in the ring are skipped, counting lines that share a timestamp
//! so that none repeats and none vanishes. Bytes that are not UTF-8 are replaced, not fatal.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{AsyncBufRead, AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Which container's log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// One line as viewers get it.
#[derive(Debug)]
pub struct LogLine {
    /// The kubelet's timestamp of the line.
    pub ts: DateTime<Utc>,
    pub text: String,
    /// `info`, `warn`, `error`, `debug`... when the line says so (logfmt, JSON or klog).
    pub level: Option<&'static str>,
    /// The line as the websocket sends it, made once by the first viewer that sends it and
    /// shared by the others (see [`LogLine::encoded`]).
    encoded: OnceLock<Box<str>>,
}

impl LogLine {
    /// A line from the log's text: cut to `max_chars` characters with a marker, its level read.
    pub fn new(ts: DateTime<Utc>, text: &str, max_chars: usize) -> Self {
        let text = truncate(text, max_chars);
        Self { ts, level: level_of(&text), text, encoded: OnceLock::new() }
    }

    /// A line whose end was dropped while it was read (`dropped` bytes): the kept text cut to
    /// `max_chars` characters, and a marker that counts everything left out in bytes.
    pub fn cut_while_read(ts: DateTime<Utc>, kept: &str, dropped: u64, max_chars: usize) -> Self {
        let (head, beyond) = match kept.char_indices().nth(max_chars) {
            Some((cut, _)) => (&kept[..cut], (kept.len() - cut) as u64),
            None => (kept, 0),
        };
        let text = format!("{head} … [truncated {} bytes]", beyond + dropped);
        Self { ts, level: level_of(&text), text, encoded: OnceLock::new() }
    }

    /// The line's encoding for viewers, made by `encode` the first time and reused after.
    pub fn encoded(&self, encode: impl FnOnce(&Self) -> String) -> &str {
        self.encoded.get_or_init(|| encode(self).into_boxed_str())
    }
}

impl PartialEq for LogLine {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, &self.text, self.level) == (other.ts, &other.text, other.level)
    }
}

impl Eq for LogLine {}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Lines kept per upstream: new viewers' tails ("all retained") and how far a viewer may fall
    /// behind before it loses lines.
    pub ring_lines: usize,
    /// How long an upstream stays open after its last viewer left.
    pub linger: Duration,
    /// Longer lines are cut, with a marker.
    pub max_line_chars: usize,
    /// Memory for the rings of every upstream together (approximately, see [`line_cost`]):
    /// each running upstream may hold an equal share, and loses its oldest lines past it, so
    /// no number of upstreams nor any mix of long lines takes KRaft past this.
    pub budget_bytes: usize,
    /// Viewers of one upstream take new lines together, on a common grid of this period (see
    /// [`LogSubscription::take_batch`]): those that keep up take the same lines at the same
    /// moment and share one encoding of them.
    pub batch: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            ring_lines: 10_000,
            linger: Duration::from_secs(5),
            max_line_chars: 10_000,
            budget_bytes: 64 << 20,
            batch: Duration::from_millis(100),
        }
    }
}

/// What one line held in a ring costs, roughly: its text, its wire encoding (about as long, made
/// for the first viewer that sends it) and the allocations around them.
pub fn line_cost(line: &LogLine) -> usize {
    2 * line.text.len() + 256
}

/// What a viewer takes from its upstream at once.
#[derive(Debug, Default)]
pub struct Taken {
    /// Lines that left the ring before this viewer took them.
    pub skipped: u64,
    /// The lines after the viewer's cursor, oldest first.
    pub lines: Vec<Arc<LogLine>>,
    /// The upstream's connection, when it changed since this viewer was last told (or on the
    /// first take): whether it is open, and why not.
    pub status: Option<(bool, Option<String>)>,
}

/// What a viewer takes on a batch tick: like [`Taken`], with the lines as one encoding that every
/// viewer taking the same lines shares.
#[derive(Debug)]
pub struct Batch<T> {
    pub skipped: u64,
    /// The lines' encoding, if there were lines.
    pub encoded: Option<T>,
    /// The viewer took as many lines as it asked for: more may be waiting.
    pub full: bool,
    pub status: Option<(bool, Option<String>)>,
}

/// Encodings of recent line ranges: (first sequence number, end), shared by the viewers that take
/// the same range.
type Encoded = VecDeque<(u64, u64, Arc<dyn std::any::Any + Send + Sync>)>;
/// Encodings kept per upstream: a tick's lines may make many messages (10,000 lines a second in
/// messages of 100 make 10 a tick), and a viewer a little behind takes older ranges, which it
/// would otherwise encode again for itself.
const ENCODED_KEPT: usize = 64;

/// A viewer: a cursor into its upstream's ring. Dropping it leaves.
pub struct LogSubscription {
    upstream: Arc<Upstream>,
    woken: watch::Receiver<()>,
    /// Sequence number of the next line this viewer takes.
    next: u64,
    /// Where the viewer asked to start, until the upstream's history is in and it can be placed.
    start: Option<Start>,
    /// The status change this viewer was last told of.
    told: Option<u64>,
}

/// Where a viewer starts: the newest `tail` lines (all retained if `None`), and not before the line
/// `after` names (its timestamp and how many lines with that timestamp the viewer has).
#[derive(Debug, Clone, Copy)]
struct Start {
    tail: Option<usize>,
    after: Option<(DateTime<Utc>, usize)>,
}

impl Start {
    /// The sequence number of the first line to take from `ring`, the tail counted back from the
    /// line numbered `end` (the end of the ring when the viewer arrived, or of the history if it
    /// arrived before that was in). Lines already gone from the ring count as lost at the take.
    fn place(self, ring: &Ring, end: u64) -> u64 {
        let after = match self.after {
            Some((ts, seen)) => {
                let mut same = 0;
                let at = ring
                    .lines
                    .iter()
                    .position(|l| {
                        if l.ts == ts {
                            same += 1;
                        }
                        l.ts > ts || (l.ts == ts && same > seen)
                    })
                    .unwrap_or(ring.lines.len());
                ring.first_seq + at as u64
            }
            None => 0,
        };
        let tail = self.tail.map_or(0, |tail| end.saturating_sub(tail as u64));
        after.max(tail)
    }
}

impl LogSubscription {
    /// Takes at most `max` lines after the cursor, with what was lost and the status if it
    /// changed. The first take holds the tail the viewer asked for.
    pub fn take(&mut self, max: usize) -> Taken {
        self.take_until(max, None)
    }

    /// When the next batch tick of this viewer's upstream comes (see [`take_batch`](Self::take_batch)).
    pub fn next_batch_at(&self) -> tokio::time::Instant {
        let tick = self.upstream.tick(tokio::time::Instant::now());
        self.upstream.epoch + self.upstream.batch() * (tick as u32 + 1)
    }

    /// Takes at most `max` lines after the cursor, up to where the ring ended when the current
    /// batch tick was first looked at, so that every viewer of the upstream taking in the same
    /// tick takes up to the same line; viewers that keep up therefore take identical ranges, and
    /// `encode` runs once per range for all of them (its result is shared). Lines past that point
    /// wait for the next tick.
    pub fn take_batch<T>(
        &mut self,
        max: usize,
        encode: impl FnOnce(&[Arc<LogLine>]) -> T,
    ) -> Batch<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        self.take_batch_at(tokio::time::Instant::now(), max, encode)
    }

    /// [`take_batch`](Self::take_batch) as at `now`.
    fn take_batch_at<T>(
        &mut self,
        now: tokio::time::Instant,
        max: usize,
        encode: impl FnOnce(&[Arc<LogLine>]) -> T,
    ) -> Batch<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        let taken = self.take_until(max, Some(self.upstream.tick(now)));
        let full = taken.lines.len() == max;
        let mut batch = Batch { skipped: taken.skipped, encoded: None, full, status: taken.status };
        if taken.lines.is_empty() {
            return batch;
        }
        let range = (self.next - taken.lines.len() as u64, self.next);
        let mut cache = self.upstream.encoded.lock().unwrap_or_else(|p| p.into_inner());
        let hit = cache
            .iter()
            .find(|(a, b, _)| (*a, *b) == range)
            .and_then(|(_, _, e)| e.downcast_ref::<T>())
            .cloned();
        batch.encoded = Some(match hit {
            Some(encoded) => encoded,
            None => {
                // Encoded under the cache's lock: the other viewers of this range wait for it
                // instead of making it again.
                let encoded = encode(&taken.lines);
                if cache.len() == ENCODED_KEPT {
                    cache.pop_front();
                }
                cache.push_back((range.0, range.1, Arc::new(encoded.clone())));
                encoded
            }
        });
        batch
    }

    fn take_until(&mut self, max: usize, tick: Option<u64>) -> Taken {
        let mut ring = self.upstream.ring();
        let mut taken = Taken::default();
        if self.told != Some(ring.status_changes) {
            self.told = Some(ring.status_changes);
            taken.status = Some((ring.connected, ring.message.clone()));
        }
        if let Some(start) = self.start {
            let Some(end) = ring.history_end else { return taken };
            self.next = start.place(&ring, end);
            self.start = None;
        }
        if self.next < ring.first_seq {
            taken.skipped = ring.first_seq - self.next;
            self.next = ring.first_seq;
        }
        let end = ring.first_seq + ring.lines.len() as u64;
        let end = match tick {
            None => end,
            Some(tick) => {
                if ring.sealed.0 != tick {
                    ring.sealed = (tick, end);
                }
                ring.sealed.1.clamp(ring.first_seq, end)
            }
        };
        let from = (self.next - ring.first_seq) as usize;
        let to = ((end - ring.first_seq) as usize).min(from.saturating_add(max)).max(from);
        taken.lines.extend(ring.lines.range(from..to).cloned());
        self.next += (to - from) as u64;
        taken
    }

    /// Waits until lines arrived or the status changed since the last [`take`](Self::take) (at
    /// once if it did already).
    pub async fn changed(&mut self) {
        if self.woken.changed().await.is_err() {
            // The upstream went away under us (the hub closed): nothing more will come.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for LogSubscription {
    fn drop(&mut self) {
        if self.upstream.viewers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.upstream.idle.notify_one();
        }
    }
}

/// The ring and the connection state, under one lock so that a viewer sees them consistently.
struct Ring {
    lines: VecDeque<Arc<LogLine>>,
    /// What `lines` cost together ([`line_cost`]).
    bytes: usize,
    /// Sequence number of `lines[0]`.
    first_seq: u64,
    /// Where the retained history ended (the sequence number after its last line), once it has
    /// been read: viewers that came before are placed against it.
    history_end: Option<u64>,
    connected: bool,
    message: Option<String>,
    /// Bumped at every change of `connected` or `message`.
    status_changes: u64,
    /// The batch tick first looked at last, and where the ring ended then: what viewers take up
    /// to in that tick.
    sealed: (u64, u64),
}

struct Upstream {
    key: LogKey,
    ring: Mutex<Ring>,
    /// The batch grid: ticks every `batch` from `epoch`.
    epoch: tokio::time::Instant,
    batch: Duration,
    encoded: Mutex<Encoded>,
    /// Wakes viewers after lines or a status change entered the ring.
    wake: watch::Sender<()>,
    viewers: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Ring {
    /// Drops the oldest lines while there are more than `capacity` or they cost more than
    /// `share`; the newest line always stays.
    fn trim(&mut self, capacity: usize, share: usize) {
        while self.lines.len() > capacity || (self.bytes > share && self.lines.len() > 1) {
            let Some(old) = self.lines.pop_front() else { break };
            self.bytes -= line_cost(&old);
            self.first_seq += 1;
        }
    }
}

impl Upstream {
    fn new(key: LogKey, batch: Duration) -> Self {
        Self {
            key,
            ring: Mutex::new(Ring {
                lines: VecDeque::new(),
                bytes: 0,
                first_seq: 0,
                history_end: None,
                connected: false,
                message: None,
                status_changes: 0,
                sealed: (u64::MAX, 0),
            }),
            epoch: tokio::time::Instant::now(),
            batch,
            encoded: Mutex::new(VecDeque::new()),
            wake: watch::Sender::new(()),
            viewers: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        }
    }

    /// The batch grid's period (never zero).
    fn batch(&self) -> Duration {
        self.batch.max(Duration::from_millis(1))
    }

    /// The batch tick `now` falls in.
    fn tick(&self, now: tokio::time::Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.batch().as_nanos()) as u64
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_status(&self, connected: bool, message: Option<String>) {
        let mut ring = self.ring();
        if ring.connected == connected && ring.message == message {
            return;
        }
        ring.connected = connected;
        ring.message = message;
        ring.status_changes += 1;
        drop(ring);
        self.wake.send_replace(());
    }

    /// The history is in: viewers waiting for it are placed at their next take.
    fn set_loaded(&self) {
        let mut ring = self.ring();
        ring.history_end = Some(ring.first_seq + ring.lines.len() as u64);
        drop(ring);
        self.wake.send_replace(());
    }

    /// Adds `lines`, keeping at most `capacity` lines that cost at most `share()` together.
    /// The share is read under the ring's lock, so a trim for a new upstream is never undone by a
    /// push that read the old share.
    fn push(&self, lines: Vec<Arc<LogLine>>, capacity: usize, share: impl FnOnce() -> usize) {
        if lines.is_empty() {
            return;
        }
        let mut ring = self.ring();
        let share = share();
        for line in lines {
            ring.bytes += line_cost(&line);
            ring.lines.push_back(line);
            ring.trim(capacity, share);
        }
        drop(ring);
        self.wake.send_replace(());
    }
}

pub struct LogHub {
    client: kube::Client,
    settings: LogSettings,
    upstreams: Mutex<HashMap<LogKey, Weak<Upstream>>>,
    /// Followed upstream log streams opened so far (for tests and benchmarks).
    opened: AtomicU64,
    /// Upstreams running now: the budget is shared between them.
    running: AtomicUsize,
    /// The upstream tasks, stopped by [`close`](Self::close).
    tasks: TaskTracker,
    closing: CancellationToken,
}

impl LogHub {
    pub fn new(client: kube::Client, settings: LogSettings) -> Arc<Self> {
        Arc::new(Self {
            client,
            settings,
            upstreams: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
        })
    }

    /// How many followed upstream log streams the hub has opened.
    pub fn upstream_requests(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// How many upstreams are running now.
    pub fn upstreams(&self) -> usize {
        self.lock().values().filter(|u| u.strong_count() > 0).count()
    }

    /// What the lines in every ring cost together now ([`line_cost`]); at most about the budget.
    pub fn retained_bytes(&self) -> usize {
        self.lock().values().filter_map(Weak::upgrade).map(|u| u.ring().bytes).sum()
    }

    /// What one upstream may hold while `running` upstreams share the budget.
    fn share(&self, running: usize) -> usize {
        self.settings.budget_bytes / running.max(1)
    }

    /// Stops every upstream and waits for them to end; viewers get nothing more.
    pub async fn close(&self) {
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<LogKey, Weak<Upstream>>> {
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
            let upstream = match upstreams.get(&key).and_then(Weak::upgrade) {
                Some(upstream) => upstream,
                None => {
                    let upstream = Arc::new(Upstream::new(key.clone(), self.settings.batch));
                    if !self.closing.is_cancelled() {
                        // One more upstream shares the budget: the others give up their excess
                        // now, before the new one fills its share.
                        let running = self.running.fetch_add(1, Ordering::AcqRel) + 1;
                        let share = self.share(running);
                        for other in upstreams.values().filter_map(Weak::upgrade) {
                            other.ring().trim(self.settings.ring_lines, share);
                        }
                        self.tasks.spawn(self.clone().pump(upstream.clone()));
                    }
                    upstreams.insert(key, Arc::downgrade(&upstream));
                    upstream
                }
            };
            // Counted under the map's lock: an upstream leaves the map, under the same lock, only
            // while it has no viewer, so nobody joins one that is ending.
            upstream.viewers.fetch_add(1, Ordering::AcqRel);
            upstream
        };
        // The woken flag starts set: the first `changed` returns at once, and the first take
        // holds the tail.
        let mut woken = upstream.wake.subscribe();
        woken.mark_changed();
        let start = Start { tail, after };
        let ring = upstream.ring();
        let (next, start) = match ring.history_end {
            Some(_) => (start.place(&ring, ring.first_seq + ring.lines.len() as u64), None),
            None => (0, Some(start)),
        };
        drop(ring);
        LogSubscription { upstream, woken, next, start, told: None }
    }

    /// Runs one upstream until it has had no viewer for `linger`, or the hub closes.
    async fn pump(self: Arc<Self>, upstream: Arc<Upstream>) {
        tokio::select! {
            () = self.follow_with_retries(&upstream) => {}
            () = self.wait_idle(&upstream) => {}
            () = self.closing.cancelled() => {}
        }
        self.forget(&mut self.lock(), &upstream);
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Takes `upstream` out of the map (if it is still the one there): new viewers start anew.
    fn forget(&self, upstreams: &mut HashMap<LogKey, Weak<Upstream>>, upstream: &Arc<Upstream>) {
        if let Some(current) = upstreams.get(&upstream.key) {
            if current.as_ptr() == Arc::as_ptr(upstream) {
                upstreams.remove(&upstream.key);
            }
        }
    }

    async fn follow_with_retries(&self, upstream: &Upstream) {
        const FIRST_BACKOFF: Duration = Duration::from_millis(200);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &upstream.key.namespace);
        let mut last: Option<(DateTime<Utc>, usize)> = None;
        let mut loaded = false;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let container = Some(upstream.key.container.clone());
            let params = if !loaded {
                // The history first, as a whole response: its end is where viewers are placed.
                LogParams {
                    container,
                    timestamps: true,
                    tail_lines: Some(self.settings.ring_lines as i64),
                    ..Default::default()
                }
            } else {
                LogParams {
                    container,
                    follow: true,
                    timestamps: true,
                    // Nothing seen yet: whatever the log holds now is new.
                    tail_lines: last.is_none().then_some(self.settings.ring_lines as i64),
                    // From the last line's whole second (the host's clock, not ours): the skip in
                    // `read` removes what repeats.
                    since_time: last.map(|(ts, _)| {
                        k8s_openapi::jiff::Timestamp::from_second(ts.timestamp())
                            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
                    }),
                    ..Default::default()
                }
            };
            if params.follow {
                self.opened.fetch_add(1, Ordering::Relaxed);
            }
            let started = tokio::time::Instant::now();
            let message = match self.read(&pods, upstream, &params, &mut last).await {
                Ok(()) if !loaded => {
                    loaded = true;
                    upstream.set_loaded();
                    continue;
                }
                Ok(()) => "the log stream ended".to_owned(),
                Err(error) => error,
            };
            upstream.set_status(false, Some(message.clone()));
            tracing::debug!(pod = %upstream.key.pod, %message, "log upstream dropped; reconnecting");
            // A stream that stayed up a while starts the backoff over.
            if started.elapsed() > Duration::from_secs(10) {
                backoff = FIRST_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Resolves once the upstream has had no viewer for the linger time, having left the map.
    async fn wait_idle(&self, upstream: &Arc<Upstream>) {
        loop {
            if upstream.viewers.load(Ordering::Acquire) == 0 {
                tokio::time::sleep(self.settings.linger).await;
                let mut upstreams = self.lock();
                if upstream.viewers.load(Ordering::Acquire) == 0 {
                    self.forget(&mut upstreams, upstream);
                    return;
                }
            }
            upstream.idle.notified().await;
        }
    }

    /// Reads one log response to its end (or its first error) into the ring.
    async fn read(
        &self,
        pods: &Api<Pod>,
        upstream: &Upstream,
        params: &LogParams,
        last: &mut Option<(DateTime<Utc>, usize)>,
    ) -> Result<(), String> {
        let reader = pods.log_stream(&upstream.key.pod, params).await.map_err(|e| match &e {
            kube::Error::Api(status) => {
                crate::host::rights::note(&e);
                status.message.clone()
            }
            other => other.to_string(),
        })?;
        upstream.set_status(true, None);
        let resume = *last;
        let mut repeated = 0usize;
        // Every line the network has delivered so far, at once: one ring update per chunk.
        // A line is never held whole: past what a viewer can be shown, its bytes are counted
        // and dropped as they arrive, so one endless line cannot fill KRaft's memory.
        let cap = self.settings.max_line_chars.saturating_mul(4).saturating_add(64);
        let mut chunks = std::pin::pin!(lossy_lines(reader, cap).ready_chunks(1024));
        while let Some(chunk) = chunks.next().await {
            let mut lines = Vec::with_capacity(chunk.len());
            let mut failed = None;
            for line in chunk {
                let (line, dropped) = match line {
                    Ok(line) => line,
                    Err(error) => {
                        failed = Some(error.to_string());
                        break;
                    }
                };
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
                let max = self.settings.max_line_chars;
                lines.push(Arc::new(if dropped > 0 {
                    LogLine::cut_while_read(ts, text, dropped, max)
                } else {
                    LogLine::new(ts, text, max)
                }));
            }
            upstream.push(lines, self.settings.ring_lines, || {
                self.share(self.running.load(Ordering::Acquire))
            });
            if let Some(error) = failed {
                return Err(error);
            }
        }
        Ok(())
    }
}

/// The lines of `reader`, with bytes that are not UTF-8 replaced (one bad byte must not stop a
/// log), each with at most `cap` bytes kept: the rest of a longer line is read and dropped, and
/// how many bytes were dropped comes with it.
fn lossy_lines(
    reader: impl AsyncBufRead,
    cap: usize,
) -> impl Stream<Item = std::io::Result<(String, u64)>> {
    futures::stream::unfold(Box::pin(reader), move |mut reader| async move {
        let mut bytes = Vec::new();
        let mut dropped = 0u64;
        let mut ended = false;
        loop {
            let buf = match reader.fill_buf().await {
                Ok(buf) => buf,
                Err(error) => return Some((Err(error), reader)),
            };
            if buf.is_empty() {
                break;
            }
            let (part, used) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1),
                None => (buf, buf.len()),
            };
            let room = cap.saturating_sub(bytes.len());
            let keep = part.len().min(room);
            bytes.extend_from_slice(&part[..keep]);
            dropped += (part.len() - keep) as u64;
            let newline = used > part.len();
            reader.consume_unpin(used);
            if newline {
                ended = true;
                break;
            }
        }
        if bytes.is_empty() && dropped == 0 && !ended {
            return None;
        }
        let line = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Some((Ok((line, dropped)), reader))
    })
}

/// A whole log response (not followed), its newest lines within `limit` bytes (each counted with
/// its newline), with bytes that are not UTF-8 replaced; and how many bytes of older lines were
/// left out. A read that fails midway keeps what came before.
pub async fn newest_lines(reader: impl AsyncBufRead, limit: usize) -> (VecDeque<String>, u64) {
    let mut kept = VecDeque::new();
    let (mut size, mut cut) = (0usize, 0u64);
    // No line is held beyond the limit: the rest of a longer one is dropped as it is read.
    let mut lines = std::pin::pin!(lossy_lines(reader, limit));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok((line, dropped)) => {
                cut += dropped;
                line
            }
            Err(error) => {
                tracing::warn!(%error, "log read cut short");
                break;
            }
        };
        size += line.len() + 1;
        kept.push_back(line);
        while size > limit {
            let Some(old) = kept.pop_front() else { break };
            size -= old.len() + 1;
            cut += old.len() as u64 + 1;
        }
    }
    (kept, cut)
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

    /// A 5 MB line without a newline is never held: 10 000 characters reach the viewer, the
    /// rest is counted while read.
    #[tokio::test]
    async fn an_endless_line_is_cut_while_it_is_read() {
        let mut log = b"2026-11-22T03:00:00Z ".to_vec();
        log.extend(std::iter::repeat_n(b'x', 5_000_000));
        log.extend(b"\n2026-11-22T03:00:01Z next\n");
        let reader = futures::io::BufReader::with_capacity(8192, futures::io::Cursor::new(log));
        let lines: Vec<(String, u64)> =
            lossy_lines(reader, 40_064).map(|l| l.unwrap()).collect().await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0.len(), 40_064, "only the cap is kept");
        assert_eq!(lines[0].1, 5_000_021 - 40_064);
        assert_eq!(lines[1], ("2026-11-22T03:00:01Z next".to_owned(), 0));
        let (ts, text) = split_timestamp(&lines[0].0).unwrap();
        let line = LogLine::cut_while_read(ts, text, lines[0].1, 10_000);
        assert!(line.text.starts_with(&"x".repeat(10_000)));
        assert!(line.text.ends_with(&format!("… [truncated {} bytes]", 5_000_000 - 10_000)));
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

    #[tokio::test]
    async fn bytes_that_are_not_utf8_are_replaced_and_the_lines_go_on() {
        let log = b"2026-11-22T03:00:00Z first\n2026-11-22T03:00:01Z bad \xff\xfe byte\n\
                    2026-11-22T03:00:02Z after\n";
        let lines: Vec<String> = lossy_lines(futures::io::Cursor::new(&log[..]), usize::MAX)
            .map(|l| l.unwrap().0)
            .collect()
            .await;
        assert_eq!(
            lines,
            [
                "2026-11-22T03:00:00Z first",
                "2026-11-22T03:00:01Z bad \u{fffd}\u{fffd} byte",
                "2026-11-22T03:00:02Z after"
            ]
        );
    }

    #[tokio::test]
    async fn a_download_keeps_the_newest_lines_within_its_limit() {
        let log: String = (0..100).map(|i| format!("line {i:02}\n")).collect(); // 8 bytes each
        let (kept, cut) = newest_lines(futures::io::Cursor::new(log.as_bytes()), 80).await;
        assert_eq!(kept, (90..100).map(|i| format!("line {i:02}")).collect::<Vec<_>>());
        assert_eq!(cut, 90 * 8);
        let (all, none) = newest_lines(futures::io::Cursor::new(log.as_bytes()), 1 << 20).await;
        assert_eq!((all.len(), none), (100, 0));
        // A last line without its newline, and a multi-byte character cut by the host's limit.
        let (kept, _) = newest_lines(futures::io::Cursor::new(&b"a\nb\xc3"[..]), 100).await;
        assert_eq!(kept, ["a", "b\u{fffd}"]);
    }

    fn line(text: &str) -> Arc<LogLine> {
        Arc::new(LogLine::new(Utc::now(), text, 10_000))
    }

    #[test]
    fn a_ring_keeps_its_newest_lines_within_its_share_of_the_budget() {
        let key = LogKey { namespace: "ns".into(), pod: "p".into(), container: "c".into() };
        let upstream = Upstream::new(key, Duration::from_millis(100));
        let long = "x".repeat(1_000);
        let cost = line_cost(&line(&long));
        upstream.push((0..100).map(|_| line(&long)).collect(), 10_000, || 20 * cost);
        let ring = upstream.ring();
        assert_eq!(ring.lines.len(), 20, "as many lines as the share pays for");
        assert_eq!((ring.first_seq, ring.bytes), (80, 20 * cost), "the oldest went first");
        drop(ring);
        // A smaller share (another upstream started) trims at once; the line count still caps.
        upstream.ring().trim(10_000, 5 * cost);
        assert_eq!(upstream.ring().lines.len(), 5);
        upstream.push((0..10).map(|_| line("short")).collect(), 8, || usize::MAX);
        assert_eq!(upstream.ring().lines.len(), 8);
        // One line larger than the share is kept on its own: a viewer sees the newest line.
        upstream.push(vec![line(&long)], 10_000, || 1);
        let ring = upstream.ring();
        assert_eq!((ring.lines.len(), ring.bytes), (1, cost));
    }

    #[tokio::test]
    async fn viewers_that_keep_up_take_the_same_lines_each_tick_and_share_one_encoding() {
        let key = LogKey { namespace: "ns".into(), pod: "p".into(), container: "c".into() };
        let upstream = Arc::new(Upstream::new(key, Duration::from_millis(100)));
        upstream.set_loaded();
        let viewer = || {
            upstream.viewers.fetch_add(1, Ordering::AcqRel);
            LogSubscription {
                upstream: upstream.clone(),
                woken: upstream.wake.subscribe(),
                next: 0,
                start: None,
                told: Some(0),
            }
        };
        let (mut a, mut b) = (viewer(), viewer());
        let encodings = AtomicUsize::new(0);
        let encode = |lines: &[Arc<LogLine>]| {
            encodings.fetch_add(1, Ordering::Relaxed);
            Arc::<str>::from(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(","))
        };
        let push = |range: std::ops::Range<usize>| {
            upstream.push(range.map(|i| line(&i.to_string())).collect(), 10_000, || usize::MAX)
        };
        push(0..3);
        let epoch = upstream.epoch;
        let tick = |n: u32| epoch + Duration::from_millis(100) * n + Duration::from_millis(1);
        let first = a.take_batch_at(tick(0), 100, encode).encoded.unwrap();
        assert_eq!(&*first, "0,1,2");
        // Lines that come later in the same tick wait for the next one, for every viewer: b
        // takes what a took, and gets a's encoding.
        push(3..5);
        let same = b.take_batch_at(tick(0), 100, encode).encoded.unwrap();
        assert!(Arc::ptr_eq(&first, &same));
        assert_eq!(encodings.load(Ordering::Relaxed), 1);

        let (next_a, next_b) =
            (a.take_batch_at(tick(1), 100, encode), b.take_batch_at(tick(1), 100, encode));
        assert_eq!(&*next_a.encoded.clone().unwrap(), "3,4");
        assert!(Arc::ptr_eq(&next_a.encoded.unwrap(), &next_b.encoded.unwrap()));
        assert_eq!(encodings.load(Ordering::Relaxed), 2);

        // A tick's lines in messages of at most `max`, each range shared the same way.
        push(5..10);
        let part = a.take_batch_at(tick(2), 3, encode);
        assert!(part.full);
        assert_eq!(&*part.encoded.unwrap(), "5,6,7");
        assert_eq!(&*a.take_batch_at(tick(2), 3, encode).encoded.unwrap(), "8,9");
        assert_eq!(&*b.take_batch_at(tick(2), 3, encode).encoded.unwrap(), "5,6,7");
        assert!(!b.take_batch_at(tick(2), 3, encode).full);
        // The next tick starts a little after this one.
        let next = a.next_batch_at();
        assert!(next > tokio::time::Instant::now());
        assert!(next <= tokio::time::Instant::now() + Duration::from_millis(100));
        assert_eq!(encodings.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_line_is_encoded_once() {
        let line = LogLine::new(Utc::now(), "hello", 100);
        let mut calls = 0;
        assert_eq!(
            line.encoded(|l| {
                calls += 1;
                l.text.to_uppercase()
            }),
            "HELLO"
        );
        assert_eq!(
            line.encoded(|_| {
                calls += 1;
                String::new()
            }),
            "HELLO"
        );
        assert_eq!(calls, 1);
    }
}
