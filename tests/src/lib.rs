//! Shared helpers for the integration and interop tests: starting the
//! project's server binaries on a free loopback port and running the
//! official clients against them.

pub mod conformance;
pub mod relay;
pub mod route;
pub mod stalled;
pub mod station;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A server binary of this workspace, started on `127.0.0.1:0`, killed when
/// dropped.
pub struct ServerProcess {
    child: Child,
    base_url: String,
}

impl ServerProcess {
    /// Starts `binary` with `--bind 127.0.0.1:0` and `args`, and waits for
    /// the `listening on http://HOST:PORT` line (`https://` with TLS) it
    /// prints once it accepts connections.
    ///
    /// # Panics
    /// When the binary cannot start or prints no such line within 60 s.
    pub fn start(binary: &str, args: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(binary, args, &[])
    }

    /// As [`ServerProcess::start`], with `env` added to the environment
    /// (such as `SSL_CERT_FILE` for a `rediss://` backplane).
    ///
    /// # Panics
    /// As [`ServerProcess::start`].
    pub fn start_with_env(binary: &str, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let base_url = loop {
            match lines_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("{binary} did not print its address: {e}");
                }
            }
        };
        ServerProcess { child, base_url }
    }

    /// `http://127.0.0.1:PORT` (`https://` when started with TLS)
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit, returning whether it
    /// exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/interop`, where the npm packages of the interop tests live.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs a node test file of `tests/interop` with `env`, printing its output,
/// and returns whether every node test passed.
///
/// # Panics
/// When node is missing or the npm packages are not installed: the README's
/// test command installs them (`npm ci`).
pub fn run_node_tests(file: &str, env: &[(&str, &str)]) -> bool {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/@microsoft/signalr").exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        dir.display()
    );
    let output = Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "--test-concurrency=1",
            file,
        ])
        .current_dir(&dir)
        .envs(env.iter().copied())
        .output()
        .expect("node must be installed for the interop tests");
    // Shown by the test harness when the test fails.
    #[allow(clippy::print_stdout)]
    {
        println!("{}", String::from_utf8_lossy(&output.stdout));
    }
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output.status.success()
}

/// Runs `tests/interop/scaleout.test.mjs`, the official JavaScript client
/// with its connections split across two nodes of one hub (`hub_a`,
/// `hub_b`: their `/hubs/test` URLs) joined over `redis`, with `protocol`
/// (`json` | `messagepack`) and `env` besides (such as
/// `NODE_EXTRA_CA_CERTS`); stops and restarts `redis` when the script asks
/// (`#redis stop` / `#redis start`). Returns whether every scenario passed,
/// and the script's report.
///
/// # Panics
/// When node or the npm packages are missing.
pub fn run_scaleout_js(
    hub_a: &str,
    hub_b: &str,
    protocol: &str,
    redis: &mut RedisProcess,
    env: &[(&str, &str)],
) -> (bool, String) {
    use std::io::Write as _;
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/@microsoft/signalr").exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        dir.display()
    );
    // A plain script rather than `node --test`, so that it can ask this
    // harness (over stdin/stdout) to stop and start Redis mid-run.
    let mut node = Command::new("node")
        .arg("scaleout.test.mjs")
        .current_dir(&dir)
        .env("HUB_URL_A", hub_a)
        .env("HUB_URL_B", hub_b)
        .env("HUB_PROTOCOL", protocol)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node must be installed for the interop tests");
    let mut stdin = node.stdin.take().expect("stdin is piped");
    let stdout = BufReader::new(node.stdout.take().expect("stdout is piped"));
    let mut report = String::new();
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "#redis stop" => redis.stop(),
            "#redis start" => redis.restart(),
            _ => {
                report.push_str(&line);
                report.push('\n');
                continue;
            }
        }
        let _ = writeln!(stdin, "ok");
        let _ = stdin.flush();
    }
    drop(stdin);
    let passed = node.wait().is_ok_and(|status| status.success());
    (passed, report)
}

/// A private `redis-server` (Debian's package; `scripts/test.sh` installs
/// it) on a free loopback port, with persistence off, stopped by PID when
/// dropped.
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    /// Set when it serves TLS only: the CA that signed its certificate.
    tls: Option<RedisTls>,
}

