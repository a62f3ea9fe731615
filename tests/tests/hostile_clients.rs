//! What a hostile or unlucky client can no longer do to `conformance-server`,
//! over real sockets (raw TCP where a well-behaved client library would
//! not misbehave): half-sent HTTP requests are disconnected by the
//! header-read timeout, a connection token only works for the user who
//! negotiated it (on every transport), a client that reads is never closed
//! as a slow consumer however fast it sends, and a protocol violation
//! reaches the client as a Close message and a WebSocket close code before
//! the socket closes.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use hub_tests::ServerProcess;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(20);

const RS: char = '\u{1e}';

fn host(server: &ServerProcess) -> String {
    server.base_url().trim_start_matches("http://").to_owned()
}

/// Negotiates (version 1) as the user of `token`; returns the negotiate
/// document.
async fn negotiate_document(host: &str, token: &str) -> serde_json::Value {
    let (status, body) = hub_tests::raw_http(
        host,
        &format!(
            "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "negotiate answers 200: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Negotiates (version 1) as the user of `token`; returns the connection
/// token.
async fn negotiate(host: &str, token: &str) -> String {
    let json = negotiate_document(host, token).await;
    json["connectionToken"].as_str().unwrap().to_owned()
}

/// Sends the JSON handshake and an Invocation of `target` (id "1", no
/// arguments) on `socket`; returns every text frame received up to the
/// answer to it.
async fn handshake_and_invoke(socket: &mut WebSocket, target: &str) -> String {
    socket
        .send(Message::text(format!(
            "{{\"protocol\":\"json\",\"version\":1}}{RS}\
             {{\"type\":1,\"invocationId\":\"1\",\"target\":\"{target}\",\"arguments\":[]}}{RS}"
        )))
        .await
        .unwrap();
    let mut received = String::new();
    while !received.contains("\"invocationId\":\"1\"") {
        match tokio::time::timeout(PATIENCE, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => received.push_str(&text),
            other => panic!("no answer to {target}: {other:?}"),
        }
    }
    received
}

/// Whether the server has closed `stream` (EOF or reset) within `limit`;
/// bytes the server sends meanwhile (an error answer) are skipped.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Defect 1: 200 connections that each send half a request line (and one
/// that sends nothing) are all disconnected once the header-read timeout
/// passes, while complete requests are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_requests_are_disconnected_by_the_header_read_timeout() {
    let server = ServerProcess::start(SERVER, &["--header-read-timeout-ms", "500"]);
    let host = host(&server);
    let mut partial = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        stream
            .write_all(b"GET /hubs/test/negotiate?negotiateVersion=1 HTT")
            .await
            .unwrap();
        partial.push(stream);
    }
    let mut silent = TcpStream::connect(&host).await.unwrap();
    let started = Instant::now();

    // A whole request is served meanwhile.
    let token = negotiate(&host, "user-ann").await;
    assert!(!token.is_empty(), "a complete negotiate is answered");

    for (index, stream) in partial.iter_mut().enumerate() {
        assert!(
            closed_within(stream, PATIENCE).await,
            "half-sent request {index} is disconnected after the 500 ms header-read timeout"
        );
    }
    assert!(
        closed_within(&mut silent, PATIENCE).await,
        "a connection that sends nothing is disconnected after the header-read timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not disconnected before the timeout ({:?})",
        started.elapsed()
    );
    assert!(server.terminate(), "the server stops cleanly");
}

/// Defect 4: a connection token negotiated by `ann` is refused with 403 on
/// every transport when the request comes from `bob` (and stays usable by
/// `ann`, whose connection then says it is hers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_token_works_only_for_the_user_who_negotiated_it() {
    let server = ServerProcess::start(SERVER, &[]);
    let host = host(&server);

    // WebSockets: refused for bob, then accepted for ann.
    let token = negotiate(&host, "user-ann").await;
    let url = format!("ws://{host}/hubs/test?id={token}&access_token=user-bob");
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(
            response.status(),
            403,
            "bob's WebSocket with ann's connection token is refused with 403"
        ),
        Err(other) => panic!("bob's WebSocket with ann's token failed oddly: {other}"),
        Ok(_) => panic!("bob's WebSocket with ann's connection token was accepted"),
    }
    let url = format!("ws://{host}/hubs/test?id={token}&access_token=user-ann");
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ann's own token still works after bob's attempt");
    let received = handshake_and_invoke(&mut socket, "Whoami").await;
    assert!(
        received.contains("\"result\":\"ann\""),
        "the connection is ann's: {received}"
    );

    // Server-Sent Events, Long Polling and the POST of each: refused for bob.
    for (transport, request) in [
        (
            "Server-Sent Events",
            "GET /hubs/test?id={token} HTTP/1.1\r\nAccept: text/event-stream\r\n",
        ),
        ("Long Polling", "GET /hubs/test?id={token} HTTP/1.1\r\n"),
        (
            "a POST before the transport started",
            "POST /hubs/test?id={token} HTTP/1.1\r\nContent-Length: 0\r\n",
        ),
    ] {
        let token = negotiate(&host, "user-ann").await;
        let request = request.replace("{token}", &token);
        let (status, body) = hub_tests::raw_http(
            &host,
            &format!(
                "{request}Host: {host}\r\nAuthorization: Bearer user-bob\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(
            status, 403,
            "{transport} with ann's connection token is refused for bob with 403: {body}"
        );
        // An anonymous request is someone else too.
        let (status, _) = hub_tests::raw_http(
            &host,
            &format!("{request}Host: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(
            status, 403,
            "{transport} with ann's connection token is refused without a token"
        );
    }
    let _ = socket.close(None).await;
    drop(socket);
    assert!(server.terminate(), "the server stops cleanly");
}

type WebSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket without negotiate and completes the JSON handshake.
async fn json_websocket(host: &str) -> WebSocket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{host}/hubs/test"))
        .await
        .unwrap();
    socket
        .send(Message::text(format!(
            "{{\"protocol\":\"json\",\"version\":1}}{RS}"
        )))
        .await
        .unwrap();
    match tokio::time::timeout(PATIENCE, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => assert_eq!(text.as_str(), format!("{{}}{RS}")),
        other => panic!("no handshake response: {other:?}"),
    }
    socket
}

