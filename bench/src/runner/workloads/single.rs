//! A single broadcast to many receivers: how long until the last one has it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::Outcome;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::runner::stats::*;
use crate::wsclient::{Encoder, now_ns};

pub(crate) async fn single(
    variant: Variant,
    server: &ServerProcess,
    receivers: usize,
    count: usize,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, receivers, 1, None).await;
    let (mut sender, _) = connect_many(variant.proto, server.address, 1, 0, None).await;
    let Some(sender) = sender.pop() else {
        return Err("the sender could not connect".into());
    };
    let receivers = conns.len() as u64;
    let stats = Stats::new();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| spawn_receiver(conn, stats.clone()))
        .collect();
    let (mut writer, drain) = sender.into_writer();
    let drain = tokio::spawn(drain);
    let mut encoder = Encoder::new(variant.proto);
    let mut out = Vec::new();
    let mut times_ms = Vec::new();
    let mut incomplete = 0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..count {
        let base = stats.deliveries.load(Ordering::Relaxed);
        stats.max_latency_ns.store(0, Ordering::Relaxed);
        out.clear();
        encoder.broadcast(&mut out, now_ns(), 32);
        if writer.write_all(&out).await.is_err() {
            return Err("the sender's connection failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.deliveries.load(Ordering::Relaxed) - base < receivers
            && Instant::now() < deadline
        {
            tokio::select! {
                () = stats.progress.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
        if stats.deliveries.load(Ordering::Relaxed) - base < receivers {
            incomplete += 1;
        } else {
            times_ms.push(stats.max_latency_ns.load(Ordering::Relaxed) as f64 / 1e6);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in &tasks {
        task.abort();
    }
    drain.abort();
    let mut sorted = times_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if sorted.is_empty() {
            return json!(null);
        }
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        json!(sorted[index])
    };
    Ok(vec![json!({
        "ok": failed == 0 && incomplete == 0 && !times_ms.is_empty(),
        "errors": failed + incomplete,
        "time_to_last_ms": times_ms,
        "time_to_last_p50_ms": quantile(0.5),
        "time_to_last_p99_ms": quantile(0.99),
        "time_to_last_max_ms": quantile(1.0),
        "server_rss_kib": server.rss_kib(),
    })])
}
