//! The connect storm: `connections` new clients, `concurrency` at a time,
//! as fast as the server takes them. For our hub each one is what the
//! official clients do: `POST /negotiate` on a connection of its own, the
//! WebSocket upgrade with the negotiated id, the SignalR handshake. For
//! the raw baseline it is the WebSocket upgrade only (it has nothing
//! more). The connections stay open until the storm ends.
//!
//! Our hub runs a second storm, on a fresh server process of its own, whose
//! clients skip negotiation (the JS client's `skipNegotiation: true`: the
//! WebSocket upgrade at the hub's URL without an id, then the handshake).
//! Its record is the server `<variant>-skip-negotiation` (see
//! [`SKIP_NEGOTIATION`]): the like-for-like comparison with raw's upgrade,
//! beside the full SignalR connect that the goal is about.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use super::Outcome;
use crate::procstat;
use crate::runner::load::*;
use crate::runner::plan::*;
use crate::runner::process::*;
use crate::servers::ServerKind;
use crate::wsclient::{Conn, Proto};

/// The suffix of the server name of our hub's skip-negotiation storm
/// (`ours-json-skip-negotiation`).
pub(crate) const SKIP_NEGOTIATION: &str = "-skip-negotiation";

/// The storm against a fresh server of `variant`; for our hub also the
/// skip-negotiation storm against another fresh server, right after it.
pub(crate) async fn connect_storm(
    variant: Variant,
    connections: usize,
    concurrency: usize,
    launch: Launch,
) -> Outcome {
    let mut records =
        storm_on_fresh_server(variant, connections, concurrency, launch, true).await?;
    if variant.kind == ServerKind::Hub {
        // Let the sockets of the first storm go before the next server
        // starts (as between jobs).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let skipped = storm_on_fresh_server(variant, connections, concurrency, launch, false)
            .await
            .unwrap_or_else(|error| vec![json!({"ok": false, "error": error})]);
        let server = format!("{}{SKIP_NEGOTIATION}", variant.name);
        for mut record in skipped {
            // Set before the runner merges in the variant's name, which
            // then leaves it alone.
            record["server"] = json!(server);
            record["skip_negotiation"] = json!(true);
            records.push(record);
        }
    }
    Ok(records)
}

async fn storm_on_fresh_server(
    variant: Variant,
    connections: usize,
    concurrency: usize,
    launch: Launch,
    negotiate: bool,
) -> Outcome {
    let server = ServerProcess::start(variant.kind, launch)
        .await
        .map_err(|e| format!("server did not start: {e}"))?;
    let result = storm(variant, &server, connections, concurrency, negotiate).await;
    server.stop().await;
    result
}

/// One storm; `negotiate` makes our hub's clients negotiate first (other
/// servers have no negotiation).
async fn storm(
    variant: Variant,
    server: &ServerProcess,
    connections: usize,
    concurrency: usize,
    negotiate: bool,
) -> Outcome {
    let address = server.address;
    let proto = variant.proto;
    let negotiated = negotiate && matches!(proto, Proto::Json | Proto::MsgPack);
    let cpu_before = server.cpu();
    let loadgen_before = procstat::cpu_seconds("self");
    let started = Instant::now();
    let results: Vec<(std::io::Result<Conn>, Duration)> =
        futures_util::stream::iter(0..connections)
            .map(|index| async move {
                let began = Instant::now();
                let connect = async {
                    if negotiated {
                        Conn::connect_negotiated(proto, address, source(index)).await
                    } else {
                        Conn::connect(proto, address, source(index), None).await
                    }
                };
                let conn = tokio::time::timeout(Duration::from_secs(20), connect)
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("connect timed out")));
                (conn, began.elapsed())
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = server.cpu() - cpu_before;
    let loadgen_cpu = procstat::cpu_seconds("self") - loadgen_before;
    let mut times_ms = Vec::with_capacity(results.len());
    let mut open = Vec::with_capacity(results.len());
    let mut first_error = None;
    for (result, took) in results {
        match result {
            Ok(conn) => {
                open.push(conn);
                times_ms.push(took.as_secs_f64() * 1e3);
            }
            Err(error) => {
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let failed = connections - open.len();
    drop(open);
    times_ms.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if times_ms.is_empty() {
            return json!(null);
        }
        let index = ((times_ms.len() as f64 * q).ceil() as usize).clamp(1, times_ms.len()) - 1;
        json!(times_ms[index])
    };
    let connected = (connections - failed) as f64;
    Ok(vec![json!({
        "ok": failed == 0,
        "errors": failed,
        "first_error": first_error,
        "negotiate": negotiated,
        "seconds": seconds,
        "connects_per_s": connected / seconds,
        "server_cpu_s": server_cpu,
        "loadgen_cpu_s": loadgen_cpu,
        "connects_per_server_cpu_s": if server_cpu > 0.0 { connected / server_cpu } else { 0.0 },
        "client_bound": loadgen_cpu > server_cpu,
        "connect_p50_ms": quantile(0.5),
        "connect_p99_ms": quantile(0.99),
        "server_rss_kib": server.rss_kib(),
    })])
}
