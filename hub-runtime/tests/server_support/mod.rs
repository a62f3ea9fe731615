//! Shared by the `server_*` tests: a hand-written test hub, a raw HTTP
//! client and a JSON WebSocket client, all on 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hub_runtime::hub::{HubCall, InvocationError, MethodDescriptor, MethodOutput};
use hub_runtime::protocol::Payload;
use hub_runtime::server::{HubOptions, HubServer, Unauthorized, bearer_token};
use hub_runtime::targets::{BroadcastTarget, ClientContract, SingleTarget};
use hub_runtime::{BoxFuture, CallContext, Hub, HubError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The client contract: untyped targets.
pub struct TestClient;

impl ClientContract for TestClient {
    type Broadcast = BroadcastTarget;
    type Single = SingleTarget;
}

/// The conformance hub's methods, hand-written.
#[derive(Default)]
pub struct TestHub {
    pub disconnected: std::sync::Mutex<Vec<String>>,
    pub fail_connect: bool,
}

fn value<T: serde::Serialize + Send + Sync + 'static>(
    v: T,
) -> Result<MethodOutput, InvocationError> {
    Ok(MethodOutput::Value(Payload::from_value(v)))
}

impl Hub for TestHub {
    type Client = TestClient;
    const METHODS: &'static [MethodDescriptor] = &[
        MethodDescriptor::unary("Echo", 1),
        MethodDescriptor::unary("Add", 2),
        MethodDescriptor::unary("GetConnectionId", 0),
        MethodDescriptor::unary("Broadcast", 1),
        MethodDescriptor::unary("SendToOthers", 1),
        MethodDescriptor::unary("SendToConnection", 2),
        MethodDescriptor::unary("JoinGroup", 1),
        MethodDescriptor::unary("LeaveGroup", 1),
        MethodDescriptor::unary("SendToGroup", 2),
        MethodDescriptor::unary("SendToUser", 2),
        MethodDescriptor::unary("Whoami", 0),
        MethodDescriptor::unary("Fail", 1),
        MethodDescriptor::unary("AskClient", 1),
        MethodDescriptor::unary("Sleep", 1),
        MethodDescriptor::unary("Void", 0),
        MethodDescriptor::unary("Panic", 0),
    ];

    fn invoke(
        self: Arc<Self>,
        method: usize,
        call: HubCall<Self>,
    ) -> BoxFuture<'static, Result<MethodOutput, InvocationError>> {
        Box::pin(async move {
            let ctx = call.context().clone();
            let args = call.arguments();
            let clients = ctx.clients();
            let receive = |m: String| vec![Payload::from_value(m)];
            match method {
                0 => value(args.bind::<String>(0)?),
                1 => value(args.bind::<i64>(0)? + args.bind::<i64>(1)?),
                2 => value(ctx.connection_id().to_string()),
                3 => {
                    clients
                        .all()
                        .send("Receive", receive(args.bind(0)?))
                        .await?;
                    value(())
                }
                4 => {
                    clients
                        .others()
                        .send("Receive", receive(args.bind(0)?))
                        .await?;
                    value(())
                }
                5 => {
                    let id: String = args.bind(0)?;
                    clients
                        .client(id)
                        .send("Receive", receive(args.bind(1)?))
                        .await?;
                    value(())
                }
                6 => {
                    ctx.groups()
                        .add(ctx.connection_id(), args.bind::<String>(0)?)
                        .await?;
                    value(())
                }
                7 => {
                    ctx.groups()
                        .remove(ctx.connection_id(), args.bind::<String>(0)?)
                        .await?;
                    value(())
                }
                8 => {
                    let group: String = args.bind(0)?;
                    clients
                        .group(group)
                        .send("Receive", receive(args.bind(1)?))
                        .await?;
                    value(())
                }
                9 => {
                    let user: String = args.bind(0)?;
                    clients
                        .user(user)
                        .send("Receive", receive(args.bind(1)?))
                        .await?;
                    value(())
                }
                10 => value(ctx.user_id().map(str::to_owned)),
                11 => Err(HubError::new(args.bind::<String>(0)?).into()),
                12 => {
                    let q: String = args.bind(0)?;
                    let answer: String = clients
                        .caller()
                        .invoke("Question", vec![Payload::from_value(q)])
                        .await?;
                    value(answer)
                }
                13 => {
                    let ms: u64 = args.bind(0)?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    value(ms)
                }
                14 => value(()),
                15 => panic!("boom"),
                _ => Err(InvocationError::UnknownMethod),
            }
        })
    }

    fn on_connected(
        self: Arc<Self>,
        _context: CallContext<Self>,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        Box::pin(async move {
            if self.fail_connect {
                Err(HubError::new("go away"))
            } else {
                Ok(())
            }
        })
    }

    fn on_disconnected(
        self: Arc<Self>,
        context: CallContext<Self>,
        _error: Option<HubError>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.disconnected
                .lock()
                .unwrap()
                .push(context.connection_id().to_string());
        })
    }
}

