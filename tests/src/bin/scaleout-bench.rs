//! What scale-out costs: one hub process vs 2 and 3 processes joined by one
//! Redis, and by a Redis Cluster (three shards, sharded pub/sub).
//!
//! ```text
//! cargo build --release -p hub-tests --bin conformance-server --bin scaleout-bench
//! target/release/scaleout-bench [--messages N] [--burst N] [--receivers R]
//! target/release/scaleout-bench --help
//! ```
//! (`scripts/scaleout-bench.sh` does both.)
//!
//! Starts a private `redis-server` and a private three-shard Redis Cluster
//! (as the tests do) and `conformance-server` processes on loopback. The
//! receivers (R in all) are spread evenly over the processes; the sender is
//! on the first. Two workloads, each measured on every setup:
//!
//! - **broadcast** (`Broadcast`): every receiver gets every message;
//! - **group** (`SendToGroup`): the receivers have joined one group, the
//!   sender has not.
//!
//! Reported per setup and workload: the latency from send to arrival at the
//! last receiver, one message at a time (p50, p99); the deliveries per
//! second of a burst of messages sent back to back; and the Redis publishes
//! per hub message (from Redis's `INFO commandstats`: `PUBLISH` on one
//! Redis, `SPUBLISH` summed over the cluster's primaries).

use std::io::Write as _;
use std::time::{Duration, Instant};

use hub_runtime::client::HubConnection;
use hub_tests::conformance::{ConformanceClient, ConformanceHubProxy};
use hub_tests::{RedisCluster, RedisProcess, ServerProcess};
use tokio::sync::mpsc;

struct Arrivals {
    start: Instant,
    arrived: mpsc::UnboundedSender<(u64, u64)>,
}

/// A receiver notes when each message (the sender's stamp, in microseconds
/// since the start) arrives.
impl ConformanceClient for Arrivals {
    async fn receive(&self, message: String) {
        let now = micros(self.start);
        let _ = self.arrived.send((message.parse().unwrap_or(0), now));
    }

    async fn question(&self, question: String) -> String {
        question
    }
}

