//! The three servers under test, each a `hubbench serve KIND` process.
//!
//! - `hub`: our hub, `Echo(string) -> string` and `Broadcast(string)` to
//!   `all`, at `/hub` (JSON and MessagePack, the client picks);
//! - `raw`: the same axum + WebSocket stack without SignalR: a text frame
//!   starting with `e` is echoed, one starting with `b` is sent to every
//!   connection (the frame's bytes shared, never copied), with the same
//!   bounded outbound queue and slow-consumer policy as ours;
//! - `sio`: socketioxide with its default settings, events `echo` (with an
//!   ack) and `broadcast` (through `io.emit`).
//!
//! With `--tick-ms N` the hub and the raw server also run the clock of the
//! seed's sample (the `clock` workload): every N ms the hub's background
//! worker calls `show_time(now)` on every client through the typed
//! [`HubContext`], and the raw server pushes the same JSON frame
//! (`{"type":1,"target":"ShowTime","arguments":["<RFC 3339 time>"]}`) to
//! every socket through its registry.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hub_runtime::server::HubServer;
use hub_runtime::{CallContext, HubContext, HubError, Timestamp, hub, hub_client};
use tokio::sync::{Notify, mpsc};

/// Which server a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Our hub.
    Hub,
    /// The raw WebSocket baseline.
    Raw,
    /// socketioxide.
    SocketIo,
}

impl ServerKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Hub => "hub",
            ServerKind::Raw => "raw",
            ServerKind::SocketIo => "sio",
        }
    }

    /// Parses [`ServerKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [ServerKind::Hub, ServerKind::Raw, ServerKind::SocketIo]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// What the bench hub calls on its clients (used through the proxies the
/// macros generate, which the compiler does not count as a use).
#[allow(dead_code)]
#[hub_client]
pub trait BenchClient {
    /// A broadcast message.
    async fn receive(&self, message: String);
    /// The clock's tick (the seed's `IClock::show_time`).
    async fn show_time(&self, now: Timestamp);
}

/// The bench hub.
struct BenchHub;

#[hub(client = BenchClient)]
impl BenchHub {
    async fn echo(&self, message: String) -> String {
        message
    }

    async fn broadcast(&self, ctx: CallContext<Self>, message: String) -> Result<(), HubError> {
        ctx.clients().all().receive(message).await
    }
}

/// The seed's `Worker` (clock-demo's `worker`) with the tick as a
/// parameter: every `tick`, `show_time(now)` on every client through the
/// typed context.
async fn hub_clock(context: HubContext<BenchHub>, tick: Duration) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = context.clients().all().show_time(Timestamp::now()).await {
            eprintln!("hubbench serve: the clock tick failed: {error}");
        }
    }
}

/// The raw baseline's clock: every `tick`, the frame our hub sends for
/// `show_time(now)` with the JSON protocol, pushed to every socket.
async fn raw_clock(state: Arc<RawState>, tick: Duration) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = serde_json::to_string(&Timestamp::now()).unwrap_or_default();
        let frame = format!("{{\"type\":1,\"target\":\"ShowTime\",\"arguments\":[{now}]}}\u{1e}");
        raw_send_all(&state, &Utf8Bytes::from(frame));
    }
}

/// Queues `text` to every raw connection (the frame's bytes shared, never
/// copied); connections whose queue is full are closed as slow consumers.
fn raw_send_all(state: &RawState, text: &Utf8Bytes) {
    let mut slow = Vec::new();
    {
        let connections = state
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (other, (queue, _)) in connections.iter() {
            if queue.try_send(text.clone()).is_err() {
                slow.push(*other);
            }
        }
    }
    if !slow.is_empty() {
        // Slow consumers leave the registry and their writer closes the
        // socket, as the hub's policy does.
        let mut connections = state
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for other in slow {
            if let Some((_, close)) = connections.remove(&other) {
                close.notify_one();
            }
        }
    }
}

