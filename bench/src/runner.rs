//! The workloads: every (server, workload) pair runs against a fresh
//! server process; the jobs of all repetitions run in a random order.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::procstat;
use crate::servers::ServerKind;
use crate::wsclient::{Conn, Encoder, Proto, now_ns};

/// One server as the clients see it.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// The name in results.
    pub name: &'static str,
    kind: ServerKind,
    proto: Proto,
}

/// Every server of a run: ours (both protocols), the raw baseline,
/// socketioxide.
pub const VARIANTS: [Variant; 4] = [
    Variant {
        name: "ours-json",
        kind: ServerKind::Hub,
        proto: Proto::Json,
    },
    Variant {
        name: "ours-msgpack",
        kind: ServerKind::Hub,
        proto: Proto::MsgPack,
    },
    Variant {
        name: "raw",
        kind: ServerKind::Raw,
        proto: Proto::Raw,
    },
    Variant {
        name: "socketioxide",
        kind: ServerKind::SocketIo,
        proto: Proto::Sio,
    },
];

/// A workload with its parameters.
#[derive(Debug, Clone)]
pub enum Job {
    /// Closed-loop echo calls.
    Echo {
        /// Connections.
        connections: usize,
        /// Calls in flight per connection.
        in_flight: usize,
        /// Payload bytes.
        size: usize,
    },
    /// One sender, many receivers: max rate, then (if `stepped`) rising
    /// fixed rates.
    Broadcast {
        /// Receivers.
        receivers: usize,
        /// Payload bytes.
        size: usize,
        /// Whether to search the highest rate with p99 < 100 ms.
        stepped: bool,
    },
    /// Broadcasts sent one at a time: time until the last receiver has it.
    Single {
        /// Receivers.
        receivers: usize,
        /// How many broadcasts.
        count: usize,
    },
    /// Idle connections: connect rate and server RSS per connection.
    Idle {
        /// Connection counts at which RSS is read.
        checkpoints: Vec<usize>,
    },
    /// Broadcast at max rate with some receivers not reading.
    SlowConsumer {
        /// Receivers, stalled ones included.
        receivers: usize,
        /// Receivers that stop reading.
        stalled: usize,
        /// Payload bytes.
        size: usize,
    },
}

/// Durations of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Before each measurement window.
    pub warmup: Duration,
    /// One measurement window.
    pub window: Duration,
    /// One step of the stepped-rate search.
    pub step: Duration,
    /// How long RSS settles before it is read.
    pub settle: Duration,
    /// The stepped rates, as fractions of the max rate.
    pub steps: &'static [f64],
    /// How long stalled receivers read their backlog at the end.
    pub fate_wait: Duration,
    /// How long the slow-consumer run may wait for the stalled
    /// receivers' backlog to build up.
    pub fill_limit: Duration,
}

/// The plan: jobs, repetitions, timing.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Workloads, each run against every variant.
    pub jobs: Vec<Job>,
    /// Repetitions of every (job, variant).
    pub repetitions: usize,
    /// Durations.
    pub timing: Timing,
    /// Variants to run (by name); all when empty.
    pub only: Vec<String>,
    /// Runs only jobs whose `workload params` text contains this.
    pub filter: Option<String>,
}

impl Plan {
    /// The full plan (all workloads of the issue, under 15 minutes).
    pub fn full() -> Plan {
        let mut jobs = Vec::new();
        for connections in [1, 100, 1000] {
            for in_flight in [1, 8] {
                for size in [32, 1024] {
                    jobs.push(Job::Echo {
                        connections,
                        in_flight,
                        size,
                    });
                }
            }
        }
        for receivers in [100, 1000, 10_000] {
            for size in [32, 1024] {
                jobs.push(Job::Broadcast {
                    receivers,
                    size,
                    stepped: size == 32,
                });
            }
        }
        jobs.push(Job::Single {
            receivers: 10_000,
            count: 30,
        });
        jobs.push(Job::Idle {
            checkpoints: vec![1000, 10_000, 19_000],
        });
        jobs.push(Job::SlowConsumer {
            receivers: 1000,
            stalled: 10,
            size: 1024,
        });
        Plan {
            jobs,
            repetitions: 2,
            timing: Timing {
                warmup: Duration::from_millis(400),
                window: Duration::from_millis(1500),
                step: Duration::from_millis(800),
                settle: Duration::from_millis(1000),
                steps: &[0.25, 0.5, 0.7, 0.85, 1.0, 1.2],
                fate_wait: Duration::from_secs(3),
                fill_limit: Duration::from_secs(12),
            },
            only: Vec::new(),
            filter: None,
        }
    }