/// The token `user-NAME` names NAME; other tokens are refused.
pub fn users(request: &http::request::Parts) -> Result<Option<String>, Unauthorized> {
    match bearer_token(request) {
        None => Ok(None),
        Some(token) => token
            .strip_prefix("user-")
            .map(|n| Some(n.to_owned()))
            .ok_or(Unauthorized),
    }
}

/// A server on 127.0.0.1 with the hub at `/hubs/test`.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: HubServer<TestHub>,
}

pub async fn start(options: HubOptions) -> TestServer {
    start_with(TestHub::default(), options).await
}

pub async fn start_with(hub: TestHub, options: HubOptions) -> TestServer {
    let hub = HubServer::builder(hub)
        .options(options)
        .user_id_provider(users)
        .build();
    let app = axum::Router::new().nest("/hubs/test", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestServer { addr, hub }
}

/// A raw HTTP/1.1 exchange: (status, headers, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

pub async fn negotiate(addr: SocketAddr, query: &str) -> Value {
    let (status, _, body) = http(addr, "POST", &format!("/hubs/test/negotiate{query}"), &[]).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A JSON-protocol client over a raw WebSocket.
pub struct Client {
    pub ws: Ws,
    pending: Vec<Value>,
    pub others: Vec<Value>,
    pub frames: Vec<Message>,
}

pub async fn open(
    addr: SocketAddr,
    query: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("ws://{addr}/hubs/test{query}");
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
}

impl Client {
    /// A client around nothing yet (fill `ws`).
    pub fn empty_with(ws: Ws) -> Client {
        Client {
            ws,
            pending: Vec::new(),
            others: Vec::new(),
            frames: Vec::new(),
        }
    }

    /// Connects (skipNegotiation) and completes the JSON handshake.
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::connect_query(addr, "").await
    }

    pub async fn connect_query(addr: SocketAddr, query: &str) -> Client {
        let ws = open(addr, query).await.unwrap();
        let mut client = Client {
            ws,
            pending: Vec::new(),
            others: Vec::new(),
            frames: Vec::new(),
        };
        client
            .send_raw("{\"protocol\":\"json\",\"version\":1}\u{1e}")
            .await;
        let handshake = client.next_record().await.expect("handshake response");
        assert_eq!(handshake, json!({}));
        client
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send(&mut self, message: Value) {
        self.send_raw(&format!("{message}\u{1e}")).await;
    }

    /// The next record, `None` when the socket closed; panics after 5 s.
    pub async fn next_record(&mut self) -> Option<Value> {
        self.next_record_within(Duration::from_secs(5))
            .await
            .expect("timed out waiting for a record")
    }

    /// The next record (skipping nothing), `Err` on timeout.
    pub async fn next_record_within(&mut self, limit: Duration) -> Result<Option<Value>, ()> {
        loop {
            if !self.pending.is_empty() {
                return Ok(Some(self.pending.remove(0)));
            }
            let frame = match tokio::time::timeout(limit, self.ws.next()).await {
                Err(_) => return Err(()),
                Ok(frame) => frame,
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    self.frames.push(Message::Text(text.clone()));
                    assert!(
                        text.ends_with('\u{1e}'),
                        "frame does not end at a record boundary"
                    );
                    for record in text.split('\u{1e}').filter(|r| !r.is_empty()) {
                        self.pending.push(serde_json::from_str(record).unwrap());
                    }
                }
                Some(Ok(Message::Binary(_))) => panic!("binary frame on the JSON protocol"),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(None),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next record that is not a Ping (first those an `invoke` put
    /// aside).
    pub async fn next_message(&mut self) -> Option<Value> {
        if !self.others.is_empty() {
            return Some(self.others.remove(0));
        }
        self.next_fresh_message().await
    }

    async fn next_fresh_message(&mut self) -> Option<Value> {
        loop {
            let record = self.next_record().await?;
            if record["type"] != 6 {
                return Some(record);
            }
        }
    }

    /// Invokes and returns the Completion.
    pub async fn invoke(&mut self, id: &str, target: &str, args: Value) -> Value {
        self.send(json!({"type": 1, "invocationId": id, "target": target, "arguments": args}))
            .await;
        loop {
            let message = self.next_fresh_message().await.expect("connection closed");
            if message["type"] == 3 && message["invocationId"] == id {
                return message;
            }
            self.pending_other(message);
        }
    }

    fn pending_other(&mut self, message: Value) {
        // Keep non-matching messages for later readers.
        self.others.push(message);
    }

    /// Waits until no message other than Pings arrives for `quiet`.
    pub async fn expect_nothing(&mut self, quiet: Duration) {
        loop {
            match self.next_record_within(quiet).await {
                Err(()) => return,
                Ok(Some(record)) if record["type"] == 6 => continue,
                Ok(other) => panic!("unexpected: {other:?}"),
            }
        }
    }
}
