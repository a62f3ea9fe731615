//! [`TcpRelay`]: a loopback TCP relay between a client and a server, with
//! the faults the tests inject: cut every connection, hold them (a
//! half-open peer that forwards nothing and closes nothing), switch the
//! upstream for new connections (a client that fails over to another
//! node), refuse requests it inspects (a proxy that blocks event streams),
//! and record what the server sent (to count messages on the wire).
//!
//! Hand-written rather than a proxy crate: every hook sits between one
//! `read` and the matching `write`, which a general-purpose proxy does not
//! expose, and the relay itself is a few dozen lines of tokio.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Looks at each chunk a client sends (the start of an HTTP request, say)
/// and returns the bytes to answer it with instead of forwarding it — the
/// relay then closes that connection — or `None` to forward it.
pub type RequestInspector = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// How a [`TcpRelay`] starts: see [`TcpRelay::builder`].
pub struct TcpRelayBuilder {
    upstream: SocketAddr,
    record: bool,
    inspector: Option<Arc<RequestInspector>>,
}

impl TcpRelayBuilder {
    /// Keeps every byte the server sends, on every connection, for
    /// [`TcpRelay::count_from_server`] and [`TcpRelay::from_server`].
    #[must_use]
    pub fn record_from_server(mut self) -> Self {
        self.record = true;
        self
    }

    /// Shows every chunk a client sends to `inspector` before forwarding
    /// it; see [`RequestInspector`].
    #[must_use]
    pub fn inspect_requests(
        mut self,
        inspector: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        self.inspector = Some(Arc::new(inspector));
        self
    }

    /// Listens on `127.0.0.1:0` and starts relaying.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(self) -> TcpRelay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(self.upstream),
            generation: watch::Sender::new(0),
            held: watch::Sender::new(false),
            resumed: AtomicU64::new(0),
            record: self.record,
            from_server: Mutex::new(Vec::new()),
            inspector: self.inspector,
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay_connection(client, accepting.clone()));
            }
        });
        TcpRelay { addr, shared, task }
    }
}

