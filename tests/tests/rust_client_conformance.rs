//! The Rust client (`hub_runtime::client::HubConnection`) runs the
//! conformance scenarios against the `conformance-server` binary over real
//! sockets, with JSON and with MessagePack, over WebSockets, Server-Sent
//! Events and Long Polling: the rows of `shared/conformance-hub.md` (the
//! streams are in `rust_client_streams.rs`), plus reconnect after a server
//! restart. Every run checks with `HubConnection::transport` that the
//! client really is on the transport the run is about, since the client
//! falls back to the next transport without a word when one fails.
//!
//! Client methods are a `#[hub_client]` implementation registered with
//! `into_handlers()`: the same contract as the server's.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hub_runtime::client::{
    HubConnection, HubConnectionEvent, HubConnectionState, TransportType, Transports,
};
use hub_runtime::protocol::HubProtocol;
use hub_runtime::{HubError, HubErrorKind};
use hub_tests::ServerProcess;
use hub_tests::conformance::{ConformanceConnection, ConformanceHubProxy, within};
use hub_tests::route::{self, Route, assert_route};
use hub_tests::{over_http_transports, over_https, over_websockets};
use serde_json::json;
use tokio::sync::broadcast;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

struct Options<'a> {
    protocol: HubProtocol,
    name: &'a str,
    token: Option<&'a str>,
    reconnect: bool,
}

/// A connection to `hub_url` with `options`, not started.
fn build(hub_url: &str, options: &Options<'_>) -> ConformanceConnection {
    let mut builder = route::builder(hub_url, options.protocol);
    if let Some(token) = options.token {
        let token = token.to_owned();
        builder = builder.access_token(move || Some(token.clone()));
    }
    if options.reconnect {
        builder = builder.automatic_reconnect();
    }
    ConformanceConnection::new(builder, options.name).unwrap()
}

async fn try_connect(
    hub_url: &str,
    options: &Options<'_>,
) -> Result<ConformanceConnection, HubError> {
    let client = build(hub_url, options);
    client.start().await?;
    assert_route(&client.connection);
    Ok(client)
}

async fn connect(hub_url: &str, protocol: HubProtocol, name: &str) -> ConformanceConnection {
    let options = Options {
        protocol,
        name,
        token: None,
        reconnect: false,
    };
    try_connect(hub_url, &options).await.unwrap()
}

/// Starts a conformance server with `args` and the scenario's transports.
fn start_server(args: &[&str]) -> ServerProcess {
    route::start_server(SERVER, args)
}

fn hub_url(server: &ServerProcess) -> String {
    format!("{}/hubs/test", server.base_url())
}

/// `Echo` and `Echo2`: strings (unicode, control characters, 1 MB) and any
/// JSON value come back unchanged.
async fn echo(protocol: HubProtocol) {
    let server = start_server(&["--max-message-size", "4000000"]);
    let client = connect(&hub_url(&server), protocol, "a").await;
    let hub = &client.hub;

    for message in [
        "hello".to_owned(),
        "héllo wörld — 你好 🎉 \u{0} \"quoted\" \\ \n\t".to_owned(),
        "x".repeat(1024 * 1024),
    ] {
        let echoed = within("Echo", hub.echo(message.clone())).await.unwrap();
        assert_eq!(echoed, message);
    }

    for value in [
        json!({
            "a": [1, 2, {"b": null, "c": "x"}],
            "d": {"e": {"f": [true, false]}},
            "g": 1.5,
            "h": -42,
            "ünï": "cödé ✓",
        }),
        json!(null),
        json!(["x", "ÿ"]),
    ] {
        let echoed = within("Echo2", hub.echo2(value.clone())).await.unwrap();
        assert_eq!(echoed, value);
    }

    client.stop().await;
}

