//! `HubConnection` against this crate's own server (`HubServer` + axum),
//! with the hand-written `Hub` implementation of `server_support`: the
//! untyped client API against the untyped server API.

#![cfg(all(feature = "client", feature = "server"))]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::net::SocketAddr;
use std::time::Duration;

use hub_runtime::HubErrorKind;
use hub_runtime::client::{ClosedReason, HubConnection, HubConnectionEvent, HubConnectionState};
use hub_runtime::protocol::{HubProtocol, Payload};
use hub_runtime::server::HubServer;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use server_support::TestHub;

struct Running {
    hub: HubServer<TestHub>,
    task: JoinHandle<()>,
    addr: SocketAddr,
}

impl Running {
    fn url(&self) -> String {
        format!("http://{}/hubs/test", self.addr)
    }

    /// Shuts the hub down (Close with allowReconnect) and frees the port.
    async fn stop(self) -> SocketAddr {
        self.hub.shutdown().await;
        self.task.abort();
        let _ = self.task.await;
        self.addr
    }
}

async fn serve(addr: SocketAddr) -> Running {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = HubServer::new(TestHub::default());
    let app = axum::Router::new().nest("/hubs/test", hub.router());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Running { hub, task, addr }
}

async fn next_event(events: &mut broadcast::Receiver<HubConnectionEvent>) -> HubConnectionEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no event within 10 s")
        .expect("event channel open")
}

fn receiver(connection: &HubConnection) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    connection.on("Receive", 1, move |args| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(args.bind::<String>(0)?);
            Ok(None)
        }
    });
    rx
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("nothing received within 10 s")
        .expect("channel open")
}

async fn invoke_send_and_client_results(protocol: HubProtocol) {
    let server = serve("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(server.url())
        .protocol(protocol)
        .build()
        .unwrap();
    let mut received = receiver(&connection);
    connection.on("Question", 1, |args| async move {
        let question: String = args.bind(0)?;
        Ok(Some(Payload::from_value(format!("{question}? 42"))))
    });
    connection.start().await.unwrap();
    assert_eq!(connection.state(), HubConnectionState::Connected);

    let echoed: String = connection.invoke("echo", ("héllo",)).await.unwrap();
    assert_eq!(echoed, "héllo");
    let sum: i64 = connection.invoke("Add", (40, 2)).await.unwrap();
    assert_eq!(sum, 42);
    let id: String = connection.invoke("GetConnectionId", ()).await.unwrap();
    assert_eq!(Some(id), connection.connection_id());

    let error = connection
        .invoke::<()>("Fail", ("broken",))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert!(error.message().contains("broken"), "{error}");
    let error = connection.invoke::<()>("Nope", ()).await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);

    // send: fire and forget; the broadcast comes back to our handler.
    connection.send("Broadcast", ("to all",)).await.unwrap();
    assert_eq!(recv(&mut received).await, "to all");
    // invoke of a void method.
    connection
        .invoke::<()>("Broadcast", ("again",))
        .await
        .unwrap();
    assert_eq!(recv(&mut received).await, "again");

    // A client result answered by our handler.
    let answer: String = connection
        .invoke("AskClient", ("the answer",))
        .await
        .unwrap();
    assert_eq!(answer, "the answer? 42");

    connection.stop().await;
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
    wait_until(|| server.hub.connection_count() == 0).await;
    server.stop().await;
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn json_invoke_send_and_client_results() {
    invoke_send_and_client_results(HubProtocol::Json).await;
}

#[tokio::test]
async fn messagepack_invoke_send_and_client_results() {
    invoke_send_and_client_results(HubProtocol::MessagePack).await;
}

#[tokio::test]
async fn broadcast_reaches_every_client() {
    let server = serve("127.0.0.1:0".parse().unwrap()).await;
    let a = HubConnection::builder(server.url()).build().unwrap();
    let b = HubConnection::builder(server.url())
        .protocol(HubProtocol::MessagePack)
        .build()
        .unwrap();
    let mut a_received = receiver(&a);
    let mut b_received = receiver(&b);
    a.start().await.unwrap();
    b.start().await.unwrap();
    assert_ne!(a.connection_id(), b.connection_id());
    a.send("Broadcast", ("from a",)).await.unwrap();
    assert_eq!(recv(&mut a_received).await, "from a");
    assert_eq!(recv(&mut b_received).await, "from a");
    a.stop().await;
    b.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn reconnects_after_the_server_restarts_on_the_same_port() {
    let server = serve("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(server.url())
        .reconnect_delays([
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_secs(2),
        ])
        .build()
        .unwrap();
    let mut received = receiver(&connection);
    let mut events = connection.events();
    connection.start().await.unwrap();
    let first_id = connection.connection_id().unwrap();

    // Graceful shutdown: Close with allowReconnect, then the port is free.
    let addr = server.stop().await;
    match next_event(&mut events).await {
        HubConnectionEvent::Reconnecting { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(connection.state(), HubConnectionState::Reconnecting);
    let error = connection.invoke::<i64>("Add", (1, 1)).await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);

    let server = serve(addr).await;
    let new_id = match next_event(&mut events).await {
        HubConnectionEvent::Reconnected { connection_id } => connection_id.unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_ne!(new_id, first_id);
    assert_eq!(connection.connection_id().as_deref(), Some(new_id.as_str()));
    assert_eq!(connection.state(), HubConnectionState::Connected);
    let id: String = connection.invoke("GetConnectionId", ()).await.unwrap();
    assert_eq!(id, new_id);
    // Handlers survive the reconnect.
    connection.send("Broadcast", ("back",)).await.unwrap();
    assert_eq!(recv(&mut received).await, "back");

    connection.stop().await;
    match next_event(&mut events).await {
        HubConnectionEvent::Closed {
            reason: ClosedReason::Stopped,
            error: None,
        } => {}
        other => panic!("unexpected {other:?}"),
    }
    wait_until(|| server.hub.connection_count() == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn without_reconnect_a_server_shutdown_closes_the_client() {
    let server = serve("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(server.url()).build().unwrap();
    let mut events = connection.events();
    connection.start().await.unwrap();
    server.stop().await;
    match next_event(&mut events).await {
        // The server's shutdown sends Close (with allowReconnect), and
        // this client does not reconnect.
        HubConnectionEvent::Closed {
            reason: ClosedReason::ServerClosed,
            ..
        } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
}

#[tokio::test]
async fn off_removes_a_client_method() {
    let server = serve("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(server.url()).build().unwrap();
    let mut received = receiver(&connection);
    connection.start().await.unwrap();
    connection.send("Broadcast", ("before",)).await.unwrap();
    assert_eq!(recv(&mut received).await, "before");
    assert_eq!(connection.off("receive"), 1);
    connection.send("Broadcast", ("after",)).await.unwrap();
    // A round trip after the broadcast: it would have arrived by now.
    let _: String = connection.invoke("GetConnectionId", ()).await.unwrap();
    assert!(received.try_recv().is_err(), "a removed handler ran");
    connection.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn skip_negotiation_against_the_server() {
    let server = serve("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(server.url())
        .skip_negotiation(true)
        .build()
        .unwrap();
    connection.start().await.unwrap();
    let sum: i64 = connection.invoke("Add", (1, 2)).await.unwrap();
    assert_eq!(sum, 3);
    connection.stop().await;
    server.stop().await;
}
