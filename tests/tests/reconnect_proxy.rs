//! Stateful reconnect through a connection-cutting TCP proxy.
//!
//! A loopback proxy sits between the client and the conformance server
//! (started with `--stateful-reconnect`). While the client sends numbered
//! messages to itself through the hub (client → server and server → client
//! both carry the numbers), the proxy cuts the TCP connection 1,000 times,
//! each time once the client's new WebSocket is up, at a random moment with
//! messages in flight. Every number must arrive exactly once, in order:
//! for the official JS client and for the Rust client.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hub_tests::conformance::ConformanceConnection;
use hub_tests::relay::TcpRelay;
use hub_tests::{ServerProcess, interop_dir};

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");
const CUTS: u64 = 1_000;

/// A small deterministic pseudo-random sequence (xorshift), for the cut
/// moments.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Cuts `CUTS` times while the client runs; returns the client's result
/// line. Each cut waits until the client has resumed on the connection
/// made after the previous one (it sent bytes after the server's): cutting
/// earlier would fail the client's single resume attempt, which the
/// official client does not retry.
async fn cut_while_running(proxy: &TcpRelay, mut client: ClientProcess) -> String {
    let mut random = 0x9E37_79B9_7F4A_7C15_u64;
    for cut in 0..CUTS {
        assert!(
            proxy
                .wait_for_resumed_traffic(Duration::from_secs(30))
                .await,
            "the client did not come back after cut {cut}: {}",
            client.output()
        );
        // A random moment while messages flow: 1–15 ms after the new
        // socket's first bytes.
        let pause = 1 + next_random(&mut random) % 15;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        proxy.cut();
    }
    assert!(
        proxy
            .wait_for_resumed_traffic(Duration::from_secs(30))
            .await
    );
    client.finish()
}

/// A client process speaking the ready/stop/result protocol.
struct ClientProcess {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ClientProcess {
    fn spawn(mut command: Command) -> ClientProcess {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the client starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut client = ClientProcess {
            child,
            lines,
            seen: Vec::new(),
        };
        let ready = client.wait_for("ready", Duration::from_secs(60));
        assert!(
            ready.is_some(),
            "the client did not start: {}",
            client.output()
        );
        client
    }

    fn wait_for(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    /// Everything the client printed so far.
    fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Tells the client to stop and returns its result line, asserting a
    /// successful exit.
    fn finish(mut self) -> String {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"stop\n").unwrap();
        stdin.flush().unwrap();
        let result = self
            .wait_for("result ", Duration::from_secs(120))
            .unwrap_or_else(|| panic!("no result from the client: {}", self.output()));
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the client reported a failure: {result}");
        result
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_js(protocol: &str) {
    let server = ServerProcess::start(SERVER, &["--stateful-reconnect"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let proxy = TcpRelay::builder_for(server.base_url()).start().await;
        let mut command = Command::new("node");
        command
            .arg("reconnect.mjs")
            .current_dir(interop_dir())
            .env("HUB_URL", proxy.hub_url())
            .env("HUB_PROTOCOL", protocol);
        let client = ClientProcess::spawn(command);
        let result = cut_while_running(&proxy, client).await;
        eprintln!("official JS client, {protocol}, {CUTS} cuts: {result}");
        let result: serde_json::Value =
            serde_json::from_str(result.trim_start_matches("result ")).unwrap();
        assert_eq!(result["lost"], 0, "{result}");
        assert_eq!(result["duplicated"], 0, "{result}");
        assert_eq!(result["reordered"], 0, "{result}");
        assert!(result["sent"].as_u64().unwrap() > CUTS, "{result}");
    });
}

#[test]
fn official_js_client_loses_nothing_over_1000_cuts_json() {
    run_js("json");
}

#[test]
fn official_js_client_loses_nothing_over_1000_cuts_messagepack() {
    run_js("messagepack");
}

/// The Rust client, in process: the same numbered round trip as
/// `reconnect.mjs`.
async fn run_rust(protocol: hub_runtime::protocol::HubProtocol) {
    use hub_runtime::client::HubConnection;
    use std::sync::atomic::AtomicBool;

    let server = ServerProcess::start(SERVER, &["--stateful-reconnect"]);
    let proxy = TcpRelay::builder_for(server.base_url()).start().await;
    let builder = HubConnection::builder(proxy.hub_url())
        .protocol(protocol)
        .stateful_reconnect(100_000)
        .server_timeout(Duration::from_secs(120));
    let mut client = ConformanceConnection::new(builder, "rusty").unwrap();
    let connection = client.connection.clone();
    client.start().await.unwrap();
    let id = client.hub.get_connection_id().await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let connection = connection.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut sent = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                // The untyped `send`: fire-and-forget, as `reconnect.mjs`
                // does (the typed proxy invokes `SendToConnection`, waiting
                // for each completion).
                connection
                    .send("SendToConnection", (&id, (sent + 1).to_string()))
                    .await
                    .unwrap();
                sent += 1;
                // About 1,000 a second, as the JS client in reconnect.mjs.
                if sent.is_multiple_of(10) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            sent
        })
    };
    let mut random = 0x2545_F491_4F6C_DD1D_u64;
    for cut in 0..CUTS {
        assert!(
            proxy
                .wait_for_resumed_traffic(Duration::from_secs(30))
                .await,
            "the Rust client did not come back after cut {cut}"
        );
        let pause = 1 + next_random(&mut random) % 15;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        proxy.cut();
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.await.unwrap();
    let mut last = 0_u64;
    let (mut duplicated, mut reordered, mut received) = (0_u64, 0_u64, 0_u64);
    while last < sent {
        let n: u64 = tokio::time::timeout(Duration::from_secs(60), client.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("only {last} of {sent} came back"))
            .unwrap()
            .parse()
            .unwrap();
        received += 1;
        if n == last + 1 {
            last = n;
        } else if n <= last {
            duplicated += 1;
        } else {
            reordered += 1;
            last = n;
        }
    }
    eprintln!(
        "Rust client, {protocol:?}, {CUTS} cuts: sent {sent}, received {received}, \
         duplicated {duplicated}, reordered {reordered}"
    );
    assert_eq!((duplicated, reordered, received), (0, 0, sent));
    assert!(sent > CUTS);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_loses_nothing_over_1000_cuts_json() {
    run_rust(hub_runtime::protocol::HubProtocol::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_loses_nothing_over_1000_cuts_messagepack() {
    run_rust(hub_runtime::protocol::HubProtocol::MessagePack).await;
}