fn micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Where the publishes are counted.
enum Backplane<'a> {
    None,
    Redis(&'a RedisProcess),
    Cluster(&'a RedisCluster),
}

impl Backplane<'_> {
    fn args(&self) -> Vec<String> {
        match self {
            Backplane::None => Vec::new(),
            Backplane::Redis(redis) => vec!["--redis".into(), redis.url()],
            Backplane::Cluster(cluster) => vec!["--redis-cluster".into(), cluster.seeds()],
        }
    }

    fn publishes(&self) -> u64 {
        fn calls(stats: &str, name: &str) -> u64 {
            stats
                .split(name)
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .and_then(|calls| calls.trim().parse().ok())
                .unwrap_or(0)
        }
        match self {
            Backplane::None => 0,
            Backplane::Redis(redis) => {
                let output = std::process::Command::new("redis-cli")
                    .args(["-p", &redis.port().to_string(), "INFO", "commandstats"])
                    .output()
                    .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
                    .unwrap_or_default();
                calls(&output, "cmdstat_publish:calls=")
            }
            Backplane::Cluster(cluster) => cluster
                .primaries()
                .into_iter()
                .map(|port| {
                    calls(
                        &cluster.cli(port, &["INFO", "commandstats"]),
                        "cmdstat_spublish:calls=",
                    )
                })
                .sum(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Broadcast,
    Group,
}

struct Report {
    setup: String,
    workload: &'static str,
    p50: u64,
    p99: u64,
    deliveries_per_second: f64,
    publishes: f64,
}

/// The next delivery; a lost one ends the run.
async fn wait(arrivals: &mut mpsc::UnboundedReceiver<(u64, u64)>) -> (u64, u64) {
    tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
        .await
        .expect("a delivery within 30 s")
        .expect("an arrival")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The benchmark's flags.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "What scale-out costs: 1 hub process vs 2 and 3 over one Redis and over a Redis Cluster."
)]
struct Options {
    /// Messages measured one at a time per setup and workload.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    messages: u32,
    /// Messages sent back to back for the throughput figure.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    burst: u32,
    /// Receiving clients, spread evenly over the processes.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    receivers: u32,
}

async fn client(url: &str, arrivals: Option<Arrivals>) -> HubConnection {
    let mut builder = HubConnection::builder(url);
    if let Some(arrivals) = arrivals {
        builder = builder.handlers(arrivals.into_handlers());
    }
    let connection = builder.build().expect("a valid URL");
    connection.start().await.expect("the hub accepts");
    connection
}

async fn send(sender: &ConformanceHubProxy, workload: Workload, stamp: u64) {
    let result = match workload {
        Workload::Broadcast => sender.broadcast(stamp.to_string()).await,
        Workload::Group => {
            sender
                .send_to_group("bench".into(), stamp.to_string())
                .await
        }
    };
    result.expect("the hub takes the send");
}

/// Runs one workload on `urls` (the sender on the first; the receivers
/// spread evenly).
async fn measure(
    setup: &str,
    urls: &[String],
    workload: Workload,
    backplane: &Backplane<'_>,
    options: &Options,
) -> Report {
    let start = Instant::now();
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let sender_connection = client(&urls[0], None).await;
    let sender = sender_connection.hub::<ConformanceHubProxy>();
    let count = options.receivers as usize;
    let mut receivers = Vec::new();
    for index in 0..count {
        let arrivals = Arrivals {
            start,
            arrived: arrived.clone(),
        };
        let receiver = client(&urls[index % urls.len()], Some(arrivals)).await;
        if workload == Workload::Group {
            receiver
                .hub::<ConformanceHubProxy>()
                .join_group("bench".into())
                .await
                .expect("JoinGroup");
        }
        receivers.push(receiver);
    }
    // Warm up: connections, allocations, subscriptions.
    for _ in 0..50 {
        send(&sender, workload, micros(start)).await;
        for _ in 0..count {
            wait(&mut arrivals).await;
        }
    }
    let publishes_before = backplane.publishes();
    let mut latencies = Vec::with_capacity(options.messages as usize);
    for _ in 0..options.messages {
        let stamp = micros(start);
        send(&sender, workload, stamp).await;
        let mut last = 0;
        for _ in 0..count {
            let (_, at) = wait(&mut arrivals).await;
            last = last.max(at);
        }
        latencies.push(last.saturating_sub(stamp));
    }
    let publishes = backplane.publishes().saturating_sub(publishes_before);
    // Throughput: a burst of calls in flight at once (pipelined on the
    // sender's connection), until every delivery is in.
    let burst = options.burst as usize;
    let burst_start = Instant::now();
    let sends = (0..burst).map(|_| send(&sender, workload, micros(start)));
    let delivered = async {
        for _ in 0..burst * count {
            wait(&mut arrivals).await;
        }
    };
    tokio::join!(futures_util::future::join_all(sends), delivered);
    let burst_seconds = burst_start.elapsed().as_secs_f64();
    sender_connection.stop().await;
    for receiver in receivers {
        receiver.stop().await;
    }
    latencies.sort_unstable();
    Report {
        setup: setup.to_owned(),
        workload: match workload {
            Workload::Broadcast => "broadcast",
            Workload::Group => "group",
        },
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        deliveries_per_second: (burst * count) as f64 / burst_seconds,
        publishes: publishes as f64 / f64::from(options.messages),
    }
}

/// `conformance-server`, built beside this binary.
fn conformance_server() -> String {
    let path = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("conformance-server")))
        .filter(|path| path.exists())
        .expect("build conformance-server first (scripts/scaleout-bench.sh does)");
    path.display().to_string()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = <Options as clap::Parser>::parse();
    let server = conformance_server();
    let redis = RedisProcess::start();
    let cluster = RedisCluster::start(3, 0);
    let setups: Vec<(String, usize, Backplane<'_>)> = vec![
        ("1 process".into(), 1, Backplane::None),
        ("2 processes + Redis".into(), 2, Backplane::Redis(&redis)),
        ("3 processes + Redis".into(), 3, Backplane::Redis(&redis)),
        (
            "2 processes + Redis Cluster (3 shards)".into(),
            2,
            Backplane::Cluster(&cluster),
        ),
        (
            "3 processes + Redis Cluster (3 shards)".into(),
            3,
            Backplane::Cluster(&cluster),
        ),
    ];
    let mut reports = Vec::new();
    for (setup, processes, backplane) in &setups {
        let args = backplane.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let servers: Vec<ServerProcess> = (0..*processes)
            .map(|_| ServerProcess::start(&server, &args))
            .collect();
        let urls: Vec<String> = servers
            .iter()
            .map(|server| format!("{}/hubs/test", server.base_url()))
            .collect();
        for workload in [Workload::Broadcast, Workload::Group] {
            reports.push(measure(setup, &urls, workload, backplane, &options).await);
        }
    }

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} messages one at a time (latency: send to arrival at the last of {} receivers, spread over the processes; the sender on the first), then a burst of {} back to back (deliveries per second)\n",
        options.messages, options.receivers, options.burst
    );
    let _ = writeln!(
        out,
        "| setup | workload | p50 µs | p99 µs | added p50 µs | deliveries/s | publishes per hub message |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for report in &reports {
        let single = reports
            .iter()
            .find(|single| single.setup == "1 process" && single.workload == report.workload)
            .map_or(0, |single| single.p50);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} |",
            report.setup,
            report.workload,
            report.p50,
            report.p99,
            i128::from(report.p50) - i128::from(single),
            report.deliveries_per_second,
            report.publishes
        );
    }
    std::process::ExitCode::SUCCESS
}