/// Defect 2: ten text frames of 1,000 `Echo` invocations each, sent back to
/// back while the client reads all the time: every one of the 10,000
/// answers arrives and the connection stays open (the server slows the
/// client's sending down instead of closing it as a slow consumer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_client_that_reads_is_slowed_down_not_closed() {
    let server = ServerProcess::start(SERVER, &[]);
    let host = host(&server);
    let (mut sender, mut receiver) = json_websocket(&host).await.split();
    const FRAMES: usize = 10;
    const PER_FRAME: usize = 1_000;
    let reader = tokio::spawn(async move {
        let mut answers = 0;
        let mut closed_by = None;
        while answers < FRAMES * PER_FRAME {
            match tokio::time::timeout(PATIENCE, receiver.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    for record in text.split(RS).filter(|r| !r.is_empty()) {
                        if record.contains("\"type\":3") {
                            answers += 1;
                        } else if record.contains("\"type\":7") {
                            closed_by = Some(record.to_owned());
                        }
                    }
                    if closed_by.is_some() {
                        break;
                    }
                }
                other => {
                    closed_by = Some(format!("{other:?}"));
                    break;
                }
            }
        }
        (answers, closed_by, receiver)
    });
    for frame in 0..FRAMES {
        let mut text = String::new();
        for i in 0..PER_FRAME {
            let id = frame * PER_FRAME + i;
            text.push_str(&format!(
                "{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"Echo\",\"arguments\":[\"message {id}\"]}}{RS}"
            ));
        }
        sender.send(Message::text(text)).await.unwrap();
    }
    let (answers, closed_by, receiver) = reader.await.unwrap();
    assert_eq!(
        closed_by, None,
        "a client that reads is never closed (got {answers} answers first)"
    );
    assert_eq!(
        answers,
        FRAMES * PER_FRAME,
        "every invocation of a fast client that reads is answered"
    );
    // Still open and serving.
    let mut socket = sender.reunite(receiver).unwrap();
    socket
        .send(Message::text(format!(
            "{{\"type\":1,\"invocationId\":\"last\",\"target\":\"Add\",\"arguments\":[2,3]}}{RS}"
        )))
        .await
        .unwrap();
    match tokio::time::timeout(PATIENCE, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => assert!(
            text.contains("\"result\":5"),
            "the connection still answers: {text}"
        ),
        other => panic!("the connection no longer answers: {other:?}"),
    }
    assert!(server.terminate(), "the server stops cleanly");
}

