//! The server binaries over TLS (`--tls-cert`/`--tls-key`), with a
//! throwaway CA made in the test (`hub_tests::tls::TestCa`):
//!
//! - `conformance-server` serves every endpoint over https/wss only: plain
//!   HTTP to its port gets no HTTP answer.
//! - The official JavaScript client (`@microsoft/signalr`, trusting the CA
//!   through Node's `NODE_EXTRA_CA_CERTS`) passes the conformance scenarios
//!   over wss (WebSockets) and https (Server-Sent Events, Long Polling), and
//!   refuses the server when the CA is not trusted.
//! - A TLS connection that stalls in the handshake, or sends half a request
//!   after it, is closed (handshake timeout, header-read timeout).
//! - `clock-server` pushes the time to the official client over wss and
//!   stops cleanly; our `clock-client --url https://…` shows the time when
//!   `SSL_CERT_FILE` names the CA, and says the certificate was refused
//!   when it does not.
//! - Two `conformance-server` nodes joined over `rediss://` (a
//!   `redis-server` serving TLS only, trusted through `SSL_CERT_FILE`) are
//!   one hub for the official client's scale-out scenarios; a node that
//!   does not trust Redis' certificate refuses to start.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use hub_tests::tls::TestCa;
use hub_tests::{RedisProcess, clock_demo_binary, run_node_tests, run_scaleout_js};

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

fn ca_env(ca: &TestCa) -> String {
    ca.ca_cert_file()
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_owned()
}

/// The full conformance suite of the official client over TLS, the
/// servers started with `server_args` besides; `transport` is what the
/// client asks for (`Auto` lets it fall back), `expected` what it must use.
fn run_conformance(protocol: &str, transport: &str, server_args: &[&str], expected: &str) {
    let ca = TestCa::new();
    let server = ca.start_server(
        SERVER,
        &[&["--keep-alive-ms", "1000"], server_args].concat(),
    );
    let large = ca.start_server(
        SERVER,
        &[&["--max-message-size", "4000000"], server_args].concat(),
    );
    let hub = format!("{}/hubs/test", server.base_url());
    let large_hub = format!("{}/hubs/test", large.base_url());
    let passed = run_node_tests(
        "conformance.test.mjs",
        &[
            ("HUB_URL", &hub),
            ("HUB_URL_LARGE", &large_hub),
            ("HUB_PROTOCOL", protocol),
            ("HUB_TRANSPORT", transport),
            ("HUB_EXPECT_TRANSPORT", expected),
            ("NODE_EXTRA_CA_CERTS", &ca_env(&ca)),
        ],
    );
    assert!(
        passed,
        "the JS client failed conformance scenarios over TLS, {expected} + {protocol}"
    );
    assert!(
        server.terminate(),
        "conformance-server exits with 0 on SIGTERM"
    );
}

#[test]
fn official_js_client_over_wss_websockets_messagepack() {
    run_conformance("messagepack", "WebSockets", &[], "WebSockets");
}

/// As `interop_js.rs` runs Server-Sent Events: the servers serve SSE and
/// Long Polling, the client picks SSE (the scenario mixing a MessagePack
/// client then falls back to Long Polling, as SSE carries text only).
#[test]
fn official_js_client_over_https_server_sent_events_json() {
    run_conformance(
        "json",
        "Auto",
        &["--transports", "serversentevents,longpolling"],
        "ServerSentEvents",
    );
}

#[test]
fn official_js_client_over_https_long_polling_json() {
    run_conformance(
        "json",
        "Auto",
        &["--transports", "longpolling"],
        "LongPolling",
    );
}

/// Without the CA in `NODE_EXTRA_CA_CERTS`, the client refuses the server
/// (the certificate is checked, not ignored): its first request,
/// negotiate, fails whatever the transport.
#[test]
fn official_js_client_refuses_a_server_it_does_not_trust() {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &[]);
    let hub = format!("{}/hubs/test", server.base_url());
    let refused = run_node_tests(
        "tls.test.mjs",
        &[
            ("HUB_URL", &hub),
            ("HUB_TRANSPORT", "WebSockets"),
            ("EXPECT_TRUSTED", "0"),
        ],
    );
    assert!(refused, "the JS client did not refuse an untrusted server");
}