/// `Add`: 64-bit sums; many concurrent invocations on one connection.
async fn add(protocol: HubProtocol) {
    let server = start_server(&[]);
    let client = connect(&hub_url(&server), protocol, "a").await;
    let hub = &client.hub;

    let big = 1_i64 << 40;
    for (a, b, sum) in [
        (2, 3, 5),
        (-7, 3, -4),
        (big, big, big * 2),
        (i64::MAX - 1, 1, i64::MAX),
    ] {
        assert_eq!(within("Add", hub.add(a, b)).await.unwrap(), sum);
    }

    // The proxy's futures are `'static`: calls can be spawned.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200_i64 {
        let call = hub.add(i, 1000);
        calls.spawn(async move { (i, call.await) });
    }
    let mut completed = 0;
    while let Some(joined) = within("200 Adds", calls.join_next()).await {
        let (i, sum) = joined.unwrap();
        assert_eq!(sum.unwrap(), i + 1000);
        completed += 1;
    }
    assert_eq!(completed, 200);

    client.stop().await;
}

/// `GetConnectionId`: the id the client negotiated.
async fn get_connection_id(protocol: HubProtocol) {
    let server = start_server(&[]);
    let client = connect(&hub_url(&server), protocol, "a").await;
    let id = within("GetConnectionId", client.hub.get_connection_id())
        .await
        .unwrap();
    assert!(!id.is_empty());
    assert_eq!(Some(id), client.connection.connection_id());
    client.stop().await;
}

/// `Broadcast` reaches every client, the caller too; `SendToOthers` all
/// but the caller.
async fn broadcast_and_send_to_others(protocol: HubProtocol) {
    let server = start_server(&[]);
    let url = hub_url(&server);
    let mut a = connect(&url, protocol, "a").await;
    let mut b = connect(&url, protocol, "b").await;
    let mut c = connect(&url, protocol, "c").await;

    within("Broadcast", a.hub.broadcast("to all".to_owned()))
        .await
        .unwrap();
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.next().await, "to all");
    }

    within("SendToOthers", b.hub.send_to_others("to others".to_owned()))
        .await
        .unwrap();
    assert_eq!(a.next().await, "to others");
    assert_eq!(c.next().await, "to others");
    b.assert_nothing_received().await;

    // The untyped `send` (fire and forget) reaches the hub as well.
    c.connection
        .send("Broadcast", ("sent, not invoked",))
        .await
        .unwrap();
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.next().await, "sent, not invoked");
    }

    for client in [a, b, c] {
        client.stop().await;
    }
}

/// A connection is reachable as soon as its `start()` has resolved: a
/// broadcast sent right after it arrives (the server registers a
/// connection before it answers the handshake).
async fn reached_once_started(protocol: HubProtocol) {
    let server = start_server(&[]);
    let url = hub_url(&server);
    let mut sender = connect(&url, protocol, "sender").await;
    for round in 0..10 {
        let mut newcomer = connect(&url, protocol, "newcomer").await;
        let message = format!("round {round}");
        within("Broadcast", sender.hub.broadcast(message.clone()))
            .await
            .unwrap();
        assert_eq!(
            newcomer.next().await,
            message,
            "a broadcast sent once start() resolved reaches the new connection"
        );
        assert_eq!(sender.next().await, message);
        newcomer.stop().await;
    }
    sender.stop().await;
}

/// `SendToConnection` reaches that one connection only.
async fn send_to_connection(protocol: HubProtocol) {
    let server = start_server(&[]);
    let url = hub_url(&server);
    let mut a = connect(&url, protocol, "a").await;
    let mut b = connect(&url, protocol, "b").await;
    let mut c = connect(&url, protocol, "c").await;

    let id_b = b.connection.connection_id().unwrap();
    within(
        "SendToConnection",
        a.hub.send_to_connection(id_b, "just you".to_owned()),
    )
    .await
    .unwrap();
    assert_eq!(b.next().await, "just you");
    a.assert_nothing_received().await;
    c.assert_nothing_received().await;

    // An id nobody has: nothing happens, and no error.
    within(
        "SendToConnection",
        a.hub
            .send_to_connection("no-such-connection".to_owned(), "lost".to_owned()),
    )
    .await
    .unwrap();
    a.assert_nothing_received().await;
    b.assert_nothing_received().await;

    for client in [a, b, c] {
        client.stop().await;
    }
}

