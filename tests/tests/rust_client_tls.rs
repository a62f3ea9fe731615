//! The Rust client's TLS, proxy and redirect paths against the
//! `conformance-server` binary served over https with a throwaway CA
//! ([`TestCa`]): bad certificates are refused with an error naming the
//! host, a CONNECT proxy on loopback carries every transport, a negotiate
//! redirect leads to another host over TLS, and `clock-client` trusts the
//! CA named by `SSL_CERT_FILE`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_runtime::HubErrorKind;
use hub_runtime::client::{HubConnection, TransportType, Transports};
use hub_runtime::protocol::HubProtocol;
use hub_tests::conformance::{ConformanceConnection, PATIENCE, within};
use hub_tests::tls::TestCa;
use hub_tests::{ServerProcess, clock_demo_binary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

fn hub_url(server: &ServerProcess) -> String {
    format!("{}/hubs/test", server.base_url())
}

fn ca_pem(ca: &TestCa) -> Vec<u8> {
    std::fs::read(ca.ca_cert_file()).unwrap()
}

fn only(transport: TransportType) -> Transports {
    Transports {
        web_sockets: transport == TransportType::WebSockets,
        server_sent_events: transport == TransportType::ServerSentEvents,
        long_polling: transport == TransportType::LongPolling,
    }
}

/// The error of a `start()` that must fail.
async fn start_error(builder: hub_runtime::client::HubConnectionBuilder) -> hub_runtime::HubError {
    let connection = builder.build().unwrap();
    tokio::time::timeout(PATIENCE, connection.start())
        .await
        .expect("start() timed out")
        .expect_err("start() must fail")
}

#[tokio::test]
async fn a_certificate_from_an_unknown_issuer_is_refused_naming_the_host() {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &[]);
    let stranger = TestCa::new();
    // Negotiate over https, and a WebSocket opened directly (wss).
    for skip_negotiation in [false, true] {
        let error = start_error(
            HubConnection::builder(hub_url(&server))
                .root_certificates(ca_pem(&stranger))
                .skip_negotiation(skip_negotiation),
        )
        .await;
        let text = error.to_string();
        assert_eq!(error.kind(), HubErrorKind::Transport, "{text}");
        assert!(
            // The stranger CA has the same name as the server's: rustls
            // finds it as the issuer, and its signature does not verify.
            text.contains("The TLS certificate of 127.0.0.1 was refused")
                && (text.contains("UnknownIssuer") || text.contains("BadSignature")),
            "skip_negotiation={skip_negotiation}: {text}"
        );
    }
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_naming_the_host() {
    let ca = TestCa::for_names(&["hub.example.invalid"]);
    let server = ca.start_server(SERVER, &[]);
    for skip_negotiation in [false, true] {
        let error = start_error(
            HubConnection::builder(hub_url(&server))
                .root_certificates(ca_pem(&ca))
                .skip_negotiation(skip_negotiation),
        )
        .await;
        let text = error.to_string();
        assert!(
            text.contains("The TLS certificate of 127.0.0.1 was refused")
                && text.contains("NotValidForName"),
            "skip_negotiation={skip_negotiation}: {text}"
        );
    }
}

/// A CONNECT-only proxy on loopback: it tunnels to the target each
/// request names and records the targets.
struct ConnectProxy {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let record = targets.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(tunnel(client, record.clone()));
            }
        });
        ConnectProxy {
            port,
            targets,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn tunnel(mut client: TcpStream, record: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 8192 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let Some(target) = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split_whitespace().next())
    else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    record.lock().unwrap().push(target.to_owned());
    let Ok(mut server) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

async fn through_a_connect_proxy(transport: TransportType, protocol: HubProtocol) {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &[]);
    let proxy = ConnectProxy::start().await;
    let builder = HubConnection::builder(hub_url(&server))
        .protocol(protocol)
        .transports(only(transport))
        .root_certificates(ca_pem(&ca))
        .proxy(proxy.url());
    let client = ConformanceConnection::new(builder, "proxied").unwrap();
    client.start().await.unwrap();
    assert_eq!(client.connection.transport(), Some(transport));
    let echoed = within("Echo", client.hub.echo("tunneled".to_owned()))
        .await
        .unwrap();
    assert_eq!(echoed, "tunneled");
    client.stop().await;
    let authority = server
        .base_url()
        .strip_prefix("https://")
        .unwrap()
        .to_owned();
    let targets = proxy.targets();
    assert!(
        !targets.is_empty() && targets.iter().all(|t| *t == authority),
        "every request tunneled to {authority}: {targets:?}"
    );
}

