//! The soak: a mixed load against one `conformance-server` and, at the same
//! time, against two `conformance-server` nodes joined by a private
//! `redis-server`, for `--minutes N`; the servers' memory, open fds and
//! threads are sampled every second from `/proc`, and a report (markdown +
//! PNG chart) says whether memory stayed flat, fds were given back, and
//! every counted message arrived.
//!
//! ```text
//! scripts/soak.sh [--minutes N]          # builds, runs, writes bench/soak/
//! target/release/soak --help
//! ```
//!
//! The load, on each setup (on two nodes, spread over both):
//! - **listeners**: clients connected for the whole run; each counts every
//!   `Broadcast` of the broadcaster (the run's one loss-free promise for
//!   fan-out, across Redis on two nodes);
//! - **churn**: clients that connect, `Echo`, and stop, in a loop;
//! - **groups**: clients that `JoinGroup`, `SendToGroup` to it, wait for
//!   their own message, `LeaveGroup`, in a loop;
//! - **streams**: `Counter` (server-to-client) and `Sum` (client-to-server);
//! - **client results**: `AskClient`, answered by the caller's `Question`;
//! - **stateful reconnect**: a client through a TCP proxy that cuts its
//!   connection every few seconds; it sends itself numbered messages with
//!   `SendToConnection`, all of which must arrive (replayed after the cut);
//! - **slow consumers**: raw WebSocket clients that shake hands and then
//!   never read; the server's documented policy is to close a connection
//!   whose outbound queue exceeds 1 MiB (README, hostile clients row), so
//!   every broadcast they miss is explained by that close, which is checked.
//!
//! The servers run with `--metrics`: each second the soak also scrapes
//! `GET /metrics` for `tokio_alive_tasks` (the server runtime's live tasks)
//! and `signalr_server_active_connections`, so that a task leak shows as
//! tasks that stay up once every client is gone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use hub_runtime::client::HubConnection;
use hub_tests::conformance::{ConformanceClient, ConformanceHubProxy};
use hub_tests::{RedisProcess, ServerProcess};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The soak's flags.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Mixed load on 1 conformance-server and on 2 nodes over Redis; samples RSS, fds, threads; writes a report."
)]
struct Options {
    /// How long the load runs (the memory verdict, the second minute against the last, needs at least 2).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Where the report (`soak.md`, `soak.png`, `samples.csv`) is written.
    #[arg(long, default_value = "bench/soak")]
    out: PathBuf,
    /// The `conformance-server` binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Stable listeners per setup, each counting every broadcast.
    #[arg(long, default_value_t = 8)]
    listeners: u32,
    /// Broadcasts per second per setup.
    #[arg(long, default_value_t = 40)]
    broadcast_rate: u32,
}

/// What one setup's load counted.
#[derive(Default)]
struct Counts {
    broadcasts_sent: AtomicU64,
    broadcasts_received: AtomicU64,
    broadcast_errors: AtomicU64,
    churn_connections: AtomicU64,
    churn_errors: AtomicU64,
    group_sent: AtomicU64,
    group_received: AtomicU64,
    group_errors: AtomicU64,
    counter_streams: AtomicU64,
    counter_items_expected: AtomicU64,
    counter_items_received: AtomicU64,
    sum_calls: AtomicU64,
    sum_correct: AtomicU64,
    ask_calls: AtomicU64,
    ask_correct: AtomicU64,
    stream_errors: AtomicU64,
    stateful_sent: AtomicU64,
    stateful_received: AtomicU64,
    stateful_errors: AtomicU64,
    cuts: AtomicU64,
    slow_consumers: AtomicU64,
    slow_consumers_closed: AtomicU64,
}

fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The client side of every soak connection: messages are counted by their
/// prefix (`b:` broadcast, `g:` group, `s:` stateful), questions echoed.
#[derive(Clone)]
struct SoakCallbacks {
    /// Counts broadcasts (listeners only).
    broadcasts: Option<Arc<Counts>>,
    /// Forwards `g:`/`s:` messages to the worker that waits for them.
    own: Option<mpsc::UnboundedSender<String>>,
}

impl ConformanceClient for SoakCallbacks {
    async fn receive(&self, message: String) {
        if message.starts_with("b:") {
            if let Some(counts) = &self.broadcasts {
                add(&counts.broadcasts_received, 1);
            }
        } else if let Some(own) = &self.own {
            let _ = own.send(message);
        }
    }

