//! The Server-Sent Events and Long Polling send buffers are bounded in
//! bytes (`transport_max_buffer_size`, 64 KiB as ASP.NET Core's
//! `TransportMaxBufferSize`), not only in events or by a fixed constant:
//! over real sockets, a client that stops taking what the server sends
//! while messages are sent to it gets, once it takes them again, about the
//! bound's worth plus what the kernel and hyper held, then a clean close
//! (the slow-consumer policy), and never a server that pins more for it.
#![allow(clippy::unwrap_used)]

use hub_tests::ServerProcess;
use hub_tests::conformance::PATIENCE;
use hub_tests::stalled::{RawConnection, receive_count};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_stops_reading_pins_a_bounded_number_of_bytes() {
    const MESSAGE: usize = 1024 * 1024;
    const MESSAGES: usize = 40;
    let server = ServerProcess::start(SERVER, &["--max-message-size", "2097152"]);
    let host = server.base_url().trim_start_matches("http://").to_owned();
    let stalled = RawConnection::negotiate(&host).await;

    // The stalled client: an SSE GET on a socket with a small receive
    // buffer, so that the server, not the kernel, holds what it does not
    // read.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut events = socket.connect(host.parse().unwrap()).await.unwrap();
    events
        .write_all(
            stalled
                .get_request("Accept: text/event-stream\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    while !String::from_utf8_lossy(&received).contains(":\r\n") {
        let read = tokio::time::timeout(PATIENCE, events.read(&mut buffer))
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
    stalled.post_json_handshake().await;

    // 40 messages of 1 MiB to the stalled connection, each answered before
    // the next.
    stalled.flood(MESSAGES, MESSAGE).await;

    // Now the stalled client reads what reached it, to the end of the
    // response (the server closed it as a slow consumer).
    loop {
        match tokio::time::timeout(PATIENCE, events.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!(
                "the stalled SSE connection was not closed ({} bytes read)",
                received.len()
            ),
        }
    }
    let delivered = receive_count(&String::from_utf8_lossy(&received));
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

/// A Long Polling client that stops polling while 250 messages of 10 kB
/// are sent to it: the server buffers at most `transport_max_buffer_size`
/// (64 KiB: six of them) for its next poll, where a fixed 1 MiB bound held
/// about a hundred; the rest waits in the outbound queue until the
/// slow-consumer policy closes the connection, cleanly: the client's polls
/// get what was buffered, the Close message, then 204 or 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_polling_client_that_stops_polling_pins_a_bounded_number_of_bytes() {
    const MESSAGE: usize = 10_000;
    const MESSAGES: usize = 250;
    let server = ServerProcess::start(SERVER, &[]);
    let host = server.base_url().trim_start_matches("http://").to_owned();
    let stalled = RawConnection::negotiate(&host).await;
    let (status, _) = stalled.poll().await;
    assert_eq!(status, 200, "the first poll starts the connection");
    stalled.post_json_handshake().await;

    stalled.flood(MESSAGES, MESSAGE).await;

    let (status, first) = stalled.poll().await;
    assert_eq!(status, 200, "the first poll after the flood gets data");
    let in_first_poll = receive_count(&first);
    let mut delivered = in_first_poll;
    let mut closed_with_message = first.contains("\"type\":7");
    let mut polls = 1;
    while !closed_with_message {
        let (status, body) = stalled.poll().await;
        polls += 1;
        assert_eq!(
            status, 200,
            "the polls of a connection closed as a slow consumer get data up to its Close \
             message: {body}"
        );
        delivered += receive_count(&body);
        closed_with_message = body.contains("\"type\":7");
        assert!(
            polls < 1000,
            "a connection closed as a slow consumer sends its Close message"
        );
    }
    let (status, body) = stalled.poll().await;
    assert!(
        status == 204 || status == 404,
        "after its Close message the connection is over: a poll gets 204 (or 404 once it is \
         forgotten), got {status}: {body}"
    );
    eprintln!(
        "a stalled Long Polling client got {in_first_poll} messages of 10 kB in its first poll, \
         {delivered} of {MESSAGES} in {polls} polls"
    );
    assert!(
        (1..=7).contains(&in_first_poll),
        "a client that stopped polling has at most the 64 KiB send buffer \
         (transport_max_buffer_size) waiting for its next poll, six or seven 10 kB messages: \
         its first poll got {in_first_poll} (a fixed 1 MiB bound held about a hundred)"
    );
    assert!(
        delivered < MESSAGES,
        "a client that stopped polling is closed as a slow consumer once its send buffer and \
         its outbound queue are full ({delivered} of {MESSAGES} messages reached it)"
    );
    assert!(server.terminate(), "the server stops cleanly");
}
