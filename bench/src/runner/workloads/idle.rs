//! Idle connections: memory and CPU per connection at checkpoints.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use super::Outcome;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::runner::stats::*;

pub(crate) async fn idle(
    variant: Variant,
    server: &ServerProcess,
    checkpoints: &[usize],
    timing: &Timing,
) -> Outcome {
    tokio::time::sleep(timing.settle).await;
    let rss_before = server.rss_kib();
    let stats = Stats::new();
    let mut tasks = Vec::new();
    let mut points = Vec::new();
    let mut total_failed = 0;
    let mut connected = 0;
    for &target in checkpoints {
        let want = target.saturating_sub(connected);
        let started = Instant::now();
        let (conns, failed) =
            connect_many(variant.proto, server.address, want, connected, None).await;
        let seconds = started.elapsed().as_secs_f64();
        total_failed += failed;
        let new = conns.len();
        connected += new;
        tasks.extend(
            conns
                .into_iter()
                .map(|conn| spawn_receiver(conn, stats.clone())),
        );
        tokio::time::sleep(timing.settle).await;
        let rss = server.rss_kib();
        points.push(json!({
            "connections": connected,
            "connect_per_s": new as f64 / seconds,
            "server_rss_kib": rss,
            "rss_per_connection_kib": (rss.saturating_sub(rss_before)) as f64 / connected.max(1) as f64,
            "closed": stats.closed.load(Ordering::Relaxed),
        }));
    }
    for task in &tasks {
        task.abort();
    }
    Ok(vec![json!({
        "ok": total_failed == 0 && connected == checkpoints.last().copied().unwrap_or(0),
        "errors": total_failed as u64 + stats.closed.load(Ordering::Relaxed),
        "server_rss_before_kib": rss_before,
        "points": points,
    })])
}