/// The PEM files of a TLS-only `redis-server`.
struct RedisTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl RedisProcess {
    /// Starts `redis-server` on a free port of 127.0.0.1 and waits until it
    /// answers PING.
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not answer within 30 s.
    pub fn start() -> RedisProcess {
        RedisProcess::start_with(None)
    }

    /// Starts `redis-server` serving TLS only (`--port 0 --tls-port P`,
    /// clients not asked for certificates), with a server certificate of
    /// `ca` for 127.0.0.1; its URL is `rediss://127.0.0.1:P`. Clients trust
    /// it with `SSL_CERT_FILE=`[`tls::TestCa::ca_cert_file`].
    ///
    /// # Panics
    /// As [`RedisProcess::start`].
    pub fn start_tls(ca: &tls::TestCa) -> RedisProcess {
        RedisProcess::start_with(Some(RedisTls {
            cert: ca.server_cert_file().to_owned(),
            key: ca.server_key_file().to_owned(),
            ca: ca.ca_cert_file().to_owned(),
        }))
    }

    fn start_with(tls: Option<RedisTls>) -> RedisProcess {
        let binary = [
            "/usr/bin/redis-server",
            "/usr/sbin/redis-server",
            "/usr/local/bin/redis-server",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("redis-server"))
                    .find(|path| path.exists())
            })
        })
        .expect("redis-server must be installed (scripts/test.sh installs it)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut redis = RedisProcess {
            child: None,
            port,
            binary,
            tls,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.answers_ping() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reply = [0u8; 7];
        match &self.tls {
            None => {
                stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
            }
            Some(tls) => {
                let Some(mut session) = tls::client_session(&tls.ca, "127.0.0.1") else {
                    return false;
                };
                let mut stream = rustls::Stream::new(&mut session, &mut stream);
                stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
            }
        }
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` when it serves TLS)
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: an abrupt outage) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty (persistence is off).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The path of `redis-server`, as `scripts/test.sh` installs it.
fn redis_server_binary() -> PathBuf {
    [
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
        "/usr/local/bin/redis-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
    .or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("redis-server"))
                .find(|path| path.exists())
        })
    })
    .expect("redis-server must be installed (scripts/test.sh installs it)")
}

/// A free loopback port whose cluster bus port (+10 000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A private Redis Cluster on loopback: `masters` primaries with `replicas`
/// replicas each, every one a `redis-server --cluster-enabled yes` on a
/// free port, joined by `redis-cli --cluster create`. Nodes notice a dead
/// peer within 5 s (`cluster-node-timeout 5000`, long enough that a loaded machine does not fail a shard over by itself). Every process is killed
/// and its directory removed when dropped.
pub struct RedisCluster {
    nodes: Vec<(u16, Child)>,
    dir: PathBuf,
    /// Set when the nodes serve TLS only: the CA that signed them.
    tls_ca: Option<PathBuf>,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node
    /// reports `cluster_state:ok`.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing or the cluster is not
    /// ready within 60 s.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        RedisCluster::start_with(masters, replicas, None)
    }

    /// As [`RedisCluster::start`], every node serving TLS only
    /// (`--port 0 --tls-port P`, `--tls-cluster yes`: the cluster bus and
    /// replication over TLS too) with a certificate of `ca` for 127.0.0.1
    /// ([`tls::TestCa::peer_cert_files`]), clients not asked for
    /// certificates. Its
    /// [`seeds`](RedisCluster::seeds) are `rediss://` URLs; clients trust
    /// them with `SSL_CERT_FILE=`[`tls::TestCa::ca_cert_file`].
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    pub fn start_tls(ca: &tls::TestCa, masters: usize, replicas: usize) -> RedisCluster {
        RedisCluster::start_with(masters, replicas, Some(ca))
    }

    fn start_with(masters: usize, replicas: usize, ca: Option<&tls::TestCa>) -> RedisCluster {
        static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let binary = redis_server_binary();
        // One directory per cluster: a test binary may run several at once.
        let dir = std::env::temp_dir().join(format!(
            "hub-tests-cluster-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
            tls_ca: ca.map(|ca| ca.ca_cert_file().to_owned()),
        };
        let peer_cert = ca.map(tls::TestCa::peer_cert_files);
        for _ in 0..masters * (1 + replicas) {
            let port = free_cluster_port();
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("a node directory");
            let mut command = Command::new(&binary);
            match (&cluster.tls_ca, &peer_cert) {
                (Some(ca_file), Some((cert, key))) => command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca_file)
                    .args(["--tls-auth-clients", "no"]),
                _ => command.args(["--port", &port.to_string()]),
            };
            let child = command
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            cluster.nodes.push((port, child));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for port in cluster.ports() {
            while cluster.cli(port, &["PING"]).trim() != "PONG" {
                assert!(
                    std::time::Instant::now() < deadline,
                    "redis-server on port {port} did not answer"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addresses: Vec<String> = cluster
            .ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(cluster.cli_tls_args())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok(deadline);
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` and agrees on a
    /// primary for every slot.
    ///
    /// # Panics
    /// When that does not hold by `deadline`.
    pub fn wait_until_ok(&self, deadline: std::time::Instant) {
        for port in self.ports() {
            while !self
                .cli(port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the Redis Cluster node on port {port} is not ready"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The ports of every node, primaries and replicas.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(port, _)| *port).collect()
    }

    /// The current primaries' ports.
    pub fn primaries(&self) -> Vec<u16> {
        self.ports()
            .into_iter()
            .filter(|&port| self.cli(port, &["ROLE"]).starts_with("master"))
            .collect()
    }

    /// The seed URLs to give a cluster client: every node.
    pub fn seeds(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.ports()
            .iter()
            .map(|port| format!("{scheme}://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns what it prints.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(self.cli_tls_args())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `--tls --cacert CA` for `redis-cli` when the nodes serve TLS.
    fn cli_tls_args(&self) -> Vec<std::ffi::OsString> {
        match &self.tls_ca {
            None => Vec::new(),
            Some(ca) => vec!["--tls".into(), "--cacert".into(), ca.into()],
        }
    }

    /// The slot of `channel` (`CLUSTER KEYSLOT`): a channel's slot is the
    /// hash of its whole name, as a key's.
    ///
    /// # Panics
    /// When the cluster does not answer with a slot.
    pub fn slot_of(&self, channel: &str) -> u16 {
        let port = self.ports()[0];
        let answer = self.cli(port, &["CLUSTER", "KEYSLOT", channel]);
        answer
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {channel} answered {answer:?}"))
    }

    /// The port of the primary that serves `slot`, as the primaries agree
    /// (`CLUSTER NODES`): `None` while they disagree or none serves it.
    pub fn owner_of_slot(&self, slot: u16) -> Option<u16> {
        let mut owners = self.primaries().into_iter().map(|port| {
            self.cli(port, &["CLUSTER", "NODES"])
                .lines()
                .find_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let serves = fields.get(2)?.contains("master")
                        && fields.iter().skip(8).any(|range| {
                            let mut bounds = range.splitn(2, '-').map(str::parse::<u16>);
                            match (bounds.next(), bounds.next()) {
                                (Some(Ok(low)), Some(Ok(high))) => (low..=high).contains(&slot),
                                (Some(Ok(only)), None) => only == slot,
                                _ => false,
                            }
                        });
                    let address = fields.get(1)?.split('@').next()?;
                    serves.then(|| address.rsplit(':').next()?.parse().ok())?
                })
        });
        let first = owners.next()??;
        owners.all(|owner| owner == Some(first)).then_some(first)
    }

    /// Moves `slot` from its primary to the primary on port `to`, as
    /// `redis-cli --cluster reshard` does for each slot it moves:
    /// `CLUSTER SETSLOT … IMPORTING` on the destination, `MIGRATING` on the
    /// source, the keys (the hub's channels are none), then `SETSLOT … NODE`
    /// on the destination, the source and the other primaries. Returns the
    /// source's port.
    ///
    /// # Panics
    /// When the slot has no primary, `to` already serves it, or a node
    /// refuses a step.
    pub fn move_slot(&self, slot: u16, to: u16) -> u16 {
        let from = self
            .owner_of_slot(slot)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"));
        assert_ne!(from, to, "slot {slot} is served by {to} already");
        let id = |port: u16| self.cli(port, &["CLUSTER", "MYID"]).trim().to_owned();
        let (from_id, to_id) = (id(from), id(to));
        let slot_arg = slot.to_string();
        let step = |port: u16, args: &[&str]| {
            let mut command = vec!["CLUSTER", "SETSLOT", slot_arg.as_str()];
            command.extend_from_slice(args);
            let answer = self.cli(port, &command);
            assert_eq!(answer.trim(), "OK", "{command:?} on {port}: {answer}");
        };
        step(to, &["IMPORTING", &from_id]);
        step(from, &["MIGRATING", &to_id]);
        let keys = self.cli(from, &["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]);
        assert_eq!(keys.trim(), "0", "slot {slot} holds keys: move them first");
        step(to, &["NODE", &to_id]);
        step(from, &["NODE", &to_id]);
        for other in self.primaries() {
            if other != to && other != from {
                step(other, &["NODE", &to_id]);
            }
        }
        from
    }

    /// How many clients of the node on `port` subscribe to the sharded
    /// channel `channel` (`PUBSUB SHARDNUMSUB`).
    pub fn shard_subscribers(&self, port: u16, channel: &str) -> u64 {
        self.cli(port, &["PUBSUB", "SHARDNUMSUB", channel])
            .lines()
            .nth(1)
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Every sharded pub/sub channel of the cluster with its subscriber
    /// count, asked of every primary (`PUBSUB SHARDCHANNELS`,
    /// `PUBSUB SHARDNUMSUB`).
    pub fn sharded_channels(&self) -> std::collections::BTreeMap<String, u64> {
        let mut channels = std::collections::BTreeMap::new();
        for port in self.primaries() {
            let names = self.cli(port, &["PUBSUB", "SHARDCHANNELS"]);
            for name in names.lines().map(str::trim).filter(|name| !name.is_empty()) {
                let counted = self.cli(port, &["PUBSUB", "SHARDNUMSUB", name]);
                let count = counted
                    .lines()
                    .nth(1)
                    .and_then(|count| count.trim().parse().ok())
                    .unwrap_or(0);
                *channels.entry(name.to_owned()).or_insert(0) += count;
            }
        }
        channels
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The path of a `clock-demo` binary (`clock-server`, `clock-client`),
/// built or brought up to date first, once per test process: Cargo sets
/// `CARGO_BIN_EXE_*` only for a binary's own package. It is built into the
/// target directory and profile that the calling test binary runs from
/// (`<target>/<profile>/deps/<test>-…`).
///
/// # Panics
/// When the binaries cannot be built.
pub fn clock_demo_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("the test knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in <target>/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .expect("a profile directory")
        .to_string_lossy()
        .into_owned();
    let target = profile_dir.parent().expect("a target directory");
    BUILT.call_once(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "clock-demo", "--bins"])
            .arg("--target-dir")
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cargo.arg("--release");
            }
            other => {
                cargo.args(["--profile", other]);
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "cannot build the clock-demo binaries");
    });
    profile_dir.join(name)
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Every TypeScript module generated from Rust contracts, with its path
/// relative to the workspace root: what `hub-typescript` writes and what
/// `tests/tests/typescript.rs` checks is committed.
///
/// # Errors
/// When a module cannot be generated (two types share a TypeScript name).
pub fn typescript_modules()
-> Result<Vec<(&'static str, String)>, hub_runtime::typescript::TypeScriptError> {
    Ok(vec![
        (
            "clock-demo/web/src/generated/clock.ts",
            clock_demo::typescript()?,
        ),
        ("tests/ts/generated/station.ts", station::typescript()?),
    ])
}

/// The sum of the samples of Prometheus metric `name` (a counter, gauge or
/// histogram `_count`) whose labels include every `labels` pair, from the
/// server's `GET /metrics` (asked directly, not through any relay).
///
/// # Panics
/// When the server was not started with `--metrics`.
pub async fn metric(server: &ServerProcess, name: &str, labels: &[(&str, &str)]) -> f64 {
    let addr = relay::socket_addr_of(server.base_url());
    let (status, body) = raw_http(
        &addr.to_string(),
        &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "the server was started with --metrics");
    body.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends a raw HTTP/1.1 `request` (which should say `Connection: close`)
/// to `host` (`127.0.0.1:port`) and reads the whole answer, within 20 s:
/// the status code and the body. For tests of what the server answers to
/// requests no client library would send.
///
/// # Panics
/// When the server cannot be reached, does not answer in time, or answers
/// something that is not HTTP.
pub async fn raw_http(host: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("the server accepts connections");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers within 20 s")
        .expect("the answer is read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