/// A TCP relay on `127.0.0.1:0` in front of an upstream server; stops
/// accepting when dropped (connections already relayed run on until
/// either side closes or [`TcpRelay::cut`]).
pub struct TcpRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// Where new connections go.
    upstream: Mutex<SocketAddr>,
    /// Bumped by a cut: connections of older generations end.
    generation: watch::Sender<u64>,
    /// While `true`, nothing is forwarded in either direction.
    held: watch::Sender<bool>,
    /// The newest generation one of whose connections carried bytes from
    /// the client after bytes from the server.
    resumed: AtomicU64,
    record: bool,
    from_server: Mutex<Vec<u8>>,
    inspector: Option<Arc<RequestInspector>>,
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpRelay {
    /// A relay to `upstream` without recording or inspection.
    pub async fn start(upstream: SocketAddr) -> TcpRelay {
        TcpRelay::builder(upstream).start().await
    }

    /// A relay to `upstream`, configured before it starts.
    pub fn builder(upstream: SocketAddr) -> TcpRelayBuilder {
        TcpRelayBuilder {
            upstream,
            record: false,
            inspector: None,
        }
    }

    /// A relay to the server at `base_url` (`http://HOST:PORT`, as
    /// [`ServerProcess::base_url`](crate::ServerProcess::base_url) gives it).
    ///
    /// # Panics
    /// When `base_url` is not `http://` and a socket address.
    pub fn builder_for(base_url: &str) -> TcpRelayBuilder {
        TcpRelay::builder(socket_addr_of(base_url))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/hubs/test`: the conformance hub through the
    /// relay.
    pub fn hub_url(&self) -> String {
        format!("http://{}/hubs/test", self.addr)
    }

    /// New connections go to `upstream` from now on; open ones stay where
    /// they are.
    ///
    /// # Panics
    /// When a relay task panicked while holding the lock.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().expect("not poisoned") = upstream;
    }

    /// Drops every open connection, both sockets, at once: each peer sees
    /// its socket close.
    pub fn cut(&self) {
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
    }

    /// Stops forwarding, in both directions, on every open connection and
    /// on those accepted from now on, without closing any: a half-open
    /// peer, or a network that silently drops everything. Bytes read
    /// meanwhile are forwarded after [`TcpRelay::release`].
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Forwards again after [`TcpRelay::hold`].
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// Waits until a connection opened since the last [`TcpRelay::cut`]
    /// has carried bytes from the client after bytes from the server (for
    /// a WebSocket: the client sent something after the upgrade response);
    /// `false` after `limit`.
    pub async fn wait_for_resumed_traffic(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let current = *self.shared.generation.borrow();
        while self.shared.resumed.load(Ordering::Relaxed) < current {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    /// Everything the server sent so far, over every connection (empty
    /// unless started with
    /// [`record_from_server`](TcpRelayBuilder::record_from_server)).
    ///
    /// # Panics
    /// When a relay task panicked while holding the lock.
    pub fn from_server(&self) -> Vec<u8> {
        self.shared
            .from_server
            .lock()
            .expect("not poisoned")
            .clone()
    }

    /// How often `pattern` occurs in what the server sent so far.
    ///
    /// # Panics
    /// When a relay task panicked while holding the lock.
    pub fn count_from_server(&self, pattern: &[u8]) -> usize {
        self.shared
            .from_server
            .lock()
            .expect("not poisoned")
            .windows(pattern.len())
            .filter(|window| *window == pattern)
            .count()
    }
}

/// The socket address of `http://HOST:PORT[/…]`.
///
/// # Panics
/// When `base_url` is not of that form.
pub fn socket_addr_of(base_url: &str) -> SocketAddr {
    base_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|host| host.parse().ok())
        .unwrap_or_else(|| panic!("{base_url} is not http://IP:PORT"))
}

/// Waits while the relay is held.
async fn released(held: &mut watch::Receiver<bool>) {
    let _ = held.wait_for(|held| !*held).await;
}

async fn relay_connection(client: TcpStream, shared: Arc<Shared>) {
    let upstream = *shared.upstream.lock().expect("not poisoned");
    // An upstream that is gone (a killed node) refuses: the client's
    // connection closes at once, as it would without the relay.
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut cut = shared.generation.subscribe();
    let born = *cut.borrow_and_update();
    let (client_read, mut client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    let answered = AtomicBool::new(false);
    let refusal = {
        let up = forward_up(client_read, &mut server_write, &shared, &answered, born);
        let down = forward_down(server_read, &mut client_write, &shared, &answered);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        // Each direction half-closes the other side when its reader ends;
        // the connection is over when both have, on a refusal, or on a cut.
        loop {
            tokio::select! {
                refusal = &mut up, if !up_done => {
                    up_done = true;
                    if refusal.is_some() {
                        break refusal;
                    }
                }
                () = &mut down, if !down_done => down_done = true,
                _ = cut.wait_for(|current| *current != born) => break None,
            }
            if up_done && down_done {
                break None;
            }
        }
    };
    if let Some(answer) = refusal {
        let _ = client_write.write_all(&answer).await;
        let _ = client_write.shutdown().await;
    }
}

/// Client to server; returns the inspector's answer when it refused a
/// request.
async fn forward_up(
    mut client_read: OwnedReadHalf,
    server_write: &mut OwnedWriteHalf,
    shared: &Shared,
    answered: &AtomicBool,
    born: u64,
) -> Option<Vec<u8>> {
    let mut held = shared.held.subscribe();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        released(&mut held).await;
        let read = client_read.read(&mut buffer).await.unwrap_or(0);
        // A read that was waiting when the hold began returns after it:
        // its bytes, and an end of stream too, pass only once released.
        released(&mut held).await;
        if read == 0 {
            let _ = server_write.shutdown().await;
            return None;
        }
        if let Some(inspector) = &shared.inspector {
            if let Some(answer) = inspector(&buffer[..read]) {
                return Some(answer);
            }
        }
        if server_write.write_all(&buffer[..read]).await.is_err() {
            return None;
        }
        if answered.load(Ordering::Relaxed) {
            shared.resumed.fetch_max(born, Ordering::Relaxed);
        }
    }
}

/// Server to client, recording when asked to.
async fn forward_down(
    mut server_read: OwnedReadHalf,
    client_write: &mut OwnedWriteHalf,
    shared: &Shared,
    answered: &AtomicBool,
) {
    let mut held = shared.held.subscribe();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        released(&mut held).await;
        let read = server_read.read(&mut buffer).await.unwrap_or(0);
        released(&mut held).await;
        if read == 0 {
            let _ = client_write.shutdown().await;
            return;
        }
        if shared.record {
            shared
                .from_server
                .lock()
                .expect("not poisoned")
                .extend_from_slice(&buffer[..read]);
        }
        if client_write.write_all(&buffer[..read]).await.is_err() {
            return;
        }
        answered.store(true, Ordering::Relaxed);
    }
}
