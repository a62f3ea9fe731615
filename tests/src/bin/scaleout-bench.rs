//! What scale-out costs: one node vs two nodes + Redis.
//!
//! ```text
//! cargo run --release -p hub-tests --bin scaleout-bench -- [--messages N] [--receivers R]
//! cargo run --release -p hub-tests --bin scaleout-bench -- --help
//! ```
//!
//! Starts a private `redis-server` (as the tests do) and three in-process
//! hubs on loopback: one without a backplane, two sharing the Redis
//! backplane. A client sends `Broadcast(stamp)`, one message at a time;
//! the receiving clients note when it arrives. Reported per setup: the
//! latency from send to arrival (p50, p99, max) and the Redis `PUBLISH`es
//! per hub message (from Redis's own `INFO commandstats`).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_runtime::backplane::RedisBackplane;
use hub_runtime::client::HubConnection;
use hub_runtime::server::HubServer;
use hub_runtime::{CallContext, HubError, hub, hub_client};
use hub_tests::RedisProcess;
use tokio::sync::mpsc;

/// The receiving side.
#[hub_client]
pub trait Receiver {
    /// A broadcast: the sender's stamp, in microseconds since the start.
    async fn receive(&self, stamp: u64);
}

struct BenchHub;

#[hub(client = Receiver)]
impl BenchHub {
    async fn broadcast(&self, ctx: CallContext<Self>, stamp: u64) -> Result<(), HubError> {
        ctx.clients().all().receive(stamp).await
    }
}

struct Arrivals {
    start: Instant,
    arrived: mpsc::UnboundedSender<(u64, u64)>,
}

impl Receiver for Arrivals {
    async fn receive(&self, stamp: u64) {
        let now = micros(self.start);
        let _ = self.arrived.send((stamp, now));
    }
}

fn micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn serve(backplane: Option<RedisBackplane>) -> String {
    let mut builder = HubServer::builder(BenchHub);
    if let Some(backplane) = backplane {
        builder = builder.backplane(backplane);
    }
    let server = builder.build();
    let app = axum::Router::new().nest("/hub", server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}/hub", listener.local_addr().expect("bound"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn client(url: &str, arrivals: Option<Arrivals>) -> HubConnection {
    let mut builder = HubConnection::builder(url);
    if let Some(arrivals) = arrivals {
        builder = builder.with_handlers(arrivals.into_handlers());
    }
    let connection = builder.build().expect("a valid URL");
    connection.start().await.expect("the hub accepts");
    connection
}

/// `cmdstat_publish:calls=N` from Redis.
fn redis_publishes(port: u16) -> u64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("Redis is up");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    stream
        .write_all(b"INFO commandstats\r\n")
        .expect("Redis takes INFO");
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    // A bulk string: `$LEN\r\n…\r\n`; read until the whole length is in.
    loop {
        let read = stream.read(&mut buffer).unwrap_or(0);
        reply.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&reply);
        let complete = text.split_once("\r\n").is_some_and(|(header, body)| {
            header
                .trim_start_matches('$')
                .parse::<usize>()
                .is_ok_and(|len| body.len() >= len)
        });
        if read == 0 || complete {
            break;
        }
    }
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|line| line.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

struct Report {
    name: &'static str,
    latencies: Vec<u64>,
    publishes: f64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Sends `messages` broadcasts from `sender`, one at a time, and records
/// when the *last* of `receivers` receivers got each.
async fn measure(
    name: &'static str,
    sender_url: &str,
    receiver_url: &str,
    receivers: usize,
    messages: usize,
    redis_port: u16,
) -> Report {
    let start = Instant::now();
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let sender = client(sender_url, None).await;
    let mut listening = Vec::new();
    for _ in 0..receivers {
        let arrivals = Arrivals {
            start,
            arrived: arrived.clone(),
        };
        listening.push(client(receiver_url, Some(arrivals)).await);
    }
    // Warm up (connections, allocations, Redis pipelines).
    for _ in 0..50 {
        let _: () = sender
            .invoke("Broadcast", (micros(start),))
            .await
            .expect("Broadcast");
        for _ in 0..receivers {
            arrivals.recv().await.expect("an arrival");
        }
    }
    let publishes_before = redis_publishes(redis_port);
    let mut latencies = Vec::with_capacity(messages);
    for _ in 0..messages {
        let stamp = micros(start);
        sender.send("Broadcast", (stamp,)).await.expect("Broadcast");
        let mut last = 0;
        for _ in 0..receivers {
            let (got, at) = arrivals.recv().await.expect("an arrival");
            debug_assert_eq!(got, stamp);
            last = last.max(at);
        }
        latencies.push(last.saturating_sub(stamp));
    }
    let publishes = redis_publishes(redis_port).saturating_sub(publishes_before);
    sender.stop().await;
    for connection in listening {
        connection.stop().await;
    }
    latencies.sort_unstable();
    Report {
        name,
        latencies,
        publishes: publishes as f64 / messages as f64,
    }
}

/// The benchmark's flags.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "What scale-out costs: broadcast latency on one node vs two nodes sharing a private Redis."
)]
struct Args {
    /// Broadcasts to measure per setup (one at a time).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Receiving clients per setup.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    receivers: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    // Both were checked to be at least 1; a count beyond memory is the user's call.
    let messages = usize::try_from(args.messages).unwrap_or(usize::MAX);
    let receivers = usize::try_from(args.receivers).unwrap_or(usize::MAX);
    let redis = Arc::new(RedisProcess::start());
    let connect = |redis: &RedisProcess| RedisBackplane::connect(redis.url());
    let single = serve(None).await;
    let (Ok(first), Ok(second)) = (connect(&redis).await, connect(&redis).await) else {
        eprintln!("scaleout-bench: cannot connect to Redis");
        return std::process::ExitCode::FAILURE;
    };
    let node_a = serve(Some(first)).await;
    let node_b = serve(Some(second)).await;

    let reports = [
        measure(
            "1 node, no backplane",
            &single,
            &single,
            receivers,
            messages,
            redis.port(),
        )
        .await,
        measure(
            "2 nodes + Redis, receivers on the sender's node",
            &node_a,
            &node_a,
            receivers,
            messages,
            redis.port(),
        )
        .await,
        measure(
            "2 nodes + Redis, receivers on the other node",
            &node_a,
            &node_b,
            receivers,
            messages,
            redis.port(),
        )
        .await,
    ];

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{messages} broadcasts, one at a time, each to {receivers} receivers (latency: send to arrival at the last receiver)\n"
    );
    let _ = writeln!(
        out,
        "| setup | p50 µs | p99 µs | max µs | Redis PUBLISH per hub message |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for report in &reports {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} |",
            report.name,
            percentile(&report.latencies, 50.0),
            percentile(&report.latencies, 99.0),
            report.latencies.last().copied().unwrap_or(0),
            report.publishes
        );
    }
    std::process::ExitCode::SUCCESS
}