/// Plain HTTP to the TLS port gets no HTTP answer: the handshake fails and
/// the connection is closed.
#[test]
fn plain_http_to_the_tls_port_is_not_served() {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &[]);
    let address = server
        .base_url()
        .strip_prefix("https://")
        .expect("an https URL");
    let mut stream = std::net::TcpStream::connect(address).expect("the port accepts TCP");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("a read timeout");
    stream
        .write_all(
            b"POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\n\
              Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("the request is written");
    let mut answer = Vec::new();
    // Ends with EOF (or a reset) once the server gave up on the handshake;
    // a timeout here would mean the server kept the connection open.
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "the server neither closed nor reset the connection: {e}"
        ),
    }
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );
    // And the same port still serves TLS clients.
    let hub = format!("{}/hubs/test", server.base_url());
    let passed = run_node_tests(
        "tls.test.mjs",
        &[
            ("HUB_URL", &hub),
            ("HUB_TRANSPORT", "LongPolling"),
            ("EXPECT_TRUSTED", "1"),
            ("NODE_EXTRA_CA_CERTS", &ca_env(&ca)),
        ],
    );
    assert!(passed, "the JS client did not reach the server over TLS");
}

/// The clock demo over wss: the official client gets the worker's pushed
/// dates and `GetTime`, and the server stops with 0 on SIGTERM.
#[test]
fn clock_server_over_tls_serves_the_official_client() {
    let ca = TestCa::new();
    let binary = clock_demo_binary("clock-server");
    let server = ca.start_server(binary.to_str().expect("a UTF-8 path"), &[]);
    let hub = format!("{}/hubs/clock", server.base_url());
    let passed = run_node_tests(
        "clock_dates.test.mjs",
        &[
            ("CLOCK_HUB_URL", &hub),
            ("NODE_EXTRA_CA_CERTS", &ca_env(&ca)),
        ],
    );
    assert!(
        passed,
        "the JS client did not get the clock's dates over TLS"
    );
    assert!(server.terminate(), "clock-server exits with 0 on SIGTERM");
}

/// A certificate file that is not PEM, or a key that is missing, stops the
/// server at start with a message naming the file.
#[test]
fn unusable_certificate_files_are_a_clear_error() {
    let ca = TestCa::new();
    let cert = ca.server_cert_file().to_str().expect("UTF-8");
    let key = ca.server_key_file().to_str().expect("UTF-8");
    let ca_file = ca.ca_cert_file().to_str().expect("UTF-8");
    for (args, expected) in [
        (["--tls-cert", cert, "--tls-key", cert], "no private key"),
        (["--tls-cert", key, "--tls-key", key], "no certificate"),
        (
            ["--tls-cert", ca_file, "--tls-key", key],
            "not usable together",
        ),
    ] {
        let output = std::process::Command::new(SERVER)
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("conformance-server runs");
        assert!(!output.status.success(), "{args:?} started a server");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
    }
}

/// Two nodes over `rediss://`: the official client's scale-out scenarios
/// (broadcast, others, connections, groups, users, ordering, client
/// results across the nodes, and Redis restarted mid-run, so reconnecting
/// over TLS too), the client reaching the nodes over https.
#[test]
fn two_nodes_joined_over_rediss_are_one_hub() {
    let ca = TestCa::new();
    let mut redis = RedisProcess::start_tls(&ca);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let trust = ca_env(&ca);
    let env = [("SSL_CERT_FILE", trust.as_str())];
    let a = ca.start_server_with_env(SERVER, &["--redis", &url], &env);
    let b = ca.start_server_with_env(SERVER, &["--redis", &url], &env);
    let (passed, report) = run_scaleout_js(
        &format!("{}/hubs/test", a.base_url()),
        &format!("{}/hubs/test", b.base_url()),
        "json",
        &mut redis,
        &[("NODE_EXTRA_CA_CERTS", &trust)],
    );
    // Shown by the test harness when the test fails.
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    assert!(
        passed,
        "the JS client failed scale-out scenarios over rediss://"
    );
    assert!(report.contains("# pass 8"), "expected 8 passing scenarios");
}