    /// The quick plan: one small case of every workload, once.
    pub fn quick() -> Plan {
        Plan {
            jobs: vec![
                Job::Echo {
                    connections: 20,
                    in_flight: 8,
                    size: 32,
                },
                Job::Broadcast {
                    receivers: 50,
                    size: 32,
                    stepped: true,
                },
                Job::Single {
                    receivers: 200,
                    count: 2,
                },
                Job::Idle {
                    checkpoints: vec![300],
                },
                Job::SlowConsumer {
                    receivers: 50,
                    stalled: 1,
                    size: 1024,
                },
            ],
            repetitions: 1,
            timing: Timing {
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(300),
                step: Duration::from_millis(200),
                settle: Duration::from_millis(200),
                steps: &[0.3, 0.6],
                fate_wait: Duration::from_millis(1000),
                fill_limit: Duration::from_secs(1),
            },
            only: Vec::new(),
            filter: None,
        }
    }
}

/// A server process started for one job.
struct ServerProcess {
    child: tokio::process::Child,
    pid: String,
    address: SocketAddr,
    /// `perf record` attached to the server when `HUBBENCH_PERF` names an
    /// output file prefix (profiling runs only).
    perf: Option<tokio::process::Child>,
}

impl ServerProcess {
    async fn start(kind: ServerKind) -> io::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let mut command = tokio::process::Command::new(exe);
        let mut child = command
            .args(["serve", kind.name(), "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .map(|pid| pid.to_string())
            .ok_or_else(|| io::Error::other("server exited at once"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .map_err(|_| io::Error::other("server did not start in 20 s"))??
            .ok_or_else(|| io::Error::other("server exited before listening"))?;
        let address = line
            .strip_prefix("listening on ")
            .and_then(|address| address.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected server output: {line}")))?;
        let perf = match std::env::var("HUBBENCH_PERF") {
            Ok(prefix) if !prefix.is_empty() => {
                let perf = tokio::process::Command::new("perf")
                    .args([
                        "record",
                        "-q",
                        "--call-graph",
                        "dwarf,16384",
                        "-F",
                        "499",
                        "-p",
                        &pid,
                    ])
                    .arg("-o")
                    .arg(format!("{prefix}-{}-{pid}.data", kind.name()))
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .ok();
                // perf needs a moment to attach.
                tokio::time::sleep(Duration::from_millis(500)).await;
                perf
            }
            _ => None,
        };
        Ok(ServerProcess {
            child,
            pid,
            address,
            perf,
        })
    }

    fn cpu(&self) -> f64 {
        procstat::cpu_seconds(&self.pid)
    }

    fn rss_kib(&self) -> u64 {
        procstat::rss_kib(&self.pid)
    }

    async fn stop(mut self) {
        if let Some(mut perf) = self.perf.take() {
            // SIGINT makes perf write its file and exit.
            if let Some(perf_pid) = perf.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-INT", &perf_pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), perf.wait()).await;
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// What the clients of one run count.
struct Stats {
    deliveries: AtomicU64,
    recording: AtomicBool,
    histogram: Mutex<Histogram<u64>>,
    max_latency_ns: AtomicU64,
    closed: AtomicU64,
    /// Broadcasts sent by the flow-controlled sender.
    sent: AtomicU64,
    progress: Notify,
}

impl Stats {
    fn new() -> Arc<Stats> {
        Arc::new(Stats {
            deliveries: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            // 1 µs to 100 s, 3 significant digits.
            // The bounds are constant and valid (low >= 1, high >= 2 * low,
            // sigfig <= 5): creation cannot fail.
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds"),
            ),
            max_latency_ns: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            progress: Notify::new(),
        })
    }

    /// Counts the deliveries of one read (send timestamps `sent`).
    fn deliver(&self, sent: &[u64]) {
        if sent.is_empty() {
            return;
        }
        let now = now_ns();
        self.deliveries
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        let mut max = 0;
        for &ts in sent {
            max = max.max(now.saturating_sub(ts));
        }
        self.max_latency_ns.fetch_max(max, Ordering::Relaxed);
        if self.recording.load(Ordering::Relaxed) {
            let mut histogram = self
                .histogram
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &ts in sent {
                histogram.saturating_record(now.saturating_sub(ts) / 1000);
            }
        }
        self.progress.notify_one();
    }

    fn reset_latency(&self) {
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
        self.max_latency_ns.store(0, Ordering::Relaxed);
    }

    fn latency(&self) -> Value {
        let histogram = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if histogram.is_empty() {
            return json!(null);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        json!({
            "p50_ms": ms(histogram.value_at_quantile(0.5)),
            "p90_ms": ms(histogram.value_at_quantile(0.9)),
            "p99_ms": ms(histogram.value_at_quantile(0.99)),
            "max_ms": ms(histogram.max()),
            "samples": histogram.len(),
        })
    }
}

/// The source address of the `index`-th connection: 32 loopback
/// addresses, each with its own ephemeral port range.
fn source(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (index % 32) as u8))
}

/// Connects `count` clients (at most 256 handshakes at once, each bounded
/// by 20 s). Returns the connections and the number that failed.
async fn connect_many(
    proto: Proto,
    server: SocketAddr,
    count: usize,
    first_index: usize,
    receive_buffer: Option<u32>,
) -> (Vec<Conn>, usize) {
    let results: Vec<io::Result<Conn>> = futures_util::stream::iter(0..count)
        .map(|index| async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                Conn::connect(proto, server, source(first_index + index), receive_buffer),
            )
            .await
            .unwrap_or_else(|_| Err(io::Error::other("connect timed out")))
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let mut connections = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(conn) => connections.push(conn),
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        eprintln!("  {failed} connections failed, first: {error}");
    }
    // Socket.IO registers its event handlers in a task spawned on connect:
    // events sent at once may find none. Give every server a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (connections, failed)
}

fn spawn_receiver(mut conn: Conn, stats: Arc<Stats>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sent = Vec::with_capacity(256);
        loop {
            let received = conn.recv(&mut |ts| sent.push(ts)).await;
            stats.deliver(&sent);
            sent.clear();
            if received.closed {
                stats.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    })
}

fn spawn_echo(
    mut conn: Conn,
    proto: Proto,
    in_flight: usize,
    size: usize,
    stats: Arc<Stats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut encoder = Encoder::new(proto);
        let mut out = Vec::with_capacity(in_flight * (size + 64));
        for _ in 0..in_flight {
            encoder.echo(&mut out, now_ns(), size);
        }
        if conn.write(&out).await.is_err() {
            stats.closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut sent = Vec::with_capacity(64);
        loop {
            let received = conn.recv(&mut |ts| sent.push(ts)).await;
            stats.deliver(&sent);
            if received.closed {
                stats.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            out.clear();
            let now = now_ns();
            for _ in 0..sent.len() {
                encoder.echo(&mut out, now, size);
            }
            sent.clear();
            if !out.is_empty() && conn.write(&out).await.is_err() {
                stats.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    })
}

/// CPU and delivery counters at the start of a window.
struct Mark {
    at: Instant,
    deliveries: u64,
    server_cpu: f64,
    loadgen_cpu: f64,
    machine_busy: f64,
}

impl Mark {
    fn now(stats: &Stats, server: &ServerProcess) -> Mark {
        Mark {
            at: Instant::now(),
            deliveries: stats.deliveries.load(Ordering::Relaxed),
            server_cpu: server.cpu(),
            loadgen_cpu: procstat::cpu_seconds("self"),
            machine_busy: procstat::machine_busy_seconds(),
        }
    }

    /// The window's metrics from this mark to now.
    fn finish(&self, stats: &Stats, server: &ServerProcess) -> Value {
        let end = Mark::now(stats, server);
        let seconds = (end.at - self.at).as_secs_f64();
        let deliveries = end.deliveries - self.deliveries;
        let server_cpu = end.server_cpu - self.server_cpu;
        let loadgen_cpu = end.loadgen_cpu - self.loadgen_cpu;
        let other_cpu = (end.machine_busy - self.machine_busy - server_cpu - loadgen_cpu).max(0.0);
        json!({
            "seconds": seconds,
            "deliveries": deliveries,
            "deliveries_per_s": deliveries as f64 / seconds,
            "server_cpu_s": server_cpu,
            "loadgen_cpu_s": loadgen_cpu,
            "other_cpu_s": other_cpu,
            "deliveries_per_server_cpu_s": if server_cpu > 0.0 { deliveries as f64 / server_cpu } else { 0.0 },
            "client_bound": loadgen_cpu > server_cpu,
            "server_rss_kib": server.rss_kib(),
            "latency": stats.latency(),
        })
    }
}

/// Runs one measurement window: warm up, mark, record for `window`.
async fn measure(stats: &Stats, server: &ServerProcess, timing: &Timing) -> Value {
    tokio::time::sleep(timing.warmup).await;
    stats.reset_latency();
    let mark = Mark::now(stats, server);
    stats.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(timing.window).await;
    stats.recording.store(false, Ordering::Relaxed);
    mark.finish(stats, server)
}

/// Broadcast senders keep at most this many broadcasts undelivered: full
/// speed without overflowing any server's per-connection queue.
const WINDOW: u64 = 32;

/// Sends broadcasts as fast as the receivers take them (flow control by
/// the receivers' count) until `stop`. Returns how many it sent.
async fn flow_controlled_sender(
    mut writer: OwnedWriteHalf,
    proto: Proto,
    size: usize,
    receivers: u64,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut encoder = Encoder::new(proto);
    let mut out = Vec::new();
    let mut sent = 0u64;
    let base = stats.deliveries.load(Ordering::Relaxed);
    let mut last_delivered = 0;
    let mut last_progress = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let delivered = (stats.deliveries.load(Ordering::Relaxed) - base) / receivers.max(1);
        if delivered != last_delivered {
            last_delivered = delivered;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(1) {
            // Broadcasts that never arrive (a server that dropped them) must
            // not stop the sender: give up on them.
            sent = delivered;
            last_progress = Instant::now();
        }
        let outstanding = sent.saturating_sub(delivered);
        if outstanding < WINDOW {
            out.clear();
            let now = now_ns();
            for _ in outstanding..WINDOW {
                encoder.broadcast(&mut out, now, size);
                sent += 1;
            }
            stats.sent.store(sent, Ordering::Relaxed);
            if writer.write_all(&out).await.is_err() {
                break;
            }
        } else {
            tokio::select! {
                () = stats.progress.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
    sent
}

/// Sends `rate` broadcasts per second for `duration` (open loop; each
/// carries its scheduled send time, so a late send counts as latency).
async fn paced_sender(
    writer: &mut OwnedWriteHalf,
    encoder: &mut Encoder,
    size: usize,
    rate: f64,
    duration: Duration,
) -> io::Result<u64> {
    let start = Instant::now();
    let start_ns = now_ns();
    let mut out = Vec::new();
    let mut sent = 0u64;
    let total = (rate * duration.as_secs_f64()) as u64;
    while sent < total && start.elapsed() < duration + Duration::from_secs(5) {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        out.clear();
        while sent < due && out.len() < 256 * 1024 {
            let scheduled = start_ns + (sent as f64 / rate * 1e9) as u64;
            encoder.broadcast(&mut out, scheduled, size);
            sent += 1;
        }
        if !out.is_empty() {
            writer.write_all(&out).await?;
        }
        let next = start + Duration::from_secs_f64(sent as f64 / rate);
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(sent)
}

fn params(job: &Job) -> (String, Value) {
    match job {
        Job::Echo {
            connections,
            in_flight,
            size,
        } => (
            "echo".into(),
            json!({"connections": connections, "in_flight": in_flight, "size": size}),
        ),
        Job::Broadcast {
            receivers, size, ..
        } => (
            "broadcast".into(),
            json!({"receivers": receivers, "size": size}),
        ),
        Job::Single { receivers, count } => (
            "single-broadcast".into(),
            json!({"receivers": receivers, "count": count}),
        ),
        Job::Idle { checkpoints } => ("idle".into(), json!({"checkpoints": checkpoints})),
        Job::SlowConsumer {
            receivers,
            stalled,
            size,
        } => (
            "slow-consumer".into(),
            json!({"receivers": receivers, "stalled": stalled, "size": size}),
        ),
    }
}

/// Runs one job against one variant; returns its result records.
pub async fn run_job(variant: Variant, job: &Job, timing: &Timing) -> Vec<Value> {
    let (workload, parameters) = params(job);
    let started = Instant::now();
    let outcome = match job {
        Job::SlowConsumer {
            receivers,
            stalled,
            size,
        } => slow_consumer(variant, *receivers, *stalled, *size, timing).await,
        _ => match ServerProcess::start(variant.kind).await {
            Ok(server) => {
                let result = match job {
                    Job::Echo {
                        connections,
                        in_flight,
                        size,
                    } => echo(variant, &server, *connections, *in_flight, *size, timing).await,
                    Job::Broadcast {
                        receivers,
                        size,
                        stepped,
                    } => broadcast(variant, &server, *receivers, *size, *stepped, timing).await,
                    Job::Single { receivers, count } => {
                        single(variant, &server, *receivers, *count).await
                    }
                    Job::Idle { checkpoints } => idle(variant, &server, checkpoints, timing).await,
                    Job::SlowConsumer { .. } => Err("handled above".into()),
                };
                server.stop().await;
                result
            }
            Err(error) => Err(format!("server did not start: {error}")),
        },
    };
    let base = json!({
        "workload": workload,
        "server": variant.name,
        "params": parameters,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    match outcome {
        Ok(records) => records
            .into_iter()
            .map(|mut record| {
                merge(&mut record, &base);
                record
            })
            .collect(),
        Err(error) => {
            let mut record = json!({"ok": false, "error": error});
            merge(&mut record, &base);
            vec![record]
        }
    }
}

fn merge(record: &mut Value, base: &Value) {
    if let (Some(record), Some(base)) = (record.as_object_mut(), base.as_object()) {
        for (key, value) in base {
            record.entry(key.clone()).or_insert(value.clone());
        }
    }
}

type Outcome = Result<Vec<Value>, String>;

async fn echo(
    variant: Variant,
    server: &ServerProcess,
    connections: usize,
    in_flight: usize,
    size: usize,
    timing: &Timing,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, connections, 0, None).await;
    if conns.is_empty() {
        return Err("no connection".into());
    }
    let stats = Stats::new();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| spawn_echo(conn, variant.proto, in_flight, size, stats.clone()))
        .collect();
    let mut record = measure(&stats, server, timing).await;
    for task in &tasks {
        task.abort();
    }
    record["ok"] = json!(failed == 0 && record["deliveries"].as_u64() > Some(0));
    record["errors"] = json!(failed as u64 + stats.closed.load(Ordering::Relaxed));
    Ok(vec![record])
}

async fn broadcast(
    variant: Variant,
    server: &ServerProcess,
    receivers: usize,
    size: usize,
    stepped: bool,
    timing: &Timing,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, receivers, 1, None).await;
    let (mut sender, sender_failed) = connect_many(variant.proto, server.address, 1, 0, None).await;
    let Some(sender) = sender.pop() else {
        return Err(format!("the sender could not connect ({sender_failed})"));
    };
    if conns.is_empty() {
        return Err("no receiver connected".into());
    }
    let receivers = conns.len() as u64;
    let stats = Stats::new();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| spawn_receiver(conn, stats.clone()))
        .collect();
    let (writer, drain) = sender.into_writer();
    let drain = tokio::spawn(drain);
    let stop = Arc::new(AtomicBool::new(false));
    let sending = tokio::spawn(flow_controlled_sender(
        writer,
        variant.proto,
        size,
        receivers,
        stats.clone(),
        stop.clone(),
    ));
    let mut record = measure(&stats, server, timing).await;
    stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    let max_rate = record["deliveries_per_s"].as_f64().unwrap_or(0.0) / receivers as f64;
    record["ok"] = json!(failed == 0 && record["deliveries"].as_u64() > Some(0));
    record["errors"] = json!(failed as u64 + stats.closed.load(Ordering::Relaxed));
    record["mode"] = json!("max-rate");
    record["broadcasts_per_s"] = json!(max_rate);
    let writer = match tokio::time::timeout(Duration::from_secs(10), sending).await {
        Ok(Ok(_)) => None,
        _ => None::<OwnedWriteHalf>,
    };
    drop(writer);
    records.push(record);

    if stepped && max_rate > 0.0 {
        // A fresh sender for the paced steps.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut paced, _) = connect_many(variant.proto, server.address, 1, 2, None).await;
        if let Some(paced) = paced.pop() {
            let (mut writer, paced_drain) = paced.into_writer();
            let paced_drain = tokio::spawn(paced_drain);
            let mut encoder = Encoder::new(variant.proto);
            let mut best: Option<f64> = None;
            for &fraction in timing.steps {
                let rate = (max_rate * fraction).max(1.0);
                stats.reset_latency();
                let closed_before = stats.closed.load(Ordering::Relaxed);
                let mark = Mark::now(&stats, server);
                stats.recording.store(true, Ordering::Relaxed);
                let sent = paced_sender(&mut writer, &mut encoder, size, rate, timing.step).await;
                // Let the last ones arrive before the window closes.
                tokio::time::sleep(Duration::from_millis(150)).await;
                stats.recording.store(false, Ordering::Relaxed);
                let mut step = mark.finish(&stats, server);
                let p99 = step["latency"]["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
                let closed = stats.closed.load(Ordering::Relaxed) - closed_before;
                let sent = sent.unwrap_or(0);
                let delivered_all = step["deliveries"].as_u64().unwrap_or(0) >= sent * receivers;
                let good = p99 < 100.0 && closed == 0 && delivered_all;
                step["mode"] = json!("step");
                step["target_broadcasts_per_s"] = json!(rate);
                step["target_deliveries_per_s"] = json!(rate * receivers as f64);
                step["sent"] = json!(sent);
                step["under_100ms"] = json!(good);
                step["ok"] = json!(true);
                records.push(step);
                if !good {
                    break;
                }
                best = Some(rate);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if let Some(first) = records.first_mut() {
                first["best_rate_under_100ms_deliveries_per_s"] =
                    json!(best.map(|rate| rate * receivers as f64));
            }
            paced_drain.abort();
        }
    }
    for task in &tasks {
        task.abort();
    }
    drain.abort();
    Ok(records)
}

async fn single(
    variant: Variant,
    server: &ServerProcess,
    receivers: usize,
    count: usize,
) -> Outcome {
    let (conns, failed) = connect_many(variant.proto, server.address, receivers, 1, None).await;
    let (mut sender, _) = connect_many(variant.proto, server.address, 1, 0, None).await;
    let Some(sender) = sender.pop() else {
        return Err("the sender could not connect".into());
    };
    let receivers = conns.len() as u64;
    let stats = Stats::new();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| spawn_receiver(conn, stats.clone()))
        .collect();
    let (mut writer, drain) = sender.into_writer();
    let drain = tokio::spawn(drain);
    let mut encoder = Encoder::new(variant.proto);
    let mut out = Vec::new();
    let mut times_ms = Vec::new();
    let mut incomplete = 0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..count {
        let base = stats.deliveries.load(Ordering::Relaxed);
        stats.max_latency_ns.store(0, Ordering::Relaxed);
        out.clear();
        encoder.broadcast(&mut out, now_ns(), 32);
        if writer.write_all(&out).await.is_err() {
            return Err("the sender's connection failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.deliveries.load(Ordering::Relaxed) - base < receivers
            && Instant::now() < deadline
        {
            tokio::select! {
                () = stats.progress.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
        if stats.deliveries.load(Ordering::Relaxed) - base < receivers {
            incomplete += 1;
        } else {
            times_ms.push(stats.max_latency_ns.load(Ordering::Relaxed) as f64 / 1e6);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in &tasks {
        task.abort();
    }
    drain.abort();
    let mut sorted = times_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if sorted.is_empty() {
            return json!(null);
        }
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        json!(sorted[index])
    };
    Ok(vec![json!({
        "ok": failed == 0 && incomplete == 0 && !times_ms.is_empty(),
        "errors": failed + incomplete,
        "time_to_last_ms": times_ms,
        "time_to_last_p50_ms": quantile(0.5),
        "time_to_last_p99_ms": quantile(0.99),
        "time_to_last_max_ms": quantile(1.0),
        "server_rss_kib": server.rss_kib(),
    })])
}

async fn idle(
    variant: Variant,
    server: &ServerProcess,
    checkpoints: &[usize],
    timing: &Timing,
) -> Outcome {
    tokio::time::sleep(timing.settle).await;
    let rss_before = server.rss_kib();
    let stats = Stats::new();
    let mut tasks = Vec::new();
    let mut points = Vec::new();
    let mut total_failed = 0;
    let mut connected = 0;
    for &target in checkpoints {
        let want = target.saturating_sub(connected);
        let started = Instant::now();
        let (conns, failed) =
            connect_many(variant.proto, server.address, want, connected, None).await;
        let seconds = started.elapsed().as_secs_f64();
        total_failed += failed;
        let new = conns.len();
        connected += new;
        tasks.extend(
            conns
                .into_iter()
                .map(|conn| spawn_receiver(conn, stats.clone())),
        );
        tokio::time::sleep(timing.settle).await;
        let rss = server.rss_kib();
        points.push(json!({
            "connections": connected,
            "connect_per_s": new as f64 / seconds,
            "server_rss_kib": rss,
            "rss_per_connection_kib": (rss.saturating_sub(rss_before)) as f64 / connected.max(1) as f64,
            "closed": stats.closed.load(Ordering::Relaxed),
        }));
    }
    for task in &tasks {
        task.abort();
    }
    Ok(vec![json!({
        "ok": total_failed == 0 && connected == checkpoints.last().copied().unwrap_or(0),
        "errors": total_failed as u64 + stats.closed.load(Ordering::Relaxed),
        "server_rss_before_kib": rss_before,
        "points": points,
    })])
}

async fn slow_consumer(
    variant: Variant,
    receivers: usize,
    stalled: usize,
    size: usize,
    timing: &Timing,
) -> Outcome {
    let mut phases = Vec::new();
    for stalled in [0, stalled] {
        let server = ServerProcess::start(variant.kind)
            .await
            .map_err(|e| format!("server did not start: {e}"))?;
        let healthy = receivers - stalled;
        let (conns, failed) = connect_many(variant.proto, server.address, healthy, 1, None).await;
        // Stalled receivers read nothing; a small receive buffer makes
        // their backlog reach the server's queue quickly.
        let (stalled_conns, stalled_failed) = connect_many(
            variant.proto,
            server.address,
            stalled,
            healthy + 1,
            Some(4096),
        )
        .await;
        let (mut sender, _) = connect_many(variant.proto, server.address, 1, 0, None).await;
        let Some(sender) = sender.pop() else {
            server.stop().await;
            return Err("the sender could not connect".into());
        };
        let stats = Stats::new();
        let healthy_count = conns.len() as u64;
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|conn| spawn_receiver(conn, stats.clone()))
            .collect();
        let (writer, drain) = sender.into_writer();
        let drain = tokio::spawn(drain);
        let stop = Arc::new(AtomicBool::new(false));
        let sending = tokio::spawn(flow_controlled_sender(
            writer,
            variant.proto,
            size,
            healthy_count,
            stats.clone(),
            stop.clone(),
        ));
        // The stalled receivers' backlog first fills the kernel's socket
        // buffers (megabytes on loopback), only then the server's queue:
        // measure once 8 MiB per stalled receiver were sent (bounded).
        let backlog = (8 << 20) / size.max(1) as u64;
        let fill_deadline = Instant::now() + timing.fill_limit;
        while stalled > 0
            && stats.sent.load(Ordering::Relaxed) < backlog
            && Instant::now() < fill_deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut record = measure(&stats, &server, timing).await;
        stop.store(true, Ordering::Relaxed);
        let sent = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        // What happened to the stalled receivers: read their backlog for
        // up to 3 s and see whether the server closed them.
        let fate = Stats::new();
        let fate_wait = timing.fate_wait;
        let mut stalled_tasks = Vec::new();
        for mut conn in stalled_conns {
            let fate = fate.clone();
            stalled_tasks.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + fate_wait;
                let mut sent = Vec::new();
                loop {
                    match tokio::time::timeout_at(deadline, conn.recv(&mut |ts| sent.push(ts)))
                        .await
                    {
                        Ok(received) => {
                            fate.deliver(&sent);
                            sent.clear();
                            if received.closed {
                                return true;
                            }
                        }
                        Err(_) => return false,
                    }
                }
            }));
        }
        let mut closed_by_server = 0;
        let mut still_open = 0;
        for task in stalled_tasks {
            match task.await {
                Ok(true) => closed_by_server += 1,
                _ => still_open += 1,
            }
        }
        record["stalled"] = json!(stalled);
        record["stalled_closed_by_server"] = json!(closed_by_server);
        record["stalled_still_open"] = json!(still_open);
        record["stalled_received"] = json!(fate.deliveries.load(Ordering::Relaxed));
        record["broadcasts_sent"] = json!(sent);
        record["errors"] =
            json!((failed + stalled_failed) as u64 + stats.closed.load(Ordering::Relaxed));
        record["ok"] =
            json!(failed + stalled_failed == 0 && record["deliveries"].as_u64() > Some(0));
        for task in &tasks {
            task.abort();
        }
        drain.abort();
        server.stop().await;
        phases.push(record);
    }
    let baseline = phases[0]["deliveries_per_s"].as_f64().unwrap_or(0.0);
    let with_stalled = phases[1]["deliveries_per_s"].as_f64().unwrap_or(0.0);
    let ok = phases.iter().all(|phase| phase["ok"] == json!(true));
    Ok(vec![json!({
        "ok": ok,
        "errors": phases.iter().map(|p| p["errors"].as_u64().unwrap_or(0)).sum::<u64>(),
        "baseline": phases[0],
        "with_stalled": phases[1],
        "healthy_throughput_loss": if baseline > 0.0 { 1.0 - with_stalled / baseline } else { 0.0 },
    })])
}

/// A small xorshift generator for the random job order.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs the whole plan, appending one JSON line per record to `out`.
pub async fn run_plan(plan: &Plan, out: &std::path::Path, mode: &str) -> io::Result<bool> {
    let mut pairs = Vec::new();
    for repetition in 0..plan.repetitions {
        for job in &plan.jobs {
            // The long jobs with their own repetitions inside (single: many
            // broadcasts; idle: a ramp of checkpoints; slow consumer: two
            // phases) run once, to stay within the time budget.
            let once = matches!(
                job,
                Job::Single { .. } | Job::Idle { .. } | Job::SlowConsumer { .. }
            );
            if once && repetition > 0 {
                continue;
            }
            let (workload, parameters) = params(job);
            let text = format!("{workload} {parameters}");
            if plan
                .filter
                .as_ref()
                .is_some_and(|filter| !text.contains(filter))
            {
                continue;
            }
            for variant in VARIANTS {
                if plan.only.is_empty() || plan.only.iter().any(|name| name == variant.name) {
                    pairs.push((repetition, job.clone(), variant));
                }
            }
        }
    }
    let seed = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos()),
    )
    .unwrap_or(1)
        | 1;
    let mut shuffle = Shuffle(seed);
    for index in (1..pairs.len()).rev() {
        let other = (shuffle.next() % (index as u64 + 1)) as usize;
        pairs.swap(index, other);
    }
    let mut file = tokio::fs::File::create(out).await?;
    let header = json!({
        "record": "run",
        "mode": mode,
        "started_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
        "machine": procstat::machine_description(),
        "repetitions": plan.repetitions,
        "seed": seed,
    });
    file.write_all(format!("{header}\n").as_bytes()).await?;
    let total = pairs.len();
    let mut all_ok = true;
    let busy_before = procstat::machine_busy_seconds();
    let self_before = procstat::cpu_seconds("self");
    let started = Instant::now();
    for (index, (repetition, job, variant)) in pairs.into_iter().enumerate() {
        let (workload, parameters) = params(&job);
        eprintln!(
            "[{}/{}] {} {} {}",
            index + 1,
            total,
            variant.name,
            workload,
            parameters
        );
        let records = run_job(variant, &job, &plan.timing).await;
        for mut record in records {
            record["repetition"] = json!(repetition);
            if record["ok"] != json!(true) {
                all_ok = false;
                eprintln!("  FAILED: {record}");
            }
            file.write_all(format!("{record}\n").as_bytes()).await?;
        }
        // Let the sockets of the last job go before the next server starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let footer = json!({
        "record": "end",
        "elapsed_s": started.elapsed().as_secs_f64(),
        "machine_busy_s": procstat::machine_busy_seconds() - busy_before,
        "loadgen_cpu_s": procstat::cpu_seconds("self") - self_before,
        "loadavg": procstat::machine_description()["loadavg"],
    });
    file.write_all(format!("{footer}\n").as_bytes()).await?;
    file.flush().await?;
    Ok(all_ok)
}
