//! The load generator's side of a run: connecting many clients, reading
//! and echoing, and the broadcast senders (flow-controlled and paced).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

use super::stats::*;
use crate::wsclient::{Conn, Encoder, Proto, now_ns};

/// The source address of the `index`-th connection: 32 loopback
/// addresses, each with its own ephemeral port range.
pub(crate) fn source(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (index % 32) as u8))
}

/// Connects `count` clients (at most 256 handshakes at once, each bounded
/// by 20 s). Returns the connections and the number that failed.
pub(crate) async fn connect_many(
    proto: Proto,
    server: SocketAddr,
    count: usize,
    first_index: usize,
    receive_buffer: Option<u32>,
) -> (Vec<Conn>, usize) {
    let results: Vec<io::Result<Conn>> = futures_util::stream::iter(0..count)
        .map(|index| async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                Conn::connect(proto, server, source(first_index + index), receive_buffer),
            )
            .await
            .unwrap_or_else(|_| Err(io::Error::other("connect timed out")))
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let mut connections = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(conn) => connections.push(conn),
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        eprintln!("  {failed} connections failed, first: {error}");
    }
    // Socket.IO registers its event handlers in a task spawned on connect:
    // events sent at once may find none. Give every server a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (connections, failed)
}

pub(crate) fn spawn_receiver(mut conn: Conn, stats: Arc<Stats>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sent = Vec::with_capacity(256);
        loop {
            let received = conn.recv(&mut |ts| sent.push(ts)).await;
            stats.deliver(&sent);
            sent.clear();
            if received.closed {
                stats.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    })
}

pub(crate) fn spawn_echo(
    mut conn: Conn,
    proto: Proto,
    in_flight: usize,
    size: usize,
    stats: Arc<Stats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut encoder = Encoder::new(proto);
        let mut out = Vec::with_capacity(in_flight * (size + 64));
        for _ in 0..in_flight {
            encoder.echo(&mut out, now_ns(), size);
        }
        if conn.write(&out).await.is_err() {
            stats.closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut sent = Vec::with_capacity(64);
        loop {
            let received = conn.recv(&mut |ts| sent.push(ts)).await;
            stats.deliver(&sent);
            if received.closed {
                stats.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            out.clear();
            let now = now_ns();
            for _ in 0..sent.len() {
                encoder.echo(&mut out, now, size);
            }
            sent.clear();
            if !out.is_empty() && conn.write(&out).await.is_err() {
                stats.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    })
}

/// Broadcast senders keep at most this many broadcasts undelivered: full
/// speed without overflowing any server's per-connection queue.
pub(crate) const WINDOW: u64 = 32;

/// Sends broadcasts as fast as the receivers take them (flow control by
/// the receivers' count) until `stop`. Returns how many it sent.
pub(crate) async fn flow_controlled_sender(
    mut writer: OwnedWriteHalf,
    proto: Proto,
    size: usize,
    receivers: u64,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut encoder = Encoder::new(proto);
    let mut out = Vec::new();
    let mut sent = 0u64;
    let base = stats.deliveries.load(Ordering::Relaxed);
    let mut last_delivered = 0;
    let mut last_progress = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let delivered = (stats.deliveries.load(Ordering::Relaxed) - base) / receivers.max(1);
        if delivered != last_delivered {
            last_delivered = delivered;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(1) {
            // Broadcasts that never arrive (a server that dropped them) must
            // not stop the sender: give up on them.
            sent = delivered;
            last_progress = Instant::now();
        }
        let outstanding = sent.saturating_sub(delivered);
        if outstanding < WINDOW {
            out.clear();
            let now = now_ns();
            for _ in outstanding..WINDOW {
                encoder.broadcast(&mut out, now, size);
                sent += 1;
            }
            stats.sent.store(sent, Ordering::Relaxed);
            if writer.write_all(&out).await.is_err() {
                break;
            }
        } else {
            tokio::select! {
                () = stats.progress.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
    sent
}

/// Sends `rate` broadcasts per second for `duration` (open loop; each
/// carries its scheduled send time, so a late send counts as latency).
pub(crate) async fn paced_sender(
    writer: &mut OwnedWriteHalf,
    encoder: &mut Encoder,
    size: usize,
    rate: f64,
    duration: Duration,
) -> io::Result<u64> {
    let start = Instant::now();
    let start_ns = now_ns();
    let mut out = Vec::new();
    let mut sent = 0u64;
    let total = (rate * duration.as_secs_f64()) as u64;
    while sent < total && start.elapsed() < duration + Duration::from_secs(5) {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        out.clear();
        while sent < due && out.len() < 256 * 1024 {
            let scheduled = start_ns + (sent as f64 / rate * 1e9) as u64;
            encoder.broadcast(&mut out, scheduled, size);
            sent += 1;
        }
        if !out.is_empty() {
            writer.write_all(&out).await?;
        }
        let next = start + Duration::from_secs_f64(sent as f64 / rate);
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(sent)
}
