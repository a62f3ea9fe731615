//! Faults, over real sockets, against the `conformance-server` binary (two
//! of them over a real `redis-server` for the node kill), with the Rust
//! client, each through the [`TcpRelay`] fixture where a fault has to be
//! injected between the two:
//!
//! - a hub node killed with SIGKILL under load: the other node's clients
//!   miss nothing, the killed node's clients reconnect to the survivor and
//!   receive again;
//! - a half-open peer (the relay stops forwarding without closing): the
//!   server's client timeout (on Long Polling its disconnect timeout: no
//!   poll) and the client's server timeout both find it, within their
//!   configured bounds, on WebSockets, Server-Sent Events and Long Polling;
//! - a graceful shutdown (SIGTERM) with two invocations and a stream in
//!   flight: the one that can finish completes, the others end with
//!   errors rather than silence, and the client is told to reconnect;
//! - a stateful-reconnect client away for longer than its replay buffer
//!   allows, or than the disconnect timeout: dropped, and it closes after
//!   a gap-free prefix, nothing half-replayed;
//! - slowloris: on a WebSocket, the hub handshake trickled in byte by byte
//!   is cut off by the handshake timeout and a hub message by the client
//!   timeout; on Server-Sent Events, a POST body by the client timeout
//!   (request heads on every transport and Long Polling's POST bodies are
//!   in `hostile_clients.rs`).
//!
//! Timeouts are short (a second or two) so that the whole binary runs in
//! about ten seconds; the tests run in parallel.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hub_runtime::client::{
    ClosedReason, HubConnection, HubConnectionEvent, HubConnectionState, TransportType, Transports,
};
use hub_runtime::server::{HubOptions, HubServer};
use hub_runtime::{CallContext, HubError, HubErrorKind, hub, hub_server};
use hub_tests::conformance::{
    self, Callbacks, ConformanceClient as _, ConformanceConnection, PATIENCE, within,
};
use hub_tests::relay::{TcpRelay, socket_addr_of};
use hub_tests::stalled::RawConnection;
use hub_tests::{RedisProcess, ServerProcess, metric, raw_http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

/// The next event of a connection, within [`PATIENCE`].
async fn next_event(events: &mut broadcast::Receiver<HubConnectionEvent>) -> HubConnectionEvent {
    within("a connection event", events.recv()).await.unwrap()
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
/// the survivor broadcasts numbered messages one after another (each
/// awaited, 2 ms apart) while the other node is killed with SIGKILL. The
/// killed node's clients (one per transport, automatic reconnect on)
/// reach it through a relay, as through a load balancer, that sends new
/// connections to the survivor from the moment of the kill.
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
    eprintln!(
        "node kill: broadcasts 1..={last}; {before_kill} before the kill, {after_kill} once it \
         was dead, the killed node's clients back by {reconnected_at:?}"
    );
    assert!(
        last > after_kill + 5,
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
        // no later than its reconnect up to the last one. `reconnected`
        // counts the Broadcasts completed when the client said it was back;
        // one more may have been in flight (the sender awaits each), and
        // fanned out just before the new connection was registered.
        let tail_start = gaps.first().map_or(seen[0], |pair| pair[1]);
        assert!(
            tail_start <= reconnected + 2,
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
/// keep-alive 250 ms) closes the connection as timed out — on Long Polling,
/// whose polls are the keep-alive and where no client timeout runs, by its
/// disconnect timeout (1.5 s) after the last poll ended — and the client
/// (server timeout 1.5 s, keep-alive 250 ms) closes as lost with a timeout
/// error, each within the bounds of its timeout. `server_timeout` names
/// the server's timeout in the assertion messages.
async fn half_open_peer_is_found_by_both_timeouts(
    allowed: Transports,
    expected: TransportType,
    label: &str,
    server_timeout: &str,
) {
    let server = ServerProcess::start(
        SERVER,
        &[
            "--client-timeout-ms",
            "1500",
            "--disconnect-timeout-ms",
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
    let server_finds =
        format!("the server closes a silent half-open connection by its {server_timeout}");
    let timed_out = [
        ("signalr_transport", label),
        ("signalr_connection_status", "timeout"),
    ];
    let server_side = until_metric(
        &server,
        "signalr_server_connection_duration_seconds_count",
        &timed_out,
        &server_finds,
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
        "the server finds a half-open peer by its 1.5 s {server_timeout}, not sooner or much \
         later ({server_found:?} after the relay went silent)"
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
        "client timeout",
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
        "client timeout",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_peer_is_found_by_both_timeouts_on_long_polling() {
    half_open_peer_is_found_by_both_timeouts(
        Transports {
            web_sockets: false,
            server_sent_events: false,
            ..Transports::ALL
        },
        TransportType::LongPolling,
        "long_polling",
        "disconnect timeout (no poll)",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Graceful shutdown with work in flight.

/// SIGTERM while the client has a long `Counter` stream running and two
/// `AskClient` invocations waiting for the client's answers. The
/// invocation that can still finish does (the client answers it after the
/// SIGTERM, and the server still reads answers while it shuts down); the
/// stream stops at once with a Completion error; the other invocation
/// fails once the shutdown timeout (5 s) has passed and the server closes
/// — none is left in silence;
/// the server's last word is Close with `allowReconnect: true`, so the
/// client starts reconnecting; the server exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_answers_every_call_in_flight_and_tells_clients_to_reconnect() {
    let server = ServerProcess::start(SERVER, &[]);
    let relay = TcpRelay::builder_for(server.base_url())
        .record_from_server()
        .start()
        .await;
    let builder =
        HubConnection::builder(relay.hub_url()).reconnect_delays([Duration::from_millis(100)]);
    let client = ConformanceConnection::new(builder, "late").unwrap();
    let mut events = client.connection.events();
    client.start().await.unwrap();
    assert_eq!(
        client.connection.transport(),
        Some(TransportType::WebSockets)
    );

    // A stream of 100 000 items, 20 ms apart: it cannot end by itself.
    let mut counter = client.hub.counter(100_000, 20).unwrap();
    for expected in 0..3 {
        let item = within(
            "a Counter item",
            futures_util::StreamExt::next(&mut counter),
        )
        .await;
        assert_eq!(item.unwrap().unwrap(), expected);
    }
    // Two AskClients wait for the client's answers; the client will answer
    // only one of them, after the SIGTERM.
    let ask = || {
        let hub = client.hub.clone();
        tokio::spawn(async move { hub.ask_client("wait".to_owned()).await })
    };
    let (first, second) = (ask(), ask());
    while relay.count_from_server(br#""target":"Question""#) < 2 {
        assert!(
            !first.is_finished() && !second.is_finished(),
            "AskClient waits for the answer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let terminated_at = Instant::now();
    let pid = server.pid().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    // The client answers only after the shutdown began.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.release.notify_one();

    let mut items = 3;
    let ended_with = loop {
        match within(
            "the end of the stream",
            futures_util::StreamExt::next(&mut counter),
        )
        .await
        {
            Some(Ok(item)) => {
                assert_eq!(
                    item, items,
                    "stream items stay in order during the shutdown"
                );
                items += 1;
            }
            Some(Err(error)) => break Some(error),
            None => break None,
        }
    };
    let error =
        ended_with.expect("a stream in flight at SIGTERM ends with an error, not a normal end");
    assert_eq!(
        error.kind(),
        HubErrorKind::Remote,
        "a stream in flight at SIGTERM ends with the server's Completion error: {error}"
    );
    assert!(
        error.message().contains("shutting down"),
        "the stream's Completion error says the server is shutting down: {error}"
    );
    // It came before the Close, which waits for the unanswered AskClient
    // (up to the 5 s shutdown timeout).
    assert!(
        !first.is_finished() || !second.is_finished(),
        "a stream stopped by a shutdown gets its Completion at once, not with the Close"
    );
    let stream_ended_after = terminated_at.elapsed();
    let first = within("the first AskClient", first).await.unwrap();
    let second = within("the second AskClient", second).await.unwrap();
    let (answered, unanswered) = match (first, second) {
        (Ok(answer), Err(error)) | (Err(error), Ok(answer)) => (answer, error),
        other => panic!(
            "of two AskClients in flight at SIGTERM, the one the client answers completes and \
             the other fails; got {other:?}"
        ),
    };
    assert_eq!(
        answered, "late answers wait",
        "an invocation in flight at SIGTERM that can finish within the shutdown timeout \
         completes with its result"
    );
    assert_eq!(
        unanswered.kind(),
        HubErrorKind::ConnectionClosed,
        "an invocation in flight at SIGTERM that cannot finish fails with a connection-closed \
         error once the server closes, not silence: {unanswered}"
    );
    let closed_after = terminated_at.elapsed();
    match next_event(&mut events).await {
        HubConnectionEvent::Reconnecting { error: None } => {}
        other => panic!(
            "a client of a server shutting down gracefully is told to reconnect (Close with \
             allowReconnect, no error), got {other:?}"
        ),
    }
    let wire = relay.from_server();
    let close = wire
        .windows(9)
        .position(|window| window == br#"{"type":7"#)
        .map(|start| {
            let end = wire[start..]
                .iter()
                .position(|&byte| byte == 0x1e)
                .map_or(wire.len(), |end| start + end);
            serde_json::from_slice::<serde_json::Value>(&wire[start..end]).unwrap()
        })
        .expect("the server sends a Close message before closing");
    assert_eq!(
        close,
        serde_json::json!({"type": 7, "allowReconnect": true}),
        "a graceful shutdown's Close allows reconnecting and carries no error"
    );
    eprintln!(
        "shutdown: {items} stream items; the stream ended {stream_ended_after:?} after SIGTERM, \
         the unanswered call {closed_after:?} after"
    );
    let exited = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(exited, "the server exits with 0 after SIGTERM");
    client.stop().await;
}

// ---------------------------------------------------------------------------
// A stateful-reconnect client away for too long.

/// A stateful-reconnect client (WebSockets) loses its socket while another
/// client sends it numbered 1 KB messages, and stays away (its resume
/// attempt hangs in the relay) while 3,000 more are sent: far more than
/// the server's 100 000-byte replay buffer and its outbound queue hold.
/// The server drops the connection (documented: a write beyond the replay
/// buffer waits for an Ack, and a full outbound queue closes a slow
/// consumer); the client's resume then fails and it closes cleanly, having
/// received a gap-free prefix of the numbers and nothing after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_client_away_beyond_its_replay_buffer_is_dropped_without_a_gap() {
    let server = ServerProcess::start(SERVER, &["--stateful-reconnect", "--metrics"]);
    let relay = TcpRelay::builder_for(server.base_url()).start().await;
    let builder = HubConnection::builder(relay.hub_url()).stateful_reconnect(100_000);
    let mut away = ConformanceConnection::new(builder, "away").unwrap();
    let mut events = away.connection.events();
    away.start().await.unwrap();
    let id = away.connection.connection_id().unwrap();
    let sender = ConformanceConnection::new(
        HubConnection::builder(format!("{}/hubs/test", server.base_url())),
        "sender",
    )
    .unwrap();
    sender.start().await.unwrap();
    let web_sockets = [("signalr_transport", "web_sockets")];
    assert_eq!(
        metric(&server, "signalr_server_active_connections", &web_sockets).await,
        2.0
    );

    let padding = "x".repeat(1000);
    // The untyped `send`: fire-and-forget, so that messages are in flight
    // when the socket drops (the typed proxy waits for each completion).
    let send = |n: u64| {
        sender
            .connection
            .send("SendToConnection", (&id, format!("{n} {padding}")))
    };
    let mut received = Vec::new();
    for n in 1..=100 {
        send(n).await.unwrap();
    }
    while received.len() < 50 {
        let message = away.next().await;
        received.push(message);
    }
    relay.hold();
    relay.cut();
    for n in 101..=3_000 {
        send(n).await.unwrap();
    }
    until_metric(
        &server,
        "signalr_server_active_connections",
        &web_sockets,
        "the server drops a stateful connection that stays away while more than its replay \
         buffer and outbound queue hold is sent to it",
        |active| active == 1.0,
    )
    .await;
    relay.release();

    let event = next_event(&mut events).await;
    match &event {
        HubConnectionEvent::Closed {
            reason: ClosedReason::Lost,
            error: Some(error),
        } => assert!(
            error.message().contains("could not be resumed"),
            "the client closes saying its connection could not be resumed: {error}"
        ),
        other => panic!(
            "a stateful client whose connection the server dropped closes when its resume \
             fails, got {other:?}"
        ),
    }
    eprintln!("stateful client away too long: {event:?}");
    assert_eq!(away.connection.state(), HubConnectionState::Disconnected);
    // Whatever arrived, arrived before the close: let stragglers show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(message) = away.inbox.try_recv() {
        received.push(message);
    }
    let numbers: Vec<u64> = received
        .iter()
        .map(|message| message.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let prefix: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(
        numbers, prefix,
        "a stateful client dropped while away received a gap-free prefix, nothing half-replayed"
    );
    assert!(
        numbers.len() < 3_000,
        "the messages sent while it was away beyond the buffers were not delivered"
    );
    eprintln!(
        "stateful client away too long: received 1..={}",
        numbers.len()
    );
    sender.stop().await;
}

/// The hub of [`a_stateful_client_away_beyond_the_disconnect_timeout_is_dropped_without_a_gap`]:
/// an in-process server, whose `on_disconnected` tells the test when and
/// why the server forgot the connection.
#[hub_server]
trait StatefulNodeHub {
    /// The caller's connection id.
    async fn get_connection_id(&self, ctx: &CallContext<Self>) -> String;

    /// `Receive(message)` on one connection.
    async fn send_to_connection(
        &self,
        ctx: &CallContext<Self>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError>;
}

/// Reports every connection that ends, with the error that ended it.
struct StatefulNode {
    ended: tokio::sync::mpsc::UnboundedSender<(String, Option<HubError>)>,
}

#[hub(client = conformance::ConformanceClient)]
impl StatefulNodeHub for StatefulNode {
    async fn get_connection_id(&self, ctx: &CallContext<Self>) -> String {
        ctx.connection_id().to_string()
    }

    async fn send_to_connection(
        &self,
        ctx: &CallContext<Self>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().client(connection_id).receive(message).await
    }

    async fn on_disconnected(&self, ctx: &CallContext<Self>, error: Option<HubError>) {
        let _ = self.ended.send((ctx.connection_id().to_string(), error));
    }
}

/// A server in this process with [`StatefulNode`] at `/hubs/node`, for
/// tests that watch the hub's `on_disconnected`; stops serving when
/// dropped.
struct InProcessNode {
    addr: std::net::SocketAddr,
    /// Every connection that ended, with its error.
    ended: tokio::sync::mpsc::UnboundedReceiver<(String, Option<HubError>)>,
    serving: tokio::task::JoinHandle<()>,
}

impl InProcessNode {
    async fn start(options: HubOptions) -> InProcessNode {
        let (ended_tx, ended) = tokio::sync::mpsc::unbounded_channel();
        let node = HubServer::builder(StatefulNode { ended: ended_tx })
            .options(options)
            .build();
        let app = axum::Router::new().nest("/hubs/node", node.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        InProcessNode {
            addr,
            ended,
            serving,
        }
    }
}

impl Drop for InProcessNode {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A stateful-reconnect client loses its socket with messages in flight
/// and stays away (its resume attempt hangs in the relay) for longer than
/// the server's disconnect timeout (1 s here), while more messages are
/// sent to it. The server forgets the connection once the timeout passes,
/// not before; the client's resume then fails and it closes, having
/// received a gap-free prefix and none of what the server buffered for a
/// replay that never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_client_away_beyond_the_disconnect_timeout_is_dropped_without_a_gap() {
    let mut node = InProcessNode::start(HubOptions {
        allow_stateful_reconnects: true,
        disconnect_timeout: DISCONNECT_TIMEOUT,
        ..HubOptions::default()
    })
    .await;
    let node_addr = node.addr;
    let ended = &mut node.ended;
    let relay = TcpRelay::start(node_addr).await;

    let (callbacks, mut inbox, _) = Callbacks::new("away");
    let away = HubConnection::builder(format!("http://{}/hubs/node", relay.addr()))
        .stateful_reconnect(100_000)
        .handlers(callbacks.into_handlers())
        .build()
        .unwrap();
    let mut events = away.events();
    within("start()", away.start()).await.unwrap();
    let id = away.connection_id().unwrap();
    let (callbacks, _, _) = Callbacks::new("sender");
    let sender = HubConnection::builder(format!("http://{node_addr}/hubs/node"))
        .handlers(callbacks.into_handlers())
        .build()
        .unwrap();
    within("start()", sender.start()).await.unwrap();
    let sender_id = within(
        "GetConnectionId",
        sender.hub::<StatefulNodeHubProxy>().get_connection_id(),
    )
    .await
    .unwrap();

    // The untyped `send`: fire-and-forget, so that messages are in flight
    // when the socket drops.
    let send = |n: u64| sender.send("SendToConnection", (&id, n.to_string()));
    let mut received = Vec::new();
    for n in 1..=100 {
        send(n).await.unwrap();
    }
    while received.len() < 50 {
        received.push(within("a Receive message", inbox.recv()).await.unwrap());
    }
    relay.hold();
    relay.cut();
    let cut_at = Instant::now();
    for n in 101..=200 {
        send(n).await.unwrap();
    }
    let (gone, error) = within("the server forgetting the connection", ended.recv())
        .await
        .unwrap();
    let forgotten_after = cut_at.elapsed();
    assert_eq!(
        gone, id,
        "the connection that went away ends, not {sender_id}"
    );
    assert!(
        forgotten_after + Duration::from_millis(100) >= DISCONNECT_TIMEOUT,
        "the server keeps a stateful connection for its disconnect timeout before dropping it \
         ({forgotten_after:?})"
    );
    assert!(
        error
            .as_ref()
            .is_some_and(|error| error.message().contains("disconnect timeout")),
        "the hub's on_disconnected learns the connection ended by the disconnect timeout: \
         {error:?}"
    );
    relay.release();

    match next_event(&mut events).await {
        HubConnectionEvent::Closed {
            reason: ClosedReason::Lost,
            error: Some(error),
        } => assert!(
            error.message().contains("could not be resumed"),
            "the client closes saying its connection could not be resumed: {error}"
        ),
        other => panic!(
            "a stateful client that came back after the disconnect timeout closes when its \
             resume fails, got {other:?}"
        ),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(message) = inbox.try_recv() {
        received.push(message);
    }
    let numbers: Vec<u64> = received.iter().map(|n| n.parse().unwrap()).collect();
    let prefix: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(
        numbers, prefix,
        "a stateful client dropped after the disconnect timeout received a gap-free prefix, \
         nothing half-replayed"
    );
    assert!(
        numbers.len() <= 100,
        "nothing sent after its socket dropped reached it ({} received)",
        numbers.len()
    );
    sender.stop().await;
}

// ---------------------------------------------------------------------------
// Slowloris on a WebSocket.

/// A client WebSocket frame: FIN, text, masked with the all-zero key (so
/// the payload goes as it is), `payload` shorter than 126 bytes.
fn ws_text_frame_header(len: usize) -> Vec<u8> {
    assert!(len < 126);
    vec![0x81, 0x80 | len as u8, 0, 0, 0, 0]
}

fn ws_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = ws_text_frame_header(payload.len());
    frame.extend_from_slice(payload);
    frame
}

/// Negotiates on `hub` at `addr` and opens its WebSocket by hand (the
/// upgrade answered with 101); nothing of the hub protocol sent yet.
async fn raw_websocket(addr: std::net::SocketAddr, hub: &str) -> TcpStream {
    let (status, body) = raw_http(
        &addr.to_string(),
        &format!(
            "POST {hub}/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200);
    let negotiated: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = negotiated["connectionToken"].as_str().unwrap();

    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            format!(
                "GET {hub}?id={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Byte by byte, so that nothing after the response head is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = within("the upgrade response", socket.read(&mut byte))
            .await
            .unwrap();
        assert!(read > 0, "the upgrade is answered");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "the WebSocket upgrade succeeds"
    );
    socket
}

/// Reads `socket` until it closes, or what it read shows the server's
/// last word (`last_word`), or `PATIENCE` passes, sending one byte of
/// `trickle` every 100 ms meanwhile; whether the server ended it, what it
/// read, and how many bytes were sent.
async fn trickle_until_closed(
    socket: &mut TcpStream,
    trickle: &[u8],
    last_word: &[u8],
) -> (bool, Vec<u8>, usize) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut sent = 0;
    loop {
        if sent < trickle.len() {
            let _ = socket.write_all(&trickle[sent..=sent]).await;
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_millis(100), socket.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (true, seen, sent),
            Ok(Ok(read)) => seen.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
        if seen.windows(last_word.len()).any(|w| w == last_word) {
            return (true, seen, sent);
        }
        if started.elapsed() > PATIENCE {
            return (false, seen, sent);
        }
    }
}

/// After the handshake and a Ping (which starts the server's client
/// timeout, here 1 s), a client sends a hub message one byte every 100 ms:
/// no whole message ever arrives, and the server closes the connection
/// once the client timeout passes — with a Close message saying so — long
/// before the message is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_trickled_byte_by_byte_is_cut_off_by_the_client_timeout() {
    let server = ServerProcess::start(SERVER, &["--client-timeout-ms", "1000"]);
    let addr = socket_addr_of(server.base_url());
    let mut socket = raw_websocket(addr, "/hubs/test").await;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    socket
        .write_all(&ws_text_frame(b"{\"protocol\":\"json\",\"version\":1}\x1e"))
        .await
        .unwrap();
    socket
        .write_all(&ws_text_frame(b"{\"type\":6}\x1e"))
        .await
        .unwrap();
    while !seen.windows(3).any(|w| w == b"{}\x1e") {
        let read = within("the handshake response", socket.read(&mut buffer))
            .await
            .unwrap();
        assert!(read > 0, "the handshake is answered");
        seen.extend_from_slice(&buffer[..read]);
    }
    seen.clear();

    let message =
        b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"trickled\"]}\x1e";
    let started = Instant::now();
    socket
        .write_all(&ws_text_frame_header(message.len()))
        .await
        .unwrap();
    let (closed, seen, sent) = trickle_until_closed(&mut socket, message, br#"{"type":7"#).await;
    let elapsed = started.elapsed();
    assert!(
        closed,
        "a WebSocket message trickled byte by byte is cut off by the client timeout"
    );
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains(r#""error":"Connection closed with an error.""#),
        "the server says why it closes (a Close with an error): {text:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "not cut off before the 1 s client timeout ({elapsed:?})"
    );
    assert!(
        sent < message.len(),
        "cut off before the trickled message was complete ({sent} of {} bytes sent)",
        message.len()
    );
}

/// The hub handshake itself trickled byte by byte on a WebSocket: the
/// server refuses it with `Handshake was canceled.` once its handshake
/// timeout (here 1 s, `--handshake-timeout-ms`) passes, long before it is
/// complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_handshake_trickled_byte_by_byte_is_cut_off_by_the_handshake_timeout() {
    let server = ServerProcess::start(SERVER, &["--handshake-timeout-ms", "1000"]);
    let mut socket = raw_websocket(socket_addr_of(server.base_url()), "/hubs/test").await;
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    let started = Instant::now();
    socket
        .write_all(&ws_text_frame_header(handshake.len()))
        .await
        .unwrap();
    let (ended, seen, sent) =
        trickle_until_closed(&mut socket, handshake, b"Handshake was canceled.").await;
    let elapsed = started.elapsed();
    assert!(
        ended,
        "a hub handshake trickled byte by byte is cut off by the handshake timeout: {:?}",
        String::from_utf8_lossy(&seen)
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "not cut off before the 1 s handshake timeout ({elapsed:?})"
    );
    assert!(
        sent < handshake.len(),
        "cut off before the trickled handshake was complete ({sent} of {} bytes sent)",
        handshake.len()
    );
}

/// Slowloris on the sends of a Server-Sent Events connection: while its
/// event stream is open, a POST whose body comes one byte every 100 ms is
/// answered 408 once the client timeout (here 1 s) passes, whatever its
/// Content-Length promised (`hostile_clients.rs` does the same over Long
/// Polling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sent_events_post_trickled_byte_by_byte_is_cut_off() {
    let server = ServerProcess::start(SERVER, &["--client-timeout-ms", "1000"]);
    let addr = socket_addr_of(server.base_url());
    let negotiated = RawConnection::negotiate(&addr.to_string()).await;
    let token = &negotiated.token;
    let mut events = TcpStream::connect(addr).await.unwrap();
    events
        .write_all(
            format!(
                "GET /hubs/test?id={token} HTTP/1.1\r\nHost: {addr}\r\n\
                 Accept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = within("the event stream's response", events.read(&mut buffer))
            .await
            .unwrap();
        assert!(read > 0, "the event stream is answered");
        head.extend_from_slice(&buffer[..read]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "the event stream opens: {:?}",
        String::from_utf8_lossy(&head)
    );

    let mut post = TcpStream::connect(addr).await.unwrap();
    post.write_all(
        format!(
            "POST /hubs/test?id={token} HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Length: 100000\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let body = vec![b'{'; 100_000];
    let (answered, seen, sent) = trickle_until_closed(&mut post, &body, b"\r\n\r\n").await;
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&seen);
    assert!(
        answered,
        "a POST body trickled byte by byte on a Server-Sent Events connection is cut off"
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a trickled POST body gets 408 Request Timeout: {answer:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "not cut off before the 1 s client timeout ({elapsed:?}, {sent} bytes sent)"
    );
    assert!(server.terminate(), "the server stops cleanly");
}
