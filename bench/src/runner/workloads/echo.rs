//! Echo: every connection keeps `in_flight` echoes outstanding.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::Outcome;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::runner::stats::*;

pub(crate) async fn echo(
    variant: Variant,
    server: &ServerProcess,
    connections: usize,
    in_flight: usize,
    size: usize,
    timing: &Timing,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, connections, 0, None).await;
    if conns.is_empty() {
        return Err("no connection".into());
    }
    let stats = Stats::new();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| spawn_echo(conn, variant.proto, in_flight, size, stats.clone()))
        .collect();
    let mut record = measure(&stats, server, timing).await.into_record();
    for task in &tasks {
        task.abort();
    }
    record["ok"] = json!(failed == 0 && record["deliveries"].as_u64() > Some(0));
    record["errors"] = json!(failed as u64 + stats.closed.load(Ordering::Relaxed));
    Ok(vec![record])
}