/// Reads until the server's Close frame; returns the hub messages
/// received before it and the close code.
async fn until_close_frame(socket: &mut WebSocket) -> (String, u16) {
    let mut received = String::new();
    loop {
        match tokio::time::timeout(PATIENCE, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => received.push_str(&text),
            Ok(Some(Ok(Message::Close(Some(frame))))) => return (received, frame.code.into()),
            Ok(Some(Ok(_))) => {}
            other => {
                panic!("the server did not close with a close frame: {other:?} after {received:?}")
            }
        }
    }
}

/// Keeps sending `frames` frames of junk (the server stops reading after
/// the violation; it must not reset the connection over unread bytes).
fn send_more_behind(
    mut sender: futures_util::stream::SplitSink<WebSocket, Message>,
    frames: usize,
) {
    tokio::spawn(async move {
        for _ in 0..frames {
            let junk = Message::text(format!("{}{RS}", "x".repeat(16 * 1024)));
            if sender.send(junk).await.is_err() {
                return;
            }
        }
    });
}

/// Defect 3: a protocol violation reaches the client as a hub Close message
/// with the .NET error text and then a WebSocket close frame with 1002 —
/// even when the client has sent more that the server never reads (no TCP
/// reset destroys them). An oversized message gets 1009, a refused
/// handshake its error response and 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_are_told_with_a_close_message_and_their_close_code() {
    let server = ServerProcess::start(SERVER, &[]);
    let host = host(&server);

    // Invalid JSON, with plenty of unread bytes behind it.
    for _ in 0..5 {
        let socket = json_websocket(&host).await;
        let (mut sender, receiver) = socket.split();
        sender
            .send(Message::text(format!("{{not json{RS}")))
            .await
            .unwrap();
        send_more_behind(sender, 40);
        let mut receiver = receiver;
        let (received, code) = loop_until_close(&mut receiver).await;
        assert!(
            received.contains("\"type\":7")
                && received.contains("Connection closed with an error."),
            "the client gets a Close message with the error text: {received:?}"
        );
        assert_eq!(
            code, 1002,
            "a protocol error closes the WebSocket with 1002"
        );
    }

    // A record larger than the 32 KB receive limit.
    let mut socket = json_websocket(&host).await;
    let big = format!(
        "{{\"type\":1,\"target\":\"Echo\",\"arguments\":[\"{}\"]}}{RS}",
        "y".repeat(40 * 1024)
    );
    socket.send(Message::text(big)).await.unwrap();
    let (received, code) = until_close_frame(&mut socket).await;
    assert!(
        received.contains("\"type\":7"),
        "an oversized message is answered with a Close message: {received:?}"
    );
    assert_eq!(
        code, 1009,
        "an oversized message closes the WebSocket with 1009"
    );

    // A refused handshake.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{host}/hubs/test"))
        .await
        .unwrap();
    socket
        .send(Message::text(format!(
            "{{\"protocol\":\"nonsense\",\"version\":1}}{RS}"
        )))
        .await
        .unwrap();
    let (received, code) = until_close_frame(&mut socket).await;
    assert!(
        received.contains("\"error\":\"The protocol 'nonsense' is not supported.\""),
        "a refused handshake gets its error response: {received:?}"
    );
    assert_eq!(
        code, 1002,
        "a refused handshake closes the WebSocket with 1002"
    );
    assert!(server.terminate(), "the server stops cleanly");
}

/// [`until_close_frame`] for a receiving half.
async fn loop_until_close(
    receiver: &mut futures_util::stream::SplitStream<WebSocket>,
) -> (String, u16) {
    let mut received = String::new();
    loop {
        match tokio::time::timeout(PATIENCE, receiver.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => received.push_str(&text),
            Ok(Some(Ok(Message::Close(Some(frame))))) => return (received, frame.code.into()),
            Ok(Some(Ok(_))) => {}
            other => {
                panic!("the server did not close with a close frame: {other:?} after {received:?}")
            }
        }
    }
}