    async fn question(&self, question: String) -> String {
        question
    }
}

async fn connect(url: &str, callbacks: SoakCallbacks) -> Result<HubConnection, String> {
    let connection = HubConnection::builder(url)
        .handlers(callbacks.into_handlers())
        .build()
        .map_err(|e| e.to_string())?;
    connection.start().await.map_err(|e| e.to_string())?;
    Ok(connection)
}

fn quiet() -> SoakCallbacks {
    SoakCallbacks {
        broadcasts: None,
        own: None,
    }
}

/// A setup under load: its hub URLs (one per node) and what was counted.
struct Setup {
    name: &'static str,
    urls: Vec<String>,
    addrs: Vec<SocketAddr>,
    counts: Arc<Counts>,
}

/// One `/proc` sample of one server.
#[derive(Clone, Copy)]
struct Sample {
    seconds: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    /// `tokio_alive_tasks` from `/metrics` (0 when the scrape failed).
    tasks: u64,
    /// `signalr_server_active_connections`, summed over the transports.
    connections: u64,
}

fn proc_sample(pid: u32, seconds: f64) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64);
    Sample {
        seconds,
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
        tasks: 0,
        connections: 0,
    }
}

/// `GET /metrics` of a server: (live tokio tasks, active connections).
/// Plain HTTP/1.1 on a fresh socket (the scrape's own connection counts
/// among the tasks while it lasts).
async fn scrape(addr: SocketAddr) -> Option<(u64, u64)> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        let value = |line: &str| {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        let mut tasks = None;
        let mut connections = 0;
        for line in text.lines() {
            if line.starts_with("tokio_alive_tasks") {
                tasks = Some(value(line));
            } else if line.starts_with("signalr_server_active_connections") {
                connections += value(line);
            }
        }
        Some((tasks?, connections))
    };
    tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .ok()
        .flatten()
}

/// A `/proc` sample and a `/metrics` scrape of a server.
async fn full_sample(pid: u32, addr: SocketAddr, seconds: f64) -> Sample {
    let mut sample = proc_sample(pid, seconds);
    if let Some((tasks, connections)) = scrape(addr).await {
        sample.tasks = tasks;
        sample.connections = connections;
    }
    sample
}

/// A TCP proxy whose connections can all be cut at once (no Close: the
/// sockets just end), to exercise stateful reconnect.
struct CuttingProxy {
    addr: SocketAddr,
    generation: watch::Sender<u64>,
}

impl CuttingProxy {
    async fn start(target: SocketAddr) -> std::io::Result<CuttingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let generation = watch::Sender::new(0_u64);
        let cuts = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let mut cut = cuts.subscribe();
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                        _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(CuttingProxy { addr, generation })
    }

    fn cut(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}

/// Runs `work` in a loop until `stop`, pausing `pause` between rounds.
fn spawn_loop<F, Fut>(stop: &Arc<AtomicBool>, pause: Duration, mut work: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = stop.clone();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            work().await;
            tokio::time::sleep(pause).await;
        }
    });
}

