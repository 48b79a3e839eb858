//! The exporter: finished spans go into a bounded queue a background thread drains and POSTs
//! to the collector. A worker never waits: when the queue is full the span is dropped and
//! counted, and a slow or dead collector only delays the exporter thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::span::Span;

/// Spans waiting for export at most (the OTel SDK's batch processor default).
pub const QUEUE: usize = 2048;
/// Spans per request at most (the SDK's `max_export_batch_size`).
pub const BATCH: usize = 512;
/// How long a batch waits for more spans (the SDK's `schedule_delay`).
pub const DELAY: Duration = Duration::from_secs(5);
/// Connecting to the collector, and the whole request, time out (the SDK's 10 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to the spans so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub exported: AtomicU64,
    pub failed: AtomicU64,
}

/// What the queue carries: spans, and a request to send what came before it now.
#[derive(Debug)]
enum Item {
    Span(Span),
    /// Answered once everything queued before it was sent (or failed).
    Flush(SyncSender<()>),
}

/// The workers' side of the queue.
#[derive(Debug)]
pub struct Exporter {
    tx: SyncSender<Item>,
    pub counters: &'static Counters,
}

impl Exporter {
    /// Queues a span; drops (and counts) it when the queue is full or the thread is gone.
    pub fn push(&self, span: Span) {
        match self.tx.try_send(Item::Span(span)) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // The 1st, 2nd, 4th … drop: a stuck collector must not flood the log.
                if n.is_power_of_two() {
                    log::warn!("opentelemetry: export queue full, {n} span(s) dropped");
                }
            }
        }
    }
}

impl Exporter {
    /// Sends what is queued and waits for it, up to `wait` (at shutdown: `use_batch` would
    /// otherwise lose up to [`DELAY`] of spans). `false`: not done in time, or the queue was
    /// full.
    pub fn flush(&self, wait: Duration) -> bool {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.tx.try_send(Item::Flush(ack)).is_ok() && done.recv_timeout(wait).is_ok()
    }
}

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    pub service: String,
    /// `use_batch`: wait up to [`DELAY`] to fill a batch; else send as soon as spans come.
    pub batch: bool,
}

/// Starts the exporter thread.
pub fn spawn(target: Target, counters: &'static Counters) -> std::io::Result<Exporter> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("otel-export".into())
        .spawn(move || run(&target, &rx, counters))?;
    Ok(Exporter { tx, counters })
}

fn run(target: &Target, rx: &Receiver<Item>, counters: &Counters) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(TIMEOUT)
        .build();
    let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
    loop {
        let Ok(first) = rx.recv() else { return };
        let mut ack = None;
        match first {
            Item::Span(s) => batch.push(s),
            Item::Flush(a) => ack = Some(a),
        }
        let deadline = Instant::now() + if target.batch { DELAY } else { Duration::ZERO };
        let mut open = true;
        while ack.is_none() && batch.len() < BATCH {
            let wait = deadline.saturating_duration_since(Instant::now());
            let next = if wait.is_zero() {
                rx.try_recv().map_err(|e| match e {
                    std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                rx.recv_timeout(wait)
            };
            match next {
                Ok(Item::Span(s)) => batch.push(s),
                Ok(Item::Flush(a)) => ack = Some(a),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            send(&agent, target, &batch, counters);
        }
        batch.clear();
        if let Some(a) = ack {
            let _ = a.try_send(());
        }
        if !open {
            return;
        }
    }
}

fn send(agent: &ureq::Agent, target: &Target, batch: &[Span], counters: &Counters) {
    let body = crate::otlp::encode(&target.service, batch);
    let n = batch.len() as u64;
    match agent
        .post(&target.endpoint)
        .set("Content-Type", "application/json")
        .send_string(&body)
    {
        Ok(response) => {
            // Read to the end so the connection goes back to the pool.
            let _ = response.into_string();
            counters.exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            let failed = counters.failed.fetch_add(n, Ordering::Relaxed);
            // Once per failure streak start, then rarely: a dead collector must not flood the log.
            if failed == 0 || (failed + n).ilog2() != failed.ilog2() {
                log::warn!(
                    "opentelemetry: export of {n} span(s) to {} failed: {e}",
                    target.endpoint
                );
            }
        }
    }
}