/// `--allowed-origins`: a request whose `Origin` is not in the list is
/// refused with 403 on negotiate, the WebSocket upgrade, Server-Sent Events,
/// Long Polling and POST; an allowed origin and requests without `Origin`
/// (non-browser clients) are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_not_allowed_are_refused_on_every_endpoint() {
    let server = ServerProcess::start(
        SERVER,
        &[
            "--allowed-origins",
            "https://app.example.com,http://localhost:8080",
        ],
    );
    let host = host(&server);
    let negotiate_with = |origin: Option<&str>| {
        let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
        format!(
            "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {host}\r\n{origin}\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, body) =
        hub_tests::raw_http(&host, &negotiate_with(Some("https://evil.example"))).await;
    assert_eq!(
        status, 403,
        "negotiate from a foreign origin is refused: {body}"
    );
    let (status, _) =
        hub_tests::raw_http(&host, &negotiate_with(Some("https://app.example.com"))).await;
    assert_eq!(status, 200, "negotiate from an allowed origin is served");
    let (status, _) =
        hub_tests::raw_http(&host, &negotiate_with(Some("http://localhost:8080"))).await;
    assert_eq!(
        status, 200,
        "negotiate from the second allowed origin is served"
    );
    let (status, _) = hub_tests::raw_http(&host, &negotiate_with(None)).await;
    assert_eq!(
        status, 200,
        "negotiate without Origin (not a browser) is served"
    );

    // The WebSocket upgrade: refused from a foreign origin, served from an
    // allowed one.
    let upgrade = |origin: &str| {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{host}/hubs/test"),
            )
            .unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(upgrade("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(
            response.status(),
            403,
            "a WebSocket upgrade from a foreign origin is refused with 403"
        ),
        Err(other) => panic!("the foreign WebSocket failed oddly: {other}"),
        Ok(_) => panic!("a WebSocket upgrade from a foreign origin was accepted"),
    }
    tokio_tungstenite::connect_async(upgrade("https://app.example.com"))
        .await
        .expect("a WebSocket upgrade from an allowed origin is accepted");

    // The HTTP transports, with a token negotiated without Origin.
    for (transport, request) in [
        (
            "Server-Sent Events",
            "GET /hubs/test?id={token} HTTP/1.1\r\nAccept: text/event-stream\r\n",
        ),
        ("Long Polling", "GET /hubs/test?id={token} HTTP/1.1\r\n"),
        (
            "POST",
            "POST /hubs/test?id={token} HTTP/1.1\r\nContent-Length: 0\r\n",
        ),
    ] {
        let (_, body) = hub_tests::raw_http(&host, &negotiate_with(None)).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let token = json["connectionToken"].as_str().unwrap();
        let request = request.replace("{token}", token);
        let (status, _) = hub_tests::raw_http(
            &host,
            &format!(
                "{request}Host: {host}\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(
            status, 403,
            "{transport} from a foreign origin is refused with 403"
        );
    }
    assert!(server.terminate(), "the server stops cleanly");
}

/// Limits in bytes: a client that stops reading while 300 messages of
/// 200 KB are sent to it is closed once about 1 MiB is queued for it (plus
/// what the kernel's socket buffers hold), not after the 1,024 queued
/// messages (200 MB) a message-count bound alone allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_of_large_messages_is_bounded_in_bytes() {
    let server = ServerProcess::start(SERVER, &["--max-message-size", "300000"]);
    let host = host(&server);
    let mut stalled = json_websocket(&host).await;
    stalled
        .send(Message::text(format!(
            "{{\"type\":1,\"invocationId\":\"id\",\"target\":\"GetConnectionId\",\"arguments\":[]}}{RS}"
        )))
        .await
        .unwrap();
    let stalled_id = match tokio::time::timeout(PATIENCE, stalled.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            let record = text.trim_end_matches(RS);
            let json: serde_json::Value = serde_json::from_str(record).unwrap();
            json["result"].as_str().unwrap().to_owned()
        }
        other => panic!("no connection id: {other:?}"),
    };

    // The sender sends 300 messages of 200 KB to the stalled connection,
    // reading its own answers.
    const MESSAGES: usize = 300;
    let mut sender = json_websocket(&host).await;
    let blob = "z".repeat(200 * 1024);
    for i in 0..MESSAGES {
        sender
            .send(Message::text(format!(
                "{{\"type\":1,\"invocationId\":\"{i}\",\"target\":\"SendToConnection\",\"arguments\":[\"{stalled_id}\",\"{blob}\"]}}{RS}"
            )))
            .await
            .unwrap();
        match tokio::time::timeout(PATIENCE, sender.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                assert!(
                    text.contains("\"type\":3"),
                    "the sender is answered: {text}"
                );
            }
            other => panic!("the sender is not answered: {other:?}"),
        }
    }

    // Now the stalled client reads what reached it: a bounded number of
    // messages, then the end of the connection.
    let mut received = 0;
    loop {
        match tokio::time::timeout(PATIENCE, stalled.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                received += text.matches("\"target\":\"Receive\"").count();
            }
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) => break,
            Err(_) => panic!("the stalled connection was not closed ({received} messages read)"),
        }
    }
    assert!(
        received < 120,
        "a slow consumer is closed after about 1 MiB queued plus socket buffers, \
         not after hundreds of 200 KB messages ({received} of {MESSAGES} reached it)"
    );
    assert!(server.terminate(), "the server stops cleanly");
}