/// A raw WebSocket client that shakes hands (JSON protocol, no negotiate)
/// and then stops reading; after `dwell` it drains its socket and reports
/// whether the server had closed it.
async fn slow_consumer(addr: SocketAddr, dwell: Duration) -> Option<bool> {
    let socket = TcpSocket::new_v4().ok()?;
    // A small receive buffer, so that the server's queue, not the kernel,
    // holds what this client does not read.
    let _ = socket.set_recv_buffer_size(4096);
    let mut stream = socket.connect(addr).await.ok()?;
    let request = format!(
        "GET /hubs/test HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    // A masked text frame with the all-zero key: the payload as it is.
    let mut frame = vec![0x81, 0x80 | handshake.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(handshake);
    stream.write_all(&frame).await.ok()?;
    // Joins the group the flooder fills (a non-blocking invocation: no id).
    let join = b"{\"type\":1,\"target\":\"JoinGroup\",\"arguments\":[\"slow\"]}\x1e";
    let mut frame = vec![0x81, 0x80 | join.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(join);
    stream.write_all(&frame).await.ok()?;
    let mut buffer = vec![0_u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
    // Now it stops reading.
    tokio::time::sleep(dwell).await;
    // Drain: a closed connection ends (EOF or reset) within seconds; an
    // open one keeps delivering broadcasts.
    let mut buffer = vec![0_u8; 64 * 1024];
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    Some(drained.is_ok())
}

const PAD: usize = 1024;

/// One plotted figure of a sample.
type SampleValue = fn(&Sample) -> f64;

/// A report row: (what arrived, what was expected) of a setup.
type CountPair = fn(&Counts) -> (u64, u64);

/// Starts the whole load on one setup; returns once every worker runs.
async fn start_load(
    setup: &Setup,
    options: &Options,
    stop: &Arc<AtomicBool>,
) -> Vec<HubConnection> {
    let counts = setup.counts.clone();
    let urls = setup.urls.clone();
    let url = |index: usize| urls[index % urls.len()].clone();
    let mut keep = Vec::new();

    // Listeners, spread over the nodes.
    for index in 0..options.listeners as usize {
        let callbacks = SoakCallbacks {
            broadcasts: Some(counts.clone()),
            own: None,
        };
        match connect(&url(index), callbacks).await {
            Ok(connection) => keep.push(connection),
            Err(e) => panic!("{}: a listener cannot connect: {e}", setup.name),
        }
    }
    let listeners = keep.len() as u64;

    // The broadcaster, on the first node; 1 KiB payloads (so that slow
    // consumers fill their queues within seconds).
    let broadcaster = connect(&url(0), quiet())
        .await
        .expect("the broadcaster connects");
    {
        let counts = counts.clone();
        let hub = broadcaster.hub::<ConformanceHubProxy>();
        let stop = stop.clone();
        let period = Duration::from_secs_f64(1.0 / f64::from(options.broadcast_rate.max(1)));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut sequence = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                sequence += 1;
                let message = format!("b:{sequence}:{}", "x".repeat(PAD));
                match hub.broadcast(message).await {
                    Ok(()) => add(&counts.broadcasts_sent, listeners),
                    Err(_) => add(&counts.broadcast_errors, 1),
                }
            }
        });
    }
    keep.push(broadcaster);

    // Connection churn: 2 loops.
    for worker in 0..2 {
        let counts = counts.clone();
        let url = url(worker + 1);
        spawn_loop(stop, Duration::from_millis(20), move || {
            let counts = counts.clone();
            let url = url.clone();
            async move {
                match connect(&url, quiet()).await {
                    Ok(connection) => {
                        let hub = connection.hub::<ConformanceHubProxy>();
                        if hub.echo("churn".into()).await.as_deref() != Ok("churn") {
                            add(&counts.churn_errors, 1);
                        }
                        connection.stop().await;
                        add(&counts.churn_connections, 1);
                    }
                    Err(_) => add(&counts.churn_errors, 1),
                }
            }
        });
    }

    // Groups: 3 members that join, send, wait for their own message, leave.
    for worker in 0..3 {
        let counts = counts.clone();
        let (own, mut mine) = mpsc::unbounded_channel();
        let callbacks = SoakCallbacks {
            broadcasts: None,
            own: Some(own),
        };
        let connection = connect(&url(worker), callbacks)
            .await
            .expect("a group member connects");
        let hub = connection.hub::<ConformanceHubProxy>();
        keep.push(connection);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut round = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let group = format!("g-{worker}-{}", round % 50);
                let message = format!("g:{worker}:{round}");
                let sent = async {
                    hub.join_group(group.clone()).await?;
                    hub.send_to_group(group.clone(), message.clone()).await?;
                    Ok::<_, hub_runtime::HubError>(())
                };
                if sent.await.is_err() {
                    add(&counts.group_errors, 1);
                    continue;
                }
                add(&counts.group_sent, 1);
                let arrived = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(got) = mine.recv().await {
                        if got == message {
                            return true;
                        }
                    }
                    false
                })
                .await;
                if arrived == Ok(true) {
                    add(&counts.group_received, 1);
                }
                if hub.leave_group(group).await.is_err() {
                    add(&counts.group_errors, 1);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    // Streams both ways and client results, on every node.
    for worker in 0..setup.urls.len() {
        let connection = connect(&url(worker), quiet())
            .await
            .expect("a streamer connects");
        let hub = connection.hub::<ConformanceHubProxy>();
        keep.push(connection);
        let counts = counts.clone();
        spawn_loop(stop, Duration::from_millis(50), move || {
            let counts = counts.clone();
            let hub = hub.clone();
            async move {
                add(&counts.counter_streams, 1);
                add(&counts.counter_items_expected, 200);
                match hub.counter(200, 0) {
                    Ok(mut items) => {
                        while let Some(item) = items.next().await {
                            match item {
                                Ok(_) => add(&counts.counter_items_received, 1),
                                Err(_) => add(&counts.stream_errors, 1),
                            }
                        }
                    }
                    Err(_) => add(&counts.stream_errors, 1),
                }
                add(&counts.sum_calls, 1);
                if hub.sum(futures_util::stream::iter(0..200_i64)).await == Ok(19_900) {
                    add(&counts.sum_correct, 1);
                }
                for question in 0..5 {
                    add(&counts.ask_calls, 1);
                    let question = format!("q{question}");
                    if hub.ask_client(question.clone()).await.as_ref() == Ok(&question) {
                        add(&counts.ask_correct, 1);
                    }
                }
            }
        });
    }

    // Stateful reconnect through a cutting proxy to the last node.
    let proxy = CuttingProxy::start(*setup.addrs.last().expect("a node"))
        .await
        .expect("the proxy binds");
    let (own, mut mine) = mpsc::unbounded_channel();
    let stateful = HubConnection::builder(format!("http://{}/hubs/test", proxy.addr))
        .stateful_reconnect(1_000_000)
        .handlers(
            SoakCallbacks {
                broadcasts: None,
                own: Some(own),
            }
            .into_handlers(),
        )
        .build()
        .expect("a valid URL");
    stateful
        .start()
        .await
        .expect("the stateful client connects");
    {
        let hub = stateful.hub::<ConformanceHubProxy>();
        let id = hub.get_connection_id().await.expect("its id");
        let counts = counts.clone();
        let stop_sending = stop.clone();
        tokio::spawn(async move {
            let mut sequence = 0_u64;
            while !stop_sending.load(Ordering::Relaxed) {
                sequence += 1;
                match hub
                    .send_to_connection(id.clone(), format!("s:{sequence}"))
                    .await
                {
                    Ok(()) => add(&counts.stateful_sent, 1),
                    Err(_) => add(&counts.stateful_errors, 1),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let counts = setup.counts.clone();
        tokio::spawn(async move {
            while let Some(message) = mine.recv().await {
                if message.starts_with("s:") {
                    add(&counts.stateful_received, 1);
                }
            }
        });
        let counts = setup.counts.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(7)).await;
                proxy.cut();
                add(&counts.cuts, 1);
            }
        });
    }
    keep.push(stateful);

    // Slow consumers: one new every 20 s per node, each silent for 30 s,
    // members of the group `slow`, which a flooder fills with 16 KiB
    // messages (800 KB/s) so that their queues overflow within seconds.
    let flooder = connect(&url(0), quiet())
        .await
        .expect("the flooder connects");
    {
        let hub = flooder.hub::<ConformanceHubProxy>();
        let counts = counts.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let message = format!("f:{}", "x".repeat(16 * 1024));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if hub
                    .send_to_group("slow".into(), message.clone())
                    .await
                    .is_err()
                {
                    add(&counts.broadcast_errors, 1);
                }
            }
        });
    }
    keep.push(flooder);
    // None starts in the run's last 40 s: each gets its whole 30 s under
    // the flood.
    let last_start =
        Instant::now() + Duration::from_secs_f64(options.minutes * 60.0) - Duration::from_secs(40);
    for (index, addr) in setup.addrs.iter().copied().enumerate() {
        let counts = counts.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5 + 10 * index as u64)).await;
            while Instant::now() < last_start {
                let counts = counts.clone();
                tokio::spawn(async move {
                    add(&counts.slow_consumers, 1);
                    if slow_consumer(addr, Duration::from_secs(30)).await == Some(true) {
                        add(&counts.slow_consumers_closed, 1);
                    }
                });
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
        });
    }
    keep
}

