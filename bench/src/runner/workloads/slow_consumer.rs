//! Slow consumers: stalled receivers must not slow the healthy ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Outcome;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::runner::stats::*;

pub(crate) async fn slow_consumer(
    variant: Variant,
    receivers: usize,
    stalled: usize,
    size: usize,
    timing: &Timing,
    launch: Launch,
) -> Outcome {
    let mut phases = Vec::new();
    for stalled in [0, stalled] {
        let server = ServerProcess::start(variant.kind, launch)
            .await
            .map_err(|e| format!("server did not start: {e}"))?;
        let healthy = receivers - stalled;
        let (conns, failed) = connect_many(variant.proto, server.address, healthy, 1, None).await;
        // Stalled receivers read nothing; a small receive buffer makes
        // their backlog reach the server's queue quickly.
        let (stalled_conns, stalled_failed) = connect_many(
            variant.proto,
            server.address,
            stalled,
            healthy + 1,
            Some(4096),
        )
        .await;
        let (mut sender, _) = connect_many(variant.proto, server.address, 1, 0, None).await;
        let Some(sender) = sender.pop() else {
            server.stop().await;
            return Err("the sender could not connect".into());
        };
        let stats = Stats::new();
        let healthy_count = conns.len() as u64;
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
            healthy_count,
            stats.clone(),
            stop.clone(),
        ));
        // The stalled receivers' backlog first fills the kernel's socket
        // buffers (megabytes on loopback), only then the server's queue:
        // measure once 8 MiB per stalled receiver were sent (bounded).
        let backlog = (8 << 20) / size.max(1) as u64;
        let fill_deadline = Instant::now() + timing.fill_limit;
        while stalled > 0
            && stats.sent.load(Ordering::Relaxed) < backlog
            && Instant::now() < fill_deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut record = measure(&stats, &server, timing).await.into_record();
        stop.store(true, Ordering::Relaxed);
        let sent = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        // What happened to the stalled receivers: read their backlog for
        // up to 3 s and see whether the server closed them.
        let fate = Stats::new();
        let fate_wait = timing.fate_wait;
        let mut stalled_tasks = Vec::new();
        for mut conn in stalled_conns {
            let fate = fate.clone();
            stalled_tasks.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + fate_wait;
                let mut sent = Vec::new();
                loop {
                    match tokio::time::timeout_at(deadline, conn.recv(&mut |ts| sent.push(ts)))
                        .await
                    {
                        Ok(received) => {
                            fate.deliver(&sent);
                            sent.clear();
                            if received.closed {
                                return true;
                            }
                        }
                        Err(_) => return false,
                    }
                }
            }));
        }
        let mut closed_by_server = 0;
        let mut still_open = 0;
        for task in stalled_tasks {
            match task.await {
                Ok(true) => closed_by_server += 1,
                _ => still_open += 1,
            }
        }
        record["stalled"] = json!(stalled);
        record["stalled_closed_by_server"] = json!(closed_by_server);
        record["stalled_still_open"] = json!(still_open);
        record["stalled_received"] = json!(fate.deliveries.load(Ordering::Relaxed));
        record["broadcasts_sent"] = json!(sent);
        record["errors"] =
            json!((failed + stalled_failed) as u64 + stats.closed.load(Ordering::Relaxed));
        record["ok"] =
            json!(failed + stalled_failed == 0 && record["deliveries"].as_u64() > Some(0));
        for task in &tasks {
            task.abort();
        }
        drain.abort();
        server.stop().await;
        phases.push(record);
    }
    let baseline = phases[0]["deliveries_per_s"].as_f64().unwrap_or(0.0);
    let with_stalled = phases[1]["deliveries_per_s"].as_f64().unwrap_or(0.0);
    let ok = phases.iter().all(|phase| phase["ok"] == json!(true));
    Ok(vec![json!({
        "ok": ok,
        "errors": phases.iter().map(|p| p["errors"].as_u64().unwrap_or(0)).sum::<u64>(),
        "baseline": phases[0],
        "with_stalled": phases[1],
        "healthy_throughput_loss": if baseline > 0.0 { 1.0 - with_stalled / baseline } else { 0.0 },
    })])
}