/// `JoinGroup`, `SendToGroup`, `LeaveGroup`: after leaving, a send to the
/// group is not received.
async fn groups(protocol: HubProtocol) {
    let server = start_server(&[]);
    let url = hub_url(&server);
    let mut member = connect(&url, protocol, "member").await;
    let mut other_member = connect(&url, protocol, "other").await;
    let mut outsider = connect(&url, protocol, "outsider").await;
    let sender = connect(&url, protocol, "sender").await;
    let send_to_group = |message: &str| {
        within(
            "SendToGroup",
            sender.hub.send_to_group("g".to_owned(), message.to_owned()),
        )
    };

    for joining in [&member, &other_member] {
        within("JoinGroup", joining.hub.join_group("g".to_owned()))
            .await
            .unwrap();
    }
    send_to_group("first").await.unwrap();
    assert_eq!(member.next().await, "first");
    assert_eq!(other_member.next().await, "first");

    within("LeaveGroup", member.hub.leave_group("g".to_owned()))
        .await
        .unwrap();
    send_to_group("second").await.unwrap();
    assert_eq!(other_member.next().await, "second");
    member.assert_nothing_received().await;
    outsider.assert_nothing_received().await;

    for client in [member, other_member, outsider, sender] {
        client.stop().await;
    }
}

/// The caller's user as `Whoami` answers it.
async fn whoami(hub: &ConformanceHubProxy) -> Option<String> {
    within("Whoami", hub.whoami()).await.unwrap()
}

/// Users from the access token (`user-NAME`): `Whoami`, and `SendToUser`
/// reaches every connection of that user and nobody else.
async fn users(protocol: HubProtocol) {
    let server = start_server(&[]);
    let url = hub_url(&server);
    let as_user = |name, token| Options {
        protocol,
        name,
        token: Some(token),
        reconnect: false,
    };
    let mut ann1 = try_connect(&url, &as_user("ann1", "user-ann"))
        .await
        .unwrap();
    let mut ann2 = try_connect(&url, &as_user("ann2", "user-ann"))
        .await
        .unwrap();
    let mut bob = try_connect(&url, &as_user("bob", "user-bob"))
        .await
        .unwrap();
    let anonymous = connect(&url, protocol, "anonymous").await;

    assert_eq!(whoami(&ann1.hub).await.as_deref(), Some("ann"));
    assert_eq!(whoami(&bob.hub).await.as_deref(), Some("bob"));
    assert_eq!(whoami(&anonymous.hub).await, None);

    within(
        "SendToUser",
        anonymous
            .hub
            .send_to_user("ann".to_owned(), "for ann".to_owned()),
    )
    .await
    .unwrap();
    assert_eq!(ann1.next().await, "for ann");
    assert_eq!(ann2.next().await, "for ann");
    bob.assert_nothing_received().await;

    for client in [ann1, ann2, bob, anonymous] {
        client.stop().await;
    }
}

/// A token that names no user is refused at negotiate: `start()` fails
/// with the 401, and the connection stays disconnected.
async fn bad_token_is_refused(protocol: HubProtocol) {
    let server = start_server(&[]);
    let options = Options {
        protocol,
        name: "intruder",
        token: Some("not-a-user-token"),
        reconnect: true,
    };
    let client = build(&hub_url(&server), &options);
    let error = client.start().await.unwrap_err();
    assert!(error.message().contains("401"), "{error}");
    assert_eq!(client.connection.state(), HubConnectionState::Disconnected);
    assert_eq!(client.connection.transport(), None);
}