#[tokio::test]
async fn a_connect_proxy_carries_websockets() {
    through_a_connect_proxy(TransportType::WebSockets, HubProtocol::Json).await;
}

#[tokio::test]
async fn a_connect_proxy_carries_server_sent_events() {
    through_a_connect_proxy(TransportType::ServerSentEvents, HubProtocol::Json).await;
}

#[tokio::test]
async fn a_connect_proxy_carries_long_polling() {
    through_a_connect_proxy(TransportType::LongPolling, HubProtocol::MessagePack).await;
}

/// Negotiate at one host answers with a redirect (the protocol's `url` +
/// `accessToken`) to another host over TLS: the client follows it and
/// uses the redirect's token there.
#[tokio::test]
async fn a_negotiate_redirect_leads_to_another_host_over_tls() {
    let ca = TestCa::new();
    let server = ca.start_server(SERVER, &[]);
    // Same server, other host name: `localhost` instead of `127.0.0.1`
    // (both are in the certificate).
    let port = server.base_url().rsplit(':').next().unwrap().to_owned();
    let target = format!("https://localhost:{port}/hubs/test");
    let redirects = Arc::new(AtomicUsize::new(0));
    let count = redirects.clone();
    let front = axum::Router::new().route(
        "/hubs/test/negotiate",
        axum::routing::post(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({ "url": target, "accessToken": "user-redirected" });
            async move { axum::Json(body) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_url = format!("http://{}/hubs/test", listener.local_addr().unwrap());
    let front_task = tokio::spawn(async move {
        let _ = axum::serve(listener, front).await;
    });
    let builder = HubConnection::builder(front_url).root_certificates(ca_pem(&ca));
    let client = ConformanceConnection::new(builder, "redirected").unwrap();
    client.start().await.unwrap();
    assert_eq!(redirects.load(Ordering::SeqCst), 1);
    let who = within("Whoami", client.hub.whoami()).await.unwrap();
    assert_eq!(who.as_deref(), Some("redirected"));
    client.stop().await;
    front_task.abort();
}

/// `clock-client --url https://…` shows the time from an https
/// `clock-server`, trusting the CA named by `SSL_CERT_FILE`; with
/// `HTTPS_PROXY`, through that proxy.
async fn clock_client_over_https(proxy: Option<&ConnectProxy>) {
    let ca = TestCa::new();
    let server_binary = clock_demo_binary("clock-server");
    let server = ca.start_server(server_binary.to_str().unwrap(), &[]);
    let url = format!("{}/hubs/clock", server.base_url());
    let mut command = Command::new(clock_demo_binary("clock-client"));
    command
        .args(["--url", &url])
        .env("SSL_CERT_FILE", ca.ca_cert_file())
        .env_remove("SSL_CERT_DIR");
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(name);
    }
    if let Some(proxy) = proxy {
        command.env("HTTPS_PROXY", proxy.url());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = tokio::task::spawn_blocking(move || lines.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("clock-client printed the time over https");
    let parsed: Result<hub_runtime::Timestamp, _> = line.trim().parse();
    assert!(parsed.is_ok(), "a time: {line:?}");
    if let Some(proxy) = proxy {
        let authority = server
            .base_url()
            .strip_prefix("https://")
            .unwrap()
            .to_owned();
        let targets = proxy.targets();
        assert!(
            !targets.is_empty() && targets.iter().all(|t| *t == authority),
            "clock-client tunneled through HTTPS_PROXY to {authority}: {targets:?}"
        );
    }
}

#[tokio::test]
async fn clock_client_trusts_ssl_cert_file() {
    clock_client_over_https(None).await;
}

#[tokio::test]
async fn clock_client_follows_https_proxy() {
    let proxy = ConnectProxy::start().await;
    clock_client_over_https(Some(&proxy)).await;
}
