//! The clock: the seed's sample at scale. The server's background worker
//! calls `show_time(now)` on every connected client once a tick (the raw
//! baseline pushes the same frame to every socket); the clients note when
//! each tick arrives. Measured: server CPU-seconds per tick, and per tick
//! the time from the tick's timestamp until the last client has it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Notify;

use super::Outcome;
use crate::procstat;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::wsclient::{tick_time_ns, unix_now_ns};

/// Ticks warming up before the measured ones.
const WARMUP_TICKS: usize = 2;

/// What the clients saw of each tick.
#[derive(Default)]
struct Ticks {
    /// Tick time (ns since the Unix epoch) -> (clients that have it, the
    /// latest arrival after the tick time in ns).
    seen: Mutex<BTreeMap<i128, (usize, i128)>>,
    /// Ticks every open client has, in the order they completed:
    /// (tick time, time to the last client in ns).
    complete: Mutex<Vec<(i128, i128)>>,
    /// Clients whose connection ended.
    closed: AtomicU64,
    progress: Notify,
}

impl Ticks {
    fn arrived(&self, tick: i128, latency: i128, clients: usize) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = seen.entry(tick).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(latency);
        if entry.0 == clients {
            let last = entry.1;
            seen.remove(&tick);
            drop(seen);
            self.complete
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((tick, last));
            self.progress.notify_waiters();
        }
    }

    fn completed(&self) -> usize {
        self.complete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until `count` ticks are complete, at most `limit`.
    async fn wait_for(&self, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.completed() < count {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                () = self.progress.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        true
    }
}

pub(crate) async fn clock(
    variant: Variant,
    server: &ServerProcess,
    clients: usize,
    ticks: usize,
    tick: Duration,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, clients, 0, None).await;
    if failed > 0 || conns.is_empty() {
        return Err(format!("{failed} of {clients} clients could not connect"));
    }
    let connected = conns.len();
    let state = Arc::new(Ticks::default());
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut arrivals = Vec::with_capacity(4);
                loop {
                    let received = conn
                        .recv_frames(&mut |payload| {
                            if let Some(tick) = tick_time_ns(payload) {
                                arrivals.push((tick, unix_now_ns() - tick));
                            }
                        })
                        .await;
                    for (tick, latency) in arrivals.drain(..) {
                        state.arrived(tick, latency, connected);
                    }
                    if received.closed {
                        state.closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            })
        })
        .collect();
    // A tick that takes longer than this to reach every client counts as lost.
    let per_tick = tick * 3 + Duration::from_secs(5);
    let outcome = async {
        // The first tick may have reached only the clients connected by
        // then: warm up on later ones.
        let first = state.completed();
        if !state.wait_for(first + WARMUP_TICKS, per_tick * 3).await {
            return Err("the warm-up ticks did not reach every client".to_owned());
        }
        // From just after one complete tick to just after the last
        // measured one: the window holds `ticks` ticks and their idle time.
        let start = state.completed();
        let cpu_before = server.cpu();
        let loadgen_before = procstat::cpu_seconds("self");
        let started = Instant::now();
        let reached = state
            .wait_for(start + ticks, per_tick * ticks as u32)
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let server_cpu = server.cpu() - cpu_before;
        let loadgen_cpu = procstat::cpu_seconds("self") - loadgen_before;
        if !reached {
            return Err(format!(
                "{} of {ticks} ticks reached every client ({} clients closed)",
                state.completed() - start,
                state.closed.load(Ordering::Relaxed)
            ));
        }
        let last_ms: Vec<f64> = state
            .complete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[start..start + ticks]
            .iter()
            .map(|&(_, last)| last as f64 / 1e6)
            .collect();
        let mut sorted = last_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        let deliveries = (ticks * connected) as f64;
        Ok(json!({
            "ok": true,
            "errors": state.closed.load(Ordering::Relaxed),
            "clients": connected,
            "ticks": ticks,
            "tick_ms": tick.as_secs_f64() * 1e3,
            "seconds": seconds,
            "server_cpu_s": server_cpu,
            "loadgen_cpu_s": loadgen_cpu,
            "server_cpu_ms_per_tick": server_cpu * 1e3 / ticks as f64,
            "deliveries": deliveries,
            "deliveries_per_server_cpu_s": if server_cpu > 0.0 { deliveries / server_cpu } else { 0.0 },
            "server_rss_kib": server.rss_kib(),
            "last_client_ms": last_ms,
            "last_client_p50_ms": quantile(0.5),
            "last_client_p99_ms": quantile(0.99),
        }))
    }
    .await;
    for task in &tasks {
        task.abort();
    }
    outcome.map(|record| vec![record])
}