/// `--max-connections 2`: a third connection is refused with 503 at
/// negotiate and at the WebSocket upgrade, and served again once one of
/// the two has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_with_503() {
    let server = ServerProcess::start(SERVER, &["--max-connections", "2"]);
    let host = host(&server);
    let first = json_websocket(&host).await;
    let _second = json_websocket(&host).await;
    let negotiate = format!(
        "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {host}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = hub_tests::raw_http(&host, &negotiate).await;
    assert_eq!(
        status, 503,
        "negotiate beyond the connection limit gets 503: {body}"
    );
    match tokio_tungstenite::connect_async(format!("ws://{host}/hubs/test")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(
            response.status(),
            503,
            "a WebSocket beyond the connection limit gets 503"
        ),
        other => panic!("a WebSocket beyond the limit was not refused: {other:?}"),
    }
    drop(first);
    let started = Instant::now();
    loop {
        let (status, _) = hub_tests::raw_http(&host, &negotiate).await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "a connection is served again once one of the two ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.terminate(), "the server stops cleanly");
}

/// Secrets stay secret: with every log level on (`RUST_LOG=trace`), the
/// server's log never contains an access token (header or query) nor a
/// connection token, a refused token is not echoed in the 401 answer, and
/// what clients learn about a connection is its id, never its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_and_connection_tokens_never_reach_logs_or_other_clients() {
    use std::io::BufRead as _;
    let log_path = std::env::temp_dir().join(format!("hostile-clients-log-{}", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(SERVER)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let host = line
        .trim()
        .trim_start_matches("listening on http://")
        .to_owned();

    let json = negotiate_document(&host, "user-s3cr3t").await;
    let connection_id = json["connectionId"].as_str().unwrap().to_owned();
    let token = json["connectionToken"].as_str().unwrap().to_owned();
    assert_ne!(connection_id, token, "the connection token is not the id");

    let url = format!("ws://{host}/hubs/test?id={token}&access_token=user-s3cr3t");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let received = handshake_and_invoke(&mut socket, "GetConnectionId").await;
    assert!(
        received.contains(&format!("\"result\":\"{connection_id}\"")) && !received.contains(&token),
        "a client learns connection ids, never connection tokens: {received}"
    );
    // A protocol error, so that the error paths log too.
    socket
        .send(Message::text(format!("{{oops{RS}")))
        .await
        .unwrap();
    let _ = until_close_frame(&mut socket).await;

    // A refused token is not echoed.
    let (status, body) = hub_tests::raw_http(
        &host,
        &format!(
            "POST /hubs/test/negotiate?negotiateVersion=1&access_token=bogus-s3cr3t HTTP/1.1\r\n\
             Host: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        !body.contains("s3cr3t"),
        "the 401 answer does not echo the token: {body}"
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        log.contains(&connection_id),
        "the trace log was written (it names the connection id)"
    );
    // The tokens whole: the user a token names (`s3cr3t` here) is the
    // connection span's `enduser.id`, an identity, not a secret.
    assert!(
        !log.contains("user-s3cr3t") && !log.contains("bogus-s3cr3t"),
        "no access token in the server's log"
    );
    assert!(
        !log.contains(&token),
        "no connection token in the server's log"
    );
}

/// Slowloris on the HTTP transports' POST: a body trickled in one byte at a
/// time is cut off with 408 once the client timeout (here 1 s) passes,
/// whatever its Content-Length promised. (Request lines and headers sent
/// byte by byte are cut off by the header-read timeout, see above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_body_trickled_byte_by_byte_is_cut_off() {
    let server = ServerProcess::start(SERVER, &["--client-timeout-ms", "1000"]);
    let host = host(&server);
    let (_, body) = hub_tests::raw_http(
        &host,
        &format!(
            "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {host}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["connectionToken"].as_str().unwrap().to_owned();
    // The first poll starts the Long Polling connection.
    let (status, _) = hub_tests::raw_http(
        &host,
        &format!("GET /hubs/test?id={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200);

    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /hubs/test?id={token} HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Length: 100000\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let _ = stream.write_all(b"{").await;
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "a POST body trickled byte by byte is cut off after the client timeout"
        );
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a trickled POST body gets 408 Request Timeout: {answer:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not cut off before the client timeout ({:?})",
        started.elapsed()
    );
    assert!(server.terminate(), "the server stops cleanly");
}
