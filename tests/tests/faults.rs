//! Faults, over real sockets, against the `conformance-server` binary (two
//! of them over a real `redis-server` for the node kill), with the Rust
//! client, each through the [`TcpRelay`] fixture where a fault has to be
//! injected between the two:
//!
//! - a hub node killed with SIGKILL under load: the other node's clients
//!   miss nothing, the killed node's clients reconnect to the survivor and
//!   receive again;
//! - a half-open peer (the relay stops forwarding without closing): the
//!   server's client timeout and the client's server timeout both find it,
//!   within their configured bounds, on WebSockets and Server-Sent Events;
//! - a graceful shutdown (SIGTERM) with an invocation, a queued invocation
//!   and a stream in flight: none is left without an answer, and the client
//!   is told to reconnect;
//! - a stateful-reconnect client away for longer than its replay buffer
//!   allows: dropped, and it sees a clean close after a gap-free prefix;
//! - slowloris on a WebSocket: a hub message trickled in byte by byte is
//!   cut off by the client timeout (the HTTP transports' slowloris cases
//!   are in `hostile_clients.rs`).
//!
//! Timeouts are short (a second or two) so that the whole binary runs in
//! about ten seconds; the tests run in parallel.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hub_runtime::HubErrorKind;
use hub_runtime::client::{
    ClosedReason, HubConnection, HubConnectionEvent, HubConnectionState, TransportType, Transports,
};
use hub_tests::conformance::{ConformanceConnection, PATIENCE, within};
use hub_tests::relay::{TcpRelay, socket_addr_of};
use hub_tests::{RedisProcess, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

/// The next event of a connection, within [`PATIENCE`].
async fn next_event(events: &mut broadcast::Receiver<HubConnectionEvent>) -> HubConnectionEvent {
    within("a connection event", events.recv()).await.unwrap()
}

/// One HTTP/1.1 request on a new connection to `addr`; the status and the
/// body (read to the end: the request says `Connection: close`).
async fn http(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    within("an HTTP answer", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The sum of the samples of Prometheus metric `name` (a counter, gauge or
/// histogram `_count`) whose labels include every `labels` pair, from the
/// server's `GET /metrics` (asked directly, not through any relay).
async fn metric(server: &ServerProcess, name: &str, labels: &[(&str, &str)]) -> f64 {
    let addr = socket_addr_of(server.base_url());
    let (status, body) = http(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "the server was started with --metrics");
    body.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls [`metric`] until `done` holds; the time that took.
async fn until_metric(
    server: &ServerProcess,
    name: &str,
    labels: &[(&str, &str)],
    what: &str,
    done: impl Fn(f64) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if done(metric(server, name, labels).await) {
            return started.elapsed();
        }
        assert!(started.elapsed() < PATIENCE, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Receives what `inbox` got until `last` arrives (numbers as text), in
/// arrival order.
async fn numbers_until(client: &mut ConformanceConnection, last: u64, who: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(PATIENCE, client.inbox.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{who} never received broadcast {last}; last seen {:?}",
                    seen.last()
                )
            })
            .unwrap();
        let number: u64 = message.parse().unwrap();
        seen.push(number);
        if number == last {
            return seen;
        }
    }
}

// ---------------------------------------------------------------------------
// A node killed with SIGKILL under load.

/// Two `conformance-server` nodes over Redis; clients on both; a client of
/// the survivor broadcasts numbered messages without pause while the other
/// node is killed with SIGKILL. The killed node's clients (one per
/// transport) reach it through a relay, as through a load balancer, that
/// sends new connections to the survivor once the node is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_leaves_the_others_unaffected_and_its_clients_reconnect() {
    let redis = RedisProcess::start();
    let survivor = ServerProcess::start(SERVER, &["--redis", &redis.url()]);
    let doomed = ServerProcess::start(SERVER, &["--redis", &redis.url()]);
    let balancer = TcpRelay::builder_for(doomed.base_url()).start().await;
    let survivor_url = format!("{}/hubs/test", survivor.base_url());

    let mut on_survivor = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let client =
            ConformanceConnection::new(HubConnection::builder(&survivor_url), name).unwrap();
        client.start().await.unwrap();
        on_survivor.push(client);
    }
    let transports = [
        (TransportType::WebSockets, Transports::ALL),
        (
            TransportType::ServerSentEvents,
            Transports {
                web_sockets: false,
                ..Transports::ALL
            },
        ),
        (
            TransportType::LongPolling,
            Transports {
                web_sockets: false,
                server_sent_events: false,
                long_polling: true,
            },
        ),
    ];
    let mut on_doomed = Vec::new();
    for (transport, allowed) in transports {
        let builder = HubConnection::builder(balancer.hub_url())
            .transports(allowed)
            .reconnect_delays([
                Duration::ZERO,
                Duration::from_millis(200),
                Duration::from_secs(1),
            ]);
        let client = ConformanceConnection::new(builder, "d").unwrap();
        let events = client.connection.events();
        client.start().await.unwrap();
        assert_eq!(client.connection.transport(), Some(transport));
        let first_id = client.connection.connection_id().unwrap();
        on_doomed.push((client, events, first_id));
    }

    // The load: Broadcast after Broadcast, each awaited, from the survivor.
    let sender =
        ConformanceConnection::new(HubConnection::builder(&survivor_url), "sender").unwrap();
    sender.start().await.unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (sent, stop, hub) = (sent.clone(), stop.clone(), sender.hub.clone());
        tokio::spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                within("Broadcast", hub.broadcast(n.to_string()))
                    .await
                    .unwrap_or_else(|e| panic!("the surviving node's Broadcast {n} failed: {e}"));
                sent.store(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    balancer.set_upstream(socket_addr_of(survivor.base_url()));
    let before_kill = sent.load(Ordering::Relaxed);
    tokio::task::spawn_blocking(move || drop(doomed)) // SIGKILL, then wait for the exit
        .await
        .unwrap();
    let after_kill = sent.load(Ordering::Relaxed);
    assert!(before_kill > 10, "the load was running before the kill");

    let mut reconnected_at = Vec::new();
    for (client, events, first_id) in &mut on_doomed {
        let transport = client.connection.transport();
        match next_event(events).await {
            HubConnectionEvent::Reconnecting { .. } => {}
            other => panic!(
                "a client of the killed node ({transport:?}) starts reconnecting, got {other:?}"
            ),
        }
        match next_event(events).await {
            HubConnectionEvent::Reconnected { connection_id } => {
                assert_ne!(
                    connection_id.as_ref(),
                    Some(&*first_id),
                    "a reconnect is a new connection"
                );
            }
            other => panic!(
                "a client of the killed node ({transport:?}) reconnects to the surviving node, got {other:?}"
            ),
        }
        reconnected_at.push(sent.load(Ordering::Relaxed));
    }
    // Broadcasts go on for a while after the last reconnect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let last = load.await.unwrap();
    assert!(
        last > after_kill + 50,
        "broadcasts kept being sent after the kill"
    );

    for (index, client) in on_survivor.iter_mut().enumerate() {
        let seen = numbers_until(client, last, "a client of the surviving node").await;
        let expected: Vec<u64> = (1..=last).collect();
        assert!(
            seen == expected,
            "client {index} of the surviving node receives every broadcast once, in order, \
             before, during and after the other node's SIGKILL (1..={last}); got {} messages, \
             first gaps at {:?}",
            seen.len(),
            seen.windows(2)
                .filter(|pair| pair[1] != pair[0] + 1)
                .take(3)
                .collect::<Vec<_>>()
        );
    }
    for ((client, _, _), reconnected) in on_doomed.iter_mut().zip(reconnected_at) {
        let transport = client.connection.transport();
        let seen = numbers_until(client, last, "a reconnected client of the killed node").await;
        assert!(
            seen.windows(2).all(|pair| pair[1] > pair[0]),
            "a client of the killed node ({transport:?}) receives no broadcast twice or out of order"
        );
        let gaps: Vec<_> = seen
            .windows(2)
            .filter(|pair| pair[1] != pair[0] + 1)
            .collect();
        assert!(
            gaps.len() <= 1,
            "a client of the killed node ({transport:?}) misses broadcasts only while it is away \
             (one gap), got gaps {gaps:?}"
        );
        assert!(
            seen.first().is_some_and(|&first| first <= before_kill),
            "a client of the killed node ({transport:?}) received broadcasts before the kill"
        );
        // Received again after reconnecting: everything from some point
        // no later than its reconnect up to the last one.
        let tail_start = gaps.first().map_or(seen[0], |pair| pair[1]);
        assert!(
            tail_start <= reconnected + 1,
            "a reconnected client of the killed node ({transport:?}) receives every broadcast \
             sent after its reconnect (from {reconnected}); its messages resume at {tail_start}"
        );
    }
    drop(sender);
}

// ---------------------------------------------------------------------------
// A half-open peer.

const CLIENT_TIMEOUT: Duration = Duration::from_millis(1500);
const KEEP_ALIVE: Duration = Duration::from_millis(250);

/// Whether `elapsed`, measured from the moment the relay stopped
/// forwarding, is within the bounds of a `timeout` counted from the last
/// message received (at most one keep-alive interval before the hold):
/// not before, and not much after (scheduling slack on a busy machine).
fn within_timeout_bounds(elapsed: Duration, timeout: Duration) -> bool {
    elapsed + KEEP_ALIVE + Duration::from_millis(100) >= timeout
        && elapsed <= timeout + Duration::from_secs(3)
}

/// The relay between client and server stops forwarding in both
/// directions without closing anything. The server (client timeout 1.5 s,
/// keep-alive 250 ms) closes the connection as timed out, and the client
/// (server timeout 1.5 s, keep-alive 250 ms) closes as lost with a timeout
/// error, each within the bounds of its timeout.
async fn half_open_peer_is_found_by_both_timeouts(
    allowed: Transports,
    expected: TransportType,
    label: &str,
) {
    let server = ServerProcess::start(
        SERVER,
        &[
            "--client-timeout-ms",
            "1500",
            "--keep-alive-ms",
            "250",
            "--metrics",
        ],
    );
    let relay = TcpRelay::builder_for(server.base_url()).start().await;
    let builder = HubConnection::builder(relay.hub_url())
        .transports(allowed)
        .server_timeout(CLIENT_TIMEOUT)
        .keep_alive_interval(KEEP_ALIVE);
    let client = ConformanceConnection::new(builder, "half").unwrap();
    let mut events = client.connection.events();
    client.start().await.unwrap();
    assert_eq!(client.connection.transport(), Some(expected));
    let echoed = within("Echo", client.hub.echo("before".to_owned())).await;
    assert_eq!(echoed.unwrap(), "before");
    // A while with keep-alives only: the timeouts do not fire on a healthy
    // but idle connection.
    tokio::time::sleep(CLIENT_TIMEOUT + Duration::from_millis(500)).await;
    assert_eq!(
        client.connection.state(),
        HubConnectionState::Connected,
        "an idle connection kept alive by pings stays up past both timeouts"
    );
    let active = [("signalr_transport", label)];
    assert_eq!(
        metric(&server, "signalr_server_active_connections", &active).await,
        1.0,
        "the server holds the connection"
    );

    relay.hold();
    let timed_out = [
        ("signalr_transport", label),
        ("signalr_connection_status", "timeout"),
    ];
    let server_side = until_metric(
        &server,
        "signalr_server_connection_duration_seconds_count",
        &timed_out,
        "the server closes a silent half-open connection by its client timeout",
        |count| count >= 1.0,
    );
    let client_side = async {
        let started = Instant::now();
        let event = next_event(&mut events).await;
        (started.elapsed(), event)
    };
    let (server_found, (client_found, event)) = tokio::join!(server_side, client_side);
    match &event {
        HubConnectionEvent::Closed {
            reason: ClosedReason::Lost,
            error: Some(error),
        } => assert_eq!(
            error.kind(),
            HubErrorKind::Timeout,
            "the client closes a silent half-open connection with its server-timeout error: {error}"
        ),
        other => panic!(
            "the client closes a silent connection as lost by its server timeout, got {other:?}"
        ),
    }
    eprintln!(
        "{label}: half-open found by the server after {server_found:?}, by the client after {client_found:?}"
    );
    assert!(
        within_timeout_bounds(server_found, CLIENT_TIMEOUT),
        "the server finds a half-open peer by its 1.5 s client timeout, not sooner or much later \
         ({server_found:?} after the relay went silent)"
    );
    assert!(
        within_timeout_bounds(client_found, CLIENT_TIMEOUT),
        "the client finds a half-open peer by its 1.5 s server timeout, not sooner or much later \
         ({client_found:?} after the relay went silent)"
    );
    assert_eq!(
        metric(&server, "signalr_server_active_connections", &active).await,
        0.0,
        "the timed-out connection is gone from the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_peer_is_found_by_both_timeouts_on_websockets() {
    half_open_peer_is_found_by_both_timeouts(
        Transports::ALL,
        TransportType::WebSockets,
        "web_sockets",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_peer_is_found_by_both_timeouts_on_server_sent_events() {
    half_open_peer_is_found_by_both_timeouts(
        Transports {
            web_sockets: false,
            ..Transports::ALL
        },
        TransportType::ServerSentEvents,
        "server_sent_events",
    )
    .await;
}
