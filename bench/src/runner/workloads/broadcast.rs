//! Broadcast: one sender, many receivers; the maximum rate, then paced steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::net::tcp::OwnedWriteHalf;

use super::Outcome;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::runner::stats::*;
use crate::wsclient::Encoder;

pub(crate) async fn broadcast(
    variant: Variant,
    server: &ServerProcess,
    receivers: usize,
    size: usize,
    stepped: bool,
    timing: &Timing,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, receivers, 1, None).await;
    let (mut sender, sender_failed) = connect_many(variant.proto, server.address, 1, 0, None).await;
    let Some(sender) = sender.pop() else {
        return Err(format!("the sender could not connect ({sender_failed})"));
    };
    if conns.is_empty() {
        return Err("no receiver connected".into());
    }
    let receivers = conns.len() as u64;
    let stats = Stats::new();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| spawn_receiver(conn, stats.clone()))
        .collect();
    let (writer, drain) = sender.into_writer();
    let drain = tokio::spawn(drain);
    let stop = Arc::new(AtomicBool::new(false));
    let sending = tokio::spawn(flow_controlled_sender(
        writer,
        variant.proto,
        size,
        receivers,
        stats.clone(),
        stop.clone(),
    ));
    let mut record = measure(&stats, server, timing).await.into_record();
    stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    let max_rate = record["deliveries_per_s"].as_f64().unwrap_or(0.0) / receivers as f64;
    record["ok"] = json!(failed == 0 && record["deliveries"].as_u64() > Some(0));
    record["errors"] = json!(failed as u64 + stats.closed.load(Ordering::Relaxed));
    record["mode"] = json!("max-rate");
    record["broadcasts_per_s"] = json!(max_rate);
    let writer = match tokio::time::timeout(Duration::from_secs(10), sending).await {
        Ok(Ok(_)) => None,
        _ => None::<OwnedWriteHalf>,
    };
    drop(writer);
    records.push(record);

    if stepped && max_rate > 0.0 {
        // A fresh sender for the paced steps.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut paced, _) = connect_many(variant.proto, server.address, 1, 2, None).await;
        if let Some(paced) = paced.pop() {
            let (mut writer, paced_drain) = paced.into_writer();
            let paced_drain = tokio::spawn(paced_drain);
            let mut encoder = Encoder::new(variant.proto);
            let mut best: Option<f64> = None;
            for &fraction in timing.steps {
                let rate = (max_rate * fraction).max(1.0);
                stats.reset_latency();
                let closed_before = stats.closed.load(Ordering::Relaxed);
                let mark = Mark::now(&stats, server);
                stats.recording.store(true, Ordering::Relaxed);
                let sent = paced_sender(&mut writer, &mut encoder, size, rate, timing.step).await;
                // Let the last ones arrive before the window closes.
                tokio::time::sleep(Duration::from_millis(150)).await;
                stats.recording.store(false, Ordering::Relaxed);
                let mut step = mark.finish(&stats, server).into_record();
                let p99 = step["latency"]["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
                let closed = stats.closed.load(Ordering::Relaxed) - closed_before;
                let sent = sent.unwrap_or(0);
                let delivered_all = step["deliveries"].as_u64().unwrap_or(0) >= sent * receivers;
                let good = p99 < 100.0 && closed == 0 && delivered_all;
                step["mode"] = json!("step");
                step["target_broadcasts_per_s"] = json!(rate);
                step["target_deliveries_per_s"] = json!(rate * receivers as f64);
                step["sent"] = json!(sent);
                step["under_100ms"] = json!(good);
                step["ok"] = json!(true);
                records.push(step);
                if !good {
                    break;
                }
                best = Some(rate);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if let Some(first) = records.first_mut() {
                first["best_rate_under_100ms_deliveries_per_s"] =
                    json!(best.map(|rate| rate * receivers as f64));
            }
            paced_drain.abort();
        }
    }
    for task in &tasks {
        task.abort();
    }
    drain.abort();
    Ok(records)
}