/// The same per-connection queue bound as the hub's default
/// `outbound_queue_capacity`, so both close slow consumers alike.
const RAW_QUEUE: usize = 1024;
/// The same WebSocket buffer sizes as the hub's transport.
const RAW_BUFFER: usize = 4 * 1024;

/// One raw connection in the registry: its queue, and the signal that
/// closes it as a slow consumer.
type RawEntry = (mpsc::Sender<Utf8Bytes>, Arc<Notify>);

#[derive(Default)]
struct RawState {
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, RawEntry>>,
}

async fn raw_upgrade(State(state): State<Arc<RawState>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(RAW_BUFFER)
        .write_buffer_size(RAW_BUFFER)
        .max_message_size(128 * 1024)
        .on_upgrade(move |socket| raw_connection(state, socket))
}

async fn raw_connection(state: Arc<RawState>, socket: WebSocket) {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(RAW_QUEUE);
    let slow = Arc::new(Notify::new());
    state
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, (tx.clone(), slow.clone()));
    let (mut sink, mut stream) = socket.split();
    // The writer: everything queued is fed, then one flush. A slow
    // consumer's queue is dropped and its socket closed, as the hub does.
    let writer = tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                biased;
                () = slow.notified() => break,
                first = rx.recv() => match first {
                    Some(first) => first,
                    None => break,
                },
            };
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(next) = rx.try_recv() {
                if sink.feed(Message::Text(next)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        let kind = text.as_str().as_bytes().first().copied();
        match kind {
            Some(b'e') => {
                // A full queue: this client does not read; end it.
                let queued = tx.try_send(text);
                if queued.is_err() {
                    break;
                }
            }
            Some(b'b') => raw_send_all(&state, &text),
            _ => {}
        }
    }
    state
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    drop(tx);
    writer.abort();
}

fn raw_router(tick: Option<Duration>) -> axum::Router {
    let state = Arc::new(RawState::default());
    if let Some(tick) = tick {
        tokio::spawn(raw_clock(state.clone(), tick));
    }
    axum::Router::new()
        .route("/ws", axum::routing::get(raw_upgrade))
        .with_state(state)
}

fn sio_router() -> axum::Router {
    use socketioxide::SocketIo;
    use socketioxide::extract::{AckSender, Data, SocketRef};

    let (layer, io) = SocketIo::new_layer();
    let broadcaster = io.clone();
    io.ns("/", async move |socket: SocketRef| {
        socket.on(
            "echo",
            async |Data(message): Data<String>, ack: AckSender| {
                let _ = ack.send(&message);
            },
        );
        let io = broadcaster.clone();
        socket.on("broadcast", async move |Data(message): Data<String>| {
            let _ = io.emit("broadcast", &message).await;
        });
    });
    axum::Router::new().layer(layer)
}

/// Raises this process's soft open-file limit to its hard limit (20,000 on
/// the bench machine), so one process can hold ~19,000 sockets.
pub fn raise_fd_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}

/// Runs a server of `kind` on `bind` until killed, with the clock ticking
/// every `tick` when given (hub and raw only). Prints `listening on ADDR`
/// once it accepts connections.
pub async fn serve(
    kind: ServerKind,
    bind: SocketAddr,
    tick: Option<Duration>,
) -> std::io::Result<()> {
    raise_fd_limit();
    let app = match kind {
        ServerKind::Hub => {
            let hub = HubServer::new(BenchHub);
            if let Some(tick) = tick {
                tokio::spawn(hub_clock(hub.context(), tick));
            }
            let app = axum::Router::new().nest("/hub", hub.router());
            // `HUBBENCH_METRICS=1`: what recording the hub's metrics costs
            // (a Prometheus recorder installed, never scraped).
            if std::env::var_os("HUBBENCH_METRICS").is_some() {
                let metrics = hub_runtime::server::metrics::prometheus_router()
                    .map_err(std::io::Error::other)?;
                app.merge(metrics)
            } else {
                app
            }
        }
        ServerKind::Raw => raw_router(tick),
        ServerKind::SocketIo => sio_router(),
    };
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let address = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {address}")?;
        stdout.flush()?;
    }
    axum::serve(listener, app).await
}