/// `Fail`: its message reaches the caller as a remote error; an unknown
/// method and a wrong argument count (only the untyped API can make these
/// mistakes) give the .NET texts; the connection stays up through all
/// three.
async fn errors(protocol: HubProtocol) {
    let server = start_server(&[]);
    let client = connect(&hub_url(&server), protocol, "a").await;

    let error = within("Fail", client.hub.fail("boom-123".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert!(error.message().contains("boom-123"), "{error}");

    let error = within("Nope", client.connection.invoke::<()>("Nope", ()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert_eq!(
        error.message(),
        "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
    );

    let error = within("Add(1)", client.connection.invoke::<i64>("Add", (1,)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert_eq!(
        error.message(),
        "Failed to invoke 'Add' due to an error on the server."
    );

    assert_eq!(client.connection.state(), HubConnectionState::Connected);
    assert_eq!(within("Add", client.hub.add(1, 1)).await.unwrap(), 2);
    client.stop().await;
}

/// `AskClient`: the server asks the caller (a client result) and returns
/// the answer of the caller's `#[hub_client]` implementation.
async fn ask_client(protocol: HubProtocol) {
    let server = start_server(&[]);
    let client = connect(&hub_url(&server), protocol, "rusty").await;
    let hub = &client.hub;
    let answer = within("AskClient", hub.ask_client("what time is it?".to_owned()))
        .await
        .unwrap();
    assert_eq!(answer, "rusty answers what time is it?");
    // Concurrent client results on one connection each get their own answer.
    let (first, second) = within(
        "two AskClients",
        futures_util::future::join(
            hub.ask_client("one".to_owned()),
            hub.ask_client("two".to_owned()),
        ),
    )
    .await;
    assert_eq!(first.unwrap(), "rusty answers one");
    assert_eq!(second.unwrap(), "rusty answers two");
    client.stop().await;
}

/// `AskConnection`: one client asks another through the server.
async fn ask_connection(protocol: HubProtocol) {
    let server = start_server(&[]);
    let url = hub_url(&server);
    let asker = connect(&url, protocol, "asker").await;
    let answerer = connect(&url, protocol, "answerer").await;
    let id = answerer.connection.connection_id().unwrap();
    let answer = within(
        "AskConnection",
        asker.hub.ask_connection(id, "are you there?".to_owned()),
    )
    .await
    .unwrap();
    assert_eq!(answer, "answerer answers are you there?");

    let error = within(
        "AskConnection",
        asker
            .hub
            .ask_connection("no-such-connection".to_owned(), "hello?".to_owned()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);

    asker.stop().await;
    answerer.stop().await;
}

/// Keep-alive: with the server pinging every second, a client whose server
/// timeout is 3 s stays connected well past it.
async fn keep_alive(protocol: HubProtocol) {
    let server = start_server(&["--keep-alive-ms", "1000"]);
    let builder = HubConnection::builder(hub_url(&server))
        .protocol(protocol)
        .server_timeout(Duration::from_secs(3));
    let client = ConformanceConnection::new(builder, "a").unwrap();
    let connection = &client.connection;
    let mut events = connection.events();
    client.start().await.unwrap();
    assert_route(connection);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(connection.state(), HubConnectionState::Connected);
    assert_route(connection);
    assert!(
        events.try_recv().is_err(),
        "no event: the connection stayed up"
    );
    let echoed = within("Echo", client.hub.echo("alive".to_owned())).await;
    assert_eq!(echoed.unwrap(), "alive");
    client.stop().await;
}

/// How the server goes away in [`reconnect_after_server_restart`].
#[derive(Clone, Copy)]
enum Restart {
    /// SIGKILL: the socket just drops.
    Kill,
    /// SIGTERM: a graceful shutdown sends Close with `allowReconnect`.
    Terminate,
}

async fn next_event(events: &mut broadcast::Receiver<HubConnectionEvent>) -> HubConnectionEvent {
    tokio::time::timeout(Duration::from_secs(90), events.recv())
        .await
        .expect("no connection event")
        .unwrap()
}

/// The server restarts on the same port: automatic reconnect (the default
/// delays 0, 2, 10, 30 s) brings the client back with a new connection id,
/// calls work again and the registered handlers still answer.
async fn reconnect_after_server_restart(protocol: HubProtocol, restart: Restart) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    // `--bind` twice: the last one wins over `ServerProcess`'s port 0.
    let args: Vec<String> = route::server_args(&["--bind", &bind]);
    let start = move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerProcess::start(SERVER, &args)
    };
    let server = start();
    let scheme = if Route::current().tls {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{bind}/hubs/test");
    let options = Options {
        protocol,
        name: "phoenix",
        token: None,
        reconnect: true,
    };
    let mut client = build(&url, &options);
    let mut events = client.connection.events();
    client.start().await.unwrap();
    let first_id = client.connection.connection_id().unwrap();
    assert_route(&client.connection);

    let stopped_cleanly = tokio::task::spawn_blocking(move || match restart {
        Restart::Kill => {
            drop(server);
            true
        }
        Restart::Terminate => server.terminate(),
    })
    .await
    .unwrap();
    assert!(stopped_cleanly, "the server exits with 0 on SIGTERM");

    match next_event(&mut events).await {
        HubConnectionEvent::Reconnecting { .. } => {}
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(client.connection.state(), HubConnectionState::Reconnecting);
    assert_eq!(
        client.connection.transport(),
        None,
        "no transport while reconnecting"
    );
    let error = within("Echo", client.hub.echo("too early".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);

    let server = tokio::task::spawn_blocking(start).await.unwrap();

    let new_id = match next_event(&mut events).await {
        HubConnectionEvent::Reconnected { connection_id } => connection_id.unwrap(),
        other => panic!("expected Reconnected, got {other:?}"),
    };
    assert_ne!(new_id, first_id, "a reconnect is a new connection");
    assert_eq!(client.connection.connection_id(), Some(new_id.clone()));
    assert_eq!(client.connection.state(), HubConnectionState::Connected);
    // The new connection chose its transport again, among the same ones.
    assert_route(&client.connection);

    let hub = client.hub.clone();
    let id_seen_by_server = within("GetConnectionId", hub.get_connection_id()).await;
    assert_eq!(id_seen_by_server.unwrap(), new_id);
    let echoed = within("Echo", hub.echo("back".to_owned())).await;
    assert_eq!(echoed.unwrap(), "back");
    within("Broadcast", hub.broadcast("after the restart".to_owned()))
        .await
        .unwrap();
    assert_eq!(client.next().await, "after the restart");
    let answer = within("AskClient", hub.ask_client("still you?".to_owned())).await;
    assert_eq!(answer.unwrap(), "phoenix answers still you?");

    let connection = client.connection.clone();
    client.stop().await;
    match next_event(&mut events).await {
        HubConnectionEvent::Closed { error: None, .. } => {}
        other => panic!("expected a clean Closed, got {other:?}"),
    }
    assert_eq!(connection.transport(), None, "no transport once stopped");
    drop(server);
}

async fn reconnect_after_server_killed(protocol: HubProtocol) {
    reconnect_after_server_restart(protocol, Restart::Kill).await;
}

async fn reconnect_after_server_terminated(protocol: HubProtocol) {
    reconnect_after_server_restart(protocol, Restart::Terminate).await;
}

/// `transport()` names what the fallback settled on for each choice of
/// transports and protocol against a server that serves them all, is
/// `None` before `start()` and after `stop()`, and the connection works
/// over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_is_the_one_in_use() {
    let server = ServerProcess::start(SERVER, &[]);
    let url = hub_url(&server);
    let no_web_sockets = Transports {
        web_sockets: false,
        ..Transports::ALL
    };
    let long_polling_only = Transports {
        web_sockets: false,
        server_sent_events: false,
        long_polling: true,
    };
    let cases = [
        (
            Transports::ALL,
            HubProtocol::Json,
            TransportType::WebSockets,
        ),
        (
            Transports::ALL,
            HubProtocol::MessagePack,
            TransportType::WebSockets,
        ),
        (
            no_web_sockets,
            HubProtocol::Json,
            TransportType::ServerSentEvents,
        ),
        // Server-Sent Events carry text only.
        (
            no_web_sockets,
            HubProtocol::MessagePack,
            TransportType::LongPolling,
        ),
        (
            long_polling_only,
            HubProtocol::Json,
            TransportType::LongPolling,
        ),
    ];
    for (transports, protocol, expected) in cases {
        let builder = HubConnection::builder(url.as_str())
            .protocol(protocol)
            .transports(transports);
        let client = ConformanceConnection::new(builder, "a").unwrap();
        let connection = client.connection.clone();
        assert_eq!(connection.transport(), None, "not started yet");
        client.start().await.unwrap();
        assert_eq!(
            connection.transport(),
            Some(expected),
            "{transports:?} with {protocol:?}"
        );
        let echoed = within("Echo", client.hub.echo("over it".to_owned())).await;
        assert_eq!(echoed.unwrap(), "over it");
        client.stop().await;
        assert_eq!(connection.transport(), None, "stopped");
    }

    // Without negotiate there is only the WebSocket.
    let connection = HubConnection::builder(url.as_str())
        .skip_negotiation(true)
        .build()
        .unwrap();
    connection.start().await.unwrap();
    assert_eq!(connection.transport(), Some(TransportType::WebSockets));
    connection.stop().await;

    // No transport in common: `start()` fails and there is none.
    let sse_only = ServerProcess::start(SERVER, &["--transports", "serversentevents"]);
    let connection = HubConnection::builder(hub_url(&sse_only))
        .transports(long_polling_only)
        .build()
        .unwrap();
    assert!(connection.start().await.is_err());
    assert_eq!(connection.transport(), None);
}

/// A TCP proxy in front of a server that answers every Server-Sent Events
/// request (a GET accepting `text/event-stream`) with 502 itself, as a
/// proxy that does not pass event streams on, and relays everything else.
/// It decides on the first request of each TCP connection, which is
/// enough for this client: it opens one connection per HTTP request.
struct BlocksEventStreams {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlocksEventStreams {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BlocksEventStreams {
    async fn start(server: &ServerProcess) -> BlocksEventStreams {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};

        let upstream = server
            .base_url()
            .strip_prefix("http://")
            .unwrap()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // Every request on the connection is looked at, not only
                    // the first: the client reuses connections.
                    let is_event_stream = |bytes: &[u8]| {
                        bytes.starts_with(b"GET ")
                            && bytes
                                .windows(17)
                                .any(|w| w.eq_ignore_ascii_case(b"text/event-stream"))
                    };
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut server_read, mut server_write) = server.into_split();
                    let (mut client_read, client_write) = client.into_split();
                    let client_write = std::sync::Arc::new(tokio::sync::Mutex::new(client_write));
                    let writer = client_write.clone();
                    let back = tokio::spawn(async move {
                        let mut chunk = [0u8; 16 * 1024];
                        loop {
                            match server_read.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if writer.lock().await.write_all(&chunk[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                    let mut chunk = [0u8; 16 * 1024];
                    loop {
                        let n = match client_read.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if is_event_stream(&chunk[..n]) {
                            back.abort();
                            let _ = client_write
                                .lock()
                                .await
                                .write_all(
                                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\
                                      connection: close\r\n\r\n",
                                )
                                .await;
                            return;
                        }
                        if server_write.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        BlocksEventStreams { port, task }
    }

    fn hub_url(&self) -> String {
        format!("http://127.0.0.1:{}/hubs/test", self.port)
    }
}

/// When Server-Sent Events fail to start although the server offers them,
/// the client falls back to Long Polling, and `transport()` says so: the
/// check the Server-Sent Events runs make on every connection would fail
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_reports_the_fallback() {
    let server = ServerProcess::start(SERVER, &["--transports", "serversentevents,longpolling"]);
    let proxy = BlocksEventStreams::start(&server).await;
    let client = ConformanceConnection::new(HubConnection::builder(proxy.hub_url()), "a").unwrap();
    client.start().await.unwrap();
    assert_eq!(
        client.connection.transport(),
        Some(TransportType::LongPolling)
    );
    let echoed = within("Echo", client.hub.echo("fell back".to_owned())).await;
    assert_eq!(echoed.unwrap(), "fell back");
    client.stop().await;

    // Without the proxy, the same client is on Server-Sent Events.
    let connection = HubConnection::builder(hub_url(&server)).build().unwrap();
    connection.start().await.unwrap();
    assert_eq!(
        connection.transport(),
        Some(TransportType::ServerSentEvents)
    );
    connection.stop().await;
}

over_http_transports!(
    echo,
    add,
    get_connection_id,
    broadcast_and_send_to_others,
    reached_once_started,
    send_to_connection,
    groups,
    users,
    bad_token_is_refused,
    errors,
    ask_client,
    ask_connection,
    keep_alive,
    reconnect_after_server_killed,
);

over_websockets!(
    echo,
    add,
    get_connection_id,
    broadcast_and_send_to_others,
    reached_once_started,
    send_to_connection,
    groups,
    users,
    bad_token_is_refused,
    errors,
    ask_client,
    ask_connection,
    keep_alive,
    reconnect_after_server_killed,
    reconnect_after_server_terminated,
);

over_https!(
    echo,
    add,
    broadcast_and_send_to_others,
    groups,
    bad_token_is_refused,
    errors,
    ask_client,
    reconnect_after_server_killed,
);
