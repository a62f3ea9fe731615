//! The Server-Sent Events send buffer is bounded in bytes
//! (`transport_max_buffer_size`, 64 KiB as ASP.NET Core's
//! `TransportMaxBufferSize`), not only in events: over real sockets, an SSE
//! client that stops reading while 1 MiB messages are sent to it receives,
//! once it reads again, about one buffered event plus what the kernel and
//! hyper held — not the eight 1 MiB events an event-count bound let the
//! server pin for it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hub_tests::ServerProcess;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(20);

const RS: char = '\u{1e}';

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_stops_reading_pins_a_bounded_number_of_bytes() {
    const MESSAGE: usize = 1024 * 1024;
    const MESSAGES: usize = 40;
    let server = ServerProcess::start(SERVER, &["--max-message-size", "2097152"]);
    let host = server.base_url().trim_start_matches("http://").to_owned();

    let (status, body) = hub_tests::raw_http(
        &host,
        &format!(
            "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {host}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "negotiate answers 200: {body}");
    let negotiated: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = negotiated["connectionToken"].as_str().unwrap().to_owned();
    let connection_id = negotiated["connectionId"].as_str().unwrap().to_owned();

    // The stalled client: an SSE GET on a socket with a small receive
    // buffer, so that the server, not the kernel, holds what it does not
    // read.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(host.parse().unwrap()).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /hubs/test?id={token} HTTP/1.1\r\nHost: {host}\r\n\
                 Accept: text/event-stream\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    while !String::from_utf8_lossy(&received).contains(":\r\n") {
        let read = tokio::time::timeout(PATIENCE, stalled.read(&mut buffer))
            .await
            .expect("the event stream starts within the patience")
            .unwrap();
        assert!(read > 0, "the event stream stays open");
        received.extend_from_slice(&buffer[..read]);
    }
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "the SSE request is answered 200"
    );
    let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
    let (status, body) = hub_tests::raw_http(
        &host,
        &format!(
            "POST /hubs/test?id={token} HTTP/1.1\r\nHost: {host}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{handshake}",
            handshake.len()
        ),
    )
    .await;
    assert_eq!(status, 200, "the handshake POST is accepted: {body}");

    // The sender: 40 messages of 1 MiB to the stalled connection, each
    // answered before the next.
    let (mut sender, _) = tokio_tungstenite::connect_async(format!("ws://{host}/hubs/test"))
        .await
        .unwrap();
    sender.send(Message::text(handshake.clone())).await.unwrap();
    match tokio::time::timeout(PATIENCE, sender.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => assert_eq!(text.as_str(), format!("{{}}{RS}")),
        other => panic!("no handshake response for the sender: {other:?}"),
    }
    let blob = "z".repeat(MESSAGE);
    for i in 0..MESSAGES {
        sender
            .send(Message::text(format!(
                "{{\"type\":1,\"invocationId\":\"{i}\",\"target\":\"SendToConnection\",\"arguments\":[\"{connection_id}\",\"{blob}\"]}}{RS}"
            )))
            .await
            .unwrap();
        match tokio::time::timeout(PATIENCE, sender.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => assert!(
                text.contains("\"type\":3"),
                "the sender is answered: {text}"
            ),
            other => panic!("the sender is not answered: {other:?}"),
        }
    }

    // Now the stalled client reads what reached it, to the end of the
    // response (the server closed it as a slow consumer).
    loop {
        match tokio::time::timeout(PATIENCE, stalled.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!(
                "the stalled SSE connection was not closed ({} bytes read)",
                received.len()
            ),
        }
    }
    let text = String::from_utf8_lossy(&received);
    let delivered = text.matches("\"target\":\"Receive\"").count();
    eprintln!("a stalled SSE client got {delivered} of {MESSAGES} messages of 1 MiB");
    // What reaches it: the kernel's socket buffers (the server's send
    // buffer grows to 4 MiB, tcp_wmem's maximum), the event hyper is
    // writing, and the SSE buffer: one 1 MiB event when empty (5 measured
    // in all). Bounded by events only, the SSE buffer held up to 8 more
    // (12 measured with `transport_max_buffer_size` set to `usize::MAX`).
    assert!(
        delivered <= 8,
        "a stalled SSE client gets at most the 64 KiB send buffer (one 1 MiB event when empty), \
         hyper's and the kernel's buffers, then the end of the stream: {delivered} of {MESSAGES} \
         1 MiB messages reached it (an 8-event bound alone let 8 MiB more wait)"
    );
    assert!(server.terminate(), "the server stops cleanly");
}