fn mean(samples: &[Sample], from: f64, to: f64, value: fn(&Sample) -> u64) -> f64 {
    let window: Vec<f64> = samples
        .iter()
        .filter(|sample| sample.seconds >= from && sample.seconds < to)
        .map(|sample| value(sample) as f64)
        .collect();
    if window.is_empty() {
        0.0
    } else {
        window.iter().sum::<f64>() / window.len() as f64
    }
}

fn chart(
    series: &BTreeMap<String, Vec<Sample>>,
    png: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let font = std::fs::read(FONT)
        .map_err(|e| format!("{FONT}: {e} (install the Debian package fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "the chart font could not be loaded")?;
    let root = BitMapBackend::new(png, (2000, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, 4));
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
    ];
    let end = series
        .values()
        .flatten()
        .map(|sample| sample.seconds)
        .fold(1.0, f64::max);
    let panels: [(&str, SampleValue); 4] = [
        ("RSS (MiB)", |sample| sample.rss_kib as f64 / 1024.0),
        ("open fds", |sample| sample.fds as f64),
        ("tokio tasks", |sample| sample.tasks as f64),
        ("threads", |sample| sample.threads as f64),
    ];
    for (area, (title, value)) in areas.iter().zip(panels) {
        let top = series.values().flatten().map(value).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .label_style(("sans-serif", 13))
            .draw()?;
        for ((name, samples), color) in series.iter().zip(colors) {
            chart
                .draw_series(LineSeries::new(
                    samples.iter().map(|sample| (sample.seconds, value(sample))),
                    color.stroke_width(2),
                ))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let options = <Options as clap::Parser>::parse();
    assert!(options.minutes > 0.0, "--minutes must be positive");
    let server = options.server.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("the running binary's path")
            .with_file_name("conformance-server")
    });
    let server = server.to_string_lossy().into_owned();
    let redis = RedisProcess::start();
    let redis_url = redis.url();
    let args = ["--stateful-reconnect", "--metrics"];
    let single = ServerProcess::start(&server, &args);
    let redis_args = ["--stateful-reconnect", "--metrics", "--redis", &redis_url];
    let node_a = ServerProcess::start(&server, &redis_args);
    let node_b = ServerProcess::start(&server, &redis_args);
    let processes = [
        ("single", &single),
        ("redis node A", &node_a),
        ("redis node B", &node_b),
    ];
    let addr = |process: &ServerProcess| -> SocketAddr {
        process
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .expect("an address")
    };
    let setups = [
        Setup {
            name: "one server",
            urls: vec![format!("{}/hubs/test", single.base_url())],
            addrs: vec![addr(&single)],
            counts: Arc::default(),
        },
        Setup {
            name: "two nodes over Redis",
            urls: vec![
                format!("{}/hubs/test", node_a.base_url()),
                format!("{}/hubs/test", node_b.base_url()),
            ],
            addrs: vec![addr(&node_a), addr(&node_b)],
            counts: Arc::default(),
        },
    ];

    let started = Instant::now();
    let mut series: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let sample_all = async |series: &mut BTreeMap<String, Vec<Sample>>, seconds: f64| {
        for (name, process) in processes {
            let sample = full_sample(process.pid(), addr(process), seconds).await;
            series.entry(name.to_owned()).or_default().push(sample);
        }
    };
    sample_all(&mut series, 0.0).await;
    let baseline: BTreeMap<String, Sample> = series
        .iter()
        .map(|(name, samples)| (name.clone(), samples[0]))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut keep = Vec::new();
    for setup in &setups {
        keep.extend(start_load(setup, &options, &stop).await);
    }
    let duration = options.minutes * 60.0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let seconds = started.elapsed().as_secs_f64();
        sample_all(&mut series, seconds).await;
        if seconds >= duration {
            break;
        }
        if (seconds as u64).is_multiple_of(30) {
            eprintln!("soak: {seconds:.0} s of {duration:.0} s");
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Let in-flight work and deliveries finish, then close every client.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for connection in &keep {
        connection.stop().await;
    }
    // The slow consumers drain (up to 15 s) and close; then idle.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut after: BTreeMap<String, Sample> = BTreeMap::new();
    for (name, process) in processes {
        let sample = full_sample(
            process.pid(),
            addr(process),
            started.elapsed().as_secs_f64(),
        )
        .await;
        after.insert(name.to_owned(), sample);
    }

    for (name, sample) in &after {
        if let Some(samples) = series.get_mut(name) {
            samples.push(*sample);
        }
    }

    // The report.
    let mut md = String::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let _ = writeln!(
        md,
        "# Soak: {} minutes (`{command}`, {build} build)\n",
        options.minutes
    );
    let _ = writeln!(
        md,
        "Taken {} on {} cores, load average at the end `{}`; the machine is shared with other builds, so rates are not benchmarks. \
         Load per setup: {} listeners, {} broadcasts/s of {} B, 2 churn loops, 3 group members joining/leaving, \
         Counter(200)+Sum(200 items)+5×AskClient loops (one per node), one stateful-reconnect client cut every 7 s, \
         a new slow consumer (never reads; member of a group flooded with 16 KiB messages at 50/s) every 20 s per node. Both setups ran at the same time.\n",
        chrono_like_now(),
        std::thread::available_parallelism().map_or(1, usize::from),
        load.trim(),
        options.listeners,
        options.broadcast_rate,
        PAD,
    );
    let _ = writeln!(
        md,
        "![RSS, fds, tokio tasks, threads over time](soak.png)\n\nThe chart's last point is taken 25 s after the load stopped and every client left.\n"
    );
    let _ = writeln!(md, "## Resources (from /proc, sampled every second)\n");
    let _ = writeln!(
        md,
        "| server | RSS idle | RSS 2nd minute | RSS last minute | last/2nd | flat (≤ 10 %) | fds idle → peak → after | fd leak | tokio tasks idle → peak → after | task leak | connections peak → after | threads idle → peak → after |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut all_flat = true;
    let mut no_leak = true;
    let mut no_task_leak = true;
    for (name, samples) in &series {
        let second = mean(samples, 60.0, 120.0, |s| s.rss_kib) / 1024.0;
        let last = mean(samples, duration - 60.0, duration + 1.0, |s| s.rss_kib) / 1024.0;
        let ratio = last / second;
        // Shorter runs (smoke runs) have no second minute to compare with.
        let flat = duration < 120.0 || (ratio - 1.0).abs() <= 0.10;
        all_flat &= flat;
        let idle = baseline[name];
        let end = after[name];
        let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let peak_threads = samples.iter().map(|s| s.threads).max().unwrap_or(0);
        // Redis nodes keep their Redis connections; a leak is fds that stay
        // above the idle count once every client is gone.
        let leak = end.fds > idle.fds + 2;
        no_leak &= !leak;
        let peak_tasks = samples.iter().map(|s| s.tasks).max().unwrap_or(0);
        let peak_connections = samples.iter().map(|s| s.connections).max().unwrap_or(0);
        // Likewise for tasks (the scrape's own connection is one of them);
        // a failed scrape (0) counts as a leak: nothing proven.
        let task_leak = end.tasks == 0 || end.tasks > idle.tasks + 2 || end.connections > 0;
        no_task_leak &= !task_leak;
        let (second, last, ratio) = if duration < 120.0 {
            ("n/a".to_owned(), "n/a".to_owned(), "n/a".to_owned())
        } else {
            (
                format!("{second:.1} MiB"),
                format!("{last:.1} MiB"),
                format!("{ratio:.3}"),
            )
        };
        let _ = writeln!(
            md,
            "| {name} | {:.1} MiB | {second} | {last} | {ratio} | {} | {} → {peak_fds} → {} | {} | {} → {peak_tasks} → {} | {} | {peak_connections} → {} | {} → {peak_threads} → {} |",
            idle.rss_kib as f64 / 1024.0,
            if flat { "yes" } else { "**no**" },
            idle.fds,
            end.fds,
            if leak { "**yes**" } else { "no" },
            idle.tasks,
            end.tasks,
            if task_leak { "**yes**" } else { "no" },
            end.connections,
            idle.threads,
            end.threads,
        );
    }
    let _ = writeln!(md, "\n## Messages\n");
    let _ = writeln!(
        md,
        "| counted | one server | two nodes over Redis |\n|---|---|---|"
    );
    let mut all_delivered = true;
    let rows: [(&str, CountPair); 8] = [
        (
            "broadcasts to listeners (received / sent × listeners)",
            |c| (get(&c.broadcasts_received), get(&c.broadcasts_sent)),
        ),
        ("group messages to own group (received / sent)", |c| {
            (get(&c.group_received), get(&c.group_sent))
        }),
        ("Counter stream items (received / expected)", |c| {
            (
                get(&c.counter_items_received),
                get(&c.counter_items_expected),
            )
        }),
        ("Sum results correct / calls", |c| {
            (get(&c.sum_correct), get(&c.sum_calls))
        }),
        ("AskClient answers correct / calls", |c| {
            (get(&c.ask_correct), get(&c.ask_calls))
        }),
        ("stateful messages across cuts (received / sent)", |c| {
            (get(&c.stateful_received), get(&c.stateful_sent))
        }),
        ("slow consumers closed by the server / opened", |c| {
            (get(&c.slow_consumers_closed), get(&c.slow_consumers))
        }),
        ("churned connections (connect, Echo, stop)", |c| {
            (get(&c.churn_connections), get(&c.churn_connections))
        }),
    ];
    for (label, row) in rows {
        let mut cells = Vec::new();
        for setup in &setups {
            let (got, expected) = row(&setup.counts);
            let complete = got == expected;
            all_delivered &= complete || label.starts_with("slow");
            cells.push(if complete {
                format!("{got} / {expected}")
            } else {
                format!("**{got} / {expected}**")
            });
        }
        let _ = writeln!(md, "| {label} | {} | {} |", cells[0], cells[1]);
    }
    let _ = writeln!(
        md,
        "| stateful-reconnect cuts | {} | {} |",
        get(&setups[0].counts.cuts),
        get(&setups[1].counts.cuts)
    );
    let errors = |c: &Counts| {
        get(&c.broadcast_errors)
            + get(&c.churn_errors)
            + get(&c.group_errors)
            + get(&c.stream_errors)
            + get(&c.stateful_errors)
    };
    let _ = writeln!(
        md,
        "| errors (failed sends, connects, streams) | {} | {} |",
        errors(&setups[0].counts),
        errors(&setups[1].counts)
    );
    let slow_open: u64 = setups
        .iter()
        .map(|s| get(&s.counts.slow_consumers) - get(&s.counts.slow_consumers_closed))
        .sum();
    let _ = writeln!(md, "\n## Verdict\n");
    let _ = writeln!(
        md,
        "- memory flat after warm-up (last minute within 10 % of the second): **{}**",
        if all_flat { "yes" } else { "no" }
    );
    let _ = writeln!(
        md,
        "- no fd leak (fds back to ≤ idle + 2 once every client is gone): **{}**",
        if no_leak { "yes" } else { "no" }
    );
    let _ = writeln!(
        md,
        "- no task leak (tokio tasks back to ≤ idle + 2 and 0 active connections once every client is gone): **{}**",
        if no_task_leak { "yes" } else { "no" }
    );
    let _ = writeln!(
        md,
        "- every counted message delivered: **{}**; the only messages not delivered are those of the slow consumers, \
         each closed by the server (policy: outbound queue above 1 MiB → Close, WebSocket 1008){}",
        if all_delivered { "yes" } else { "no" },
        if slow_open == 0 {
            String::new()
        } else {
            format!("; **{slow_open} slow consumer(s) were not seen closed**")
        }
    );
    std::fs::create_dir_all(&options.out).expect("the report directory");
    std::fs::write(options.out.join("soak.md"), &md).expect("soak.md");
    let mut csv = String::from("server,seconds,rss_kib,fds,threads,tasks,connections\n");
    for (name, samples) in &series {
        for s in samples {
            let _ = writeln!(
                csv,
                "{name},{:.1},{},{},{},{},{}",
                s.seconds, s.rss_kib, s.fds, s.threads, s.tasks, s.connections
            );
        }
    }
    std::fs::write(options.out.join("samples.csv"), csv).expect("samples.csv");
    if let Err(e) = chart(&series, &options.out.join("soak.png")) {
        eprintln!("soak: no chart: {e}");
    }
    let _ = std::io::stdout().write_all(md.as_bytes());
    drop(keep);
    for (_, process) in processes {
        let _ = process.pid();
    }
    drop((single, node_a, node_b, redis));
}

/// `YYYY-MM-DDTHH:MMZ` from the system clock (UTC), without a date crate.
fn chrono_like_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}