/// A node whose `SSL_CERT_FILE` does not hold the CA of Redis' certificate
/// does not join: it exits at start with the certificate error.
#[test]
fn a_node_refuses_a_rediss_server_it_does_not_trust() {
    let ca = TestCa::new();
    let redis = RedisProcess::start_tls(&ca);
    let stranger = TestCa::new();
    let output = std::process::Command::new(SERVER)
        .args(["--bind", "127.0.0.1:0", "--redis", &redis.url()])
        .env("SSL_CERT_FILE", ca_env(&stranger))
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("conformance-server runs");
    assert!(
        !output.status.success(),
        "the node joined an untrusted Redis"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("certificate"),
        "expected a certificate error, got {stderr}"
    );
    // The same Redis over plain TCP is not served either (TLS only).
    let plain = redis.url().replacen("rediss://", "redis://", 1);
    let output = std::process::Command::new(SERVER)
        .args(["--bind", "127.0.0.1:0", "--redis", &plain])
        .output()
        .expect("conformance-server runs");
    assert!(!output.status.success(), "the node joined over plain TCP");
}

/// Whether the server closes `stream` within `limit` (EOF, a reset, or a
/// TLS close), rather than keeping it open.
fn closed_within(stream: &mut impl std::io::Read, limit: Duration) -> bool {
    let started = std::time::Instant::now();
    let mut buffer = [0_u8; 256];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if started.elapsed() > limit {
                    return false;
                }
            }
            Err(_) => return true,
        }
    }
}

/// After the handshake, half a request line and then silence: the
/// header-read timeout of the plain-HTTP server applies over TLS too.
#[test]
fn a_tls_client_that_sends_half_a_request_is_disconnected() {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &["--header-read-timeout-ms", "500"]);
    let address = server.base_url().trim_start_matches("https://").to_owned();
    let mut socket = std::net::TcpStream::connect(&address).expect("the port accepts TCP");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    let mut session =
        hub_tests::tls::client_session(ca.ca_cert_file(), "127.0.0.1").expect("a TLS session");
    let mut tls = rustls::Stream::new(&mut session, &mut socket);
    tls.write_all(b"GET /hubs/test/negotiate HTTP/1.1\r\nHost: 127")
        .expect("the handshake completes and the bytes are written");
    assert!(
        closed_within(&mut tls, Duration::from_secs(10)),
        "the server kept a stalled TLS connection open"
    );
}

/// A client that opens TCP and never says hello is disconnected after the
/// TLS handshake timeout (10 s), not kept for ever.
#[test]
fn a_client_that_never_starts_the_handshake_is_disconnected() {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &[]);
    let address = server.base_url().trim_start_matches("https://").to_owned();
    let mut socket = std::net::TcpStream::connect(&address).expect("the port accepts TCP");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a read timeout");
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut socket, Duration::from_secs(30)),
        "the server kept a silent connection open"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed after {:?}, before the handshake timeout",
        started.elapsed()
    );
}

/// Runs `clock-client --url hub` with `SSL_CERT_FILE=trust` (and no
/// `SSL_CERT_DIR`) for at most `limit`, until its output (stdout and
/// stderr) contains `wanted`; returns that output.
fn clock_client_output(hub: &str, trust: &str, wanted: &str, limit: Duration) -> String {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(clock_demo_binary("clock-client"))
        .args(["--url", hub])
        .env("SSL_CERT_FILE", trust)
        .env_remove("SSL_CERT_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("clock-client starts");
    let (lines, received) = std::sync::mpsc::channel::<String>();
    for pipe in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let deadline = std::time::Instant::now() + limit;
    let mut output = String::new();
    while !output.contains(wanted) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    output
}

/// The "done when": `clock-client` shows the time from an
/// `https://` clock-server whose certificate comes from `SSL_CERT_FILE`
/// (over wss after an https negotiate), and refuses it with the
/// certificate error when `SSL_CERT_FILE` names another CA.
#[test]
fn clock_client_shows_the_time_over_https_trusting_ssl_cert_file() {
    let ca = TestCa::new();
    let binary = clock_demo_binary("clock-server");
    let server = ca.start_server(binary.to_str().expect("a UTF-8 path"), &[]);
    let hub = format!("{}/hubs/clock", server.base_url());
    let output = clock_client_output(&hub, &ca_env(&ca), "the server's time is", WAIT);
    assert!(
        output.contains(&format!("connected to {hub}")) && output.contains("the server's time is"),
        "clock-client did not show the time over https: {output}"
    );
    let stranger = TestCa::new();
    let output = clock_client_output(&hub, &ca_env(&stranger), "refused", WAIT);
    assert!(
        output.contains("certificate") && output.contains("refused"),
        "clock-client did not refuse an untrusted certificate clearly: {output}"
    );
}

const WAIT: Duration = Duration::from_secs(20);
