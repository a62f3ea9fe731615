//! `HubConnection` with a `#[hub_client]` implementation registered as
//! handlers, against a `#[hub]` served by `HubServer`.

#![cfg(all(feature = "client", feature = "server"))]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hub_runtime::client::HubConnection;
use hub_runtime::server::HubServer;
use hub_runtime::{CallContext, HubError, hub, hub_client};
use tokio::sync::mpsc;

/// What the server calls on its clients.
#[hub_client]
pub trait IChat {
    /// Fire-and-forget.
    async fn receive(&self, from: String, message: String);
    /// A client result.
    async fn question(&self, text: String) -> String;
}

/// The hub.
pub struct ChatHub;

#[hub(client = IChat)]
impl ChatHub {
    async fn echo(&self, message: String) -> String {
        message
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn send_all(&self, ctx: &CallContext<Self>, message: String) {
        let from = ctx.connection_id().to_string();
        let _ = ctx.clients().all().receive(from, message).await;
    }

    async fn ask_client(&self, ctx: CallContext<Self>, text: String) -> Result<String, HubError> {
        ctx.clients().caller().question(text).await
    }
}

struct Client {
    received: mpsc::UnboundedSender<(String, String)>,
}

impl IChat for Client {
    async fn receive(&self, from: String, message: String) {
        let _ = self.received.send((from, message));
    }

    async fn question(&self, text: String) -> String {
        format!("{text}: yes")
    }
}

#[tokio::test]
async fn generated_handlers_answer_the_generated_hub() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = HubServer::new(ChatHub);
    let app = axum::Router::new().nest("/chat", hub.router());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (received_tx, mut received) = mpsc::unbounded_channel();
    let connection = HubConnection::builder(format!("http://{addr}/chat"))
        .handlers(
            Client {
                received: received_tx,
            }
            .into_handlers(),
        )
        .build()
        .unwrap();
    connection.start().await.unwrap();

    let echoed: String = connection.invoke("Echo", ("hi",)).await.unwrap();
    assert_eq!(echoed, "hi");
    let sum: i64 = connection.invoke("Add", (20, 22)).await.unwrap();
    assert_eq!(sum, 42);

    connection.send("SendAll", ("hello",)).await.unwrap();
    let (from, message) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(from), connection.connection_id());
    assert_eq!(message, "hello");

    let answer: String = connection.invoke("AskClient", ("ready?",)).await.unwrap();
    assert_eq!(answer, "ready?: yes");

    connection.stop().await;
    hub.shutdown().await;
    server.abort();
}
