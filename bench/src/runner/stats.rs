//! What the clients of one run count (deliveries, latency histogram) and
//! the metrics of one measurement window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use super::plan::*;
use super::process::*;
use crate::procstat;
use crate::wsclient::now_ns;

/// What the clients of one run count.
pub(crate) struct Stats {
    pub(crate) deliveries: AtomicU64,
    pub(crate) recording: AtomicBool,
    pub(crate) histogram: Mutex<Histogram<u64>>,
    pub(crate) max_latency_ns: AtomicU64,
    pub(crate) closed: AtomicU64,
    /// Broadcasts sent by the flow-controlled sender.
    pub(crate) sent: AtomicU64,
    pub(crate) progress: Notify,
}

impl Stats {
    pub(crate) fn new() -> Arc<Stats> {
        Arc::new(Stats {
            deliveries: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            // 1 µs to 100 s, 3 significant digits.
            // The bounds are constant and valid (low >= 1, high >= 2 * low,
            // sigfig <= 5): creation cannot fail.
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds"),
            ),
            max_latency_ns: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            progress: Notify::new(),
        })
    }

    /// Counts the deliveries of one read (send timestamps `sent`).
    pub(crate) fn deliver(&self, sent: &[u64]) {
        if sent.is_empty() {
            return;
        }
        let now = now_ns();
        self.deliveries
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        let mut max = 0;
        for &ts in sent {
            max = max.max(now.saturating_sub(ts));
        }
        self.max_latency_ns.fetch_max(max, Ordering::Relaxed);
        if self.recording.load(Ordering::Relaxed) {
            let mut histogram = self
                .histogram
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &ts in sent {
                histogram.saturating_record(now.saturating_sub(ts) / 1000);
            }
        }
        self.progress.notify_one();
    }

    pub(crate) fn reset_latency(&self) {
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
        self.max_latency_ns.store(0, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self) -> Option<Latency> {
        let histogram = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p90_ms: ms(histogram.value_at_quantile(0.9)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            samples: histogram.len(),
        })
    }
}

/// Delivery latencies of a window (send to receipt), from the histogram.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) samples: u64,
}

/// The metrics of one measurement window: the start of every result
/// record (a workload adds its own fields to [`Window::into_record`]).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Window {
    pub(crate) seconds: f64,
    pub(crate) deliveries: u64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) server_cpu_s: f64,
    pub(crate) loadgen_cpu_s: f64,
    pub(crate) other_cpu_s: f64,
    pub(crate) deliveries_per_server_cpu_s: f64,
    /// The load generator used more CPU than the server: the numbers say
    /// more about the client than about the server.
    pub(crate) client_bound: bool,
    pub(crate) server_rss_kib: u64,
    /// `None` (null) when nothing was delivered in the window.
    pub(crate) latency: Option<Latency>,
}

impl Window {
    /// The window as a JSON record, to which the workload adds its fields.
    pub(crate) fn into_record(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// CPU and delivery counters at the start of a window.
pub(crate) struct Mark {
    pub(crate) at: Instant,
    pub(crate) deliveries: u64,
    pub(crate) server_cpu: f64,
    pub(crate) loadgen_cpu: f64,
    pub(crate) machine_busy: f64,
}

impl Mark {
    pub(crate) fn now(stats: &Stats, server: &ServerProcess) -> Mark {
        Mark {
            at: Instant::now(),
            deliveries: stats.deliveries.load(Ordering::Relaxed),
            server_cpu: server.cpu(),
            loadgen_cpu: procstat::cpu_seconds("self"),
            machine_busy: procstat::machine_busy_seconds(),
        }
    }

    /// The window's metrics from this mark to now.
    pub(crate) fn finish(&self, stats: &Stats, server: &ServerProcess) -> Window {
        let end = Mark::now(stats, server);
        let seconds = (end.at - self.at).as_secs_f64();
        let deliveries = end.deliveries - self.deliveries;
        let server_cpu = end.server_cpu - self.server_cpu;
        let loadgen_cpu = end.loadgen_cpu - self.loadgen_cpu;
        let other_cpu = (end.machine_busy - self.machine_busy - server_cpu - loadgen_cpu).max(0.0);
        Window {
            seconds,
            deliveries,
            deliveries_per_s: deliveries as f64 / seconds,
            server_cpu_s: server_cpu,
            loadgen_cpu_s: loadgen_cpu,
            other_cpu_s: other_cpu,
            deliveries_per_server_cpu_s: if server_cpu > 0.0 {
                deliveries as f64 / server_cpu
            } else {
                0.0
            },
            client_bound: loadgen_cpu > server_cpu,
            server_rss_kib: server.rss_kib(),
            latency: stats.latency(),
        }
    }
}

/// Runs one measurement window: warm up, mark, record for `window`.
pub(crate) async fn measure(stats: &Stats, server: &ServerProcess, timing: &Timing) -> Window {
    tokio::time::sleep(timing.warmup).await;
    stats.reset_latency();
    let mark = Mark::now(stats, server);
    stats.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(timing.window).await;
    stats.recording.store(false, Ordering::Relaxed);
    mark.finish(stats, server)
}
