//! A minimal SignalR peer for client tests: a hand-written negotiate
//! responder and a tokio-tungstenite WebSocket server on 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used, clippy::result_large_err)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// One recorded HTTP request (negotiate or WebSocket upgrade).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers negotiate request number `n` (from 0).
pub type Negotiator = Arc<dyn Fn(usize, &Recorded) -> (u16, String) + Send + Sync>;

/// A negotiate answer for connection `n`: id `cid-n`, token `tok-n`.
pub fn standard_negotiate(n: usize) -> (u16, String) {
    (
        200,
        json!({
            "negotiateVersion": 1,
            "connectionId": format!("cid-{n}"),
            "connectionToken": format!("tok-{n}"),
            "availableTransports": [
                {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
                {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]}
            ]
        })
        .to_string(),
    )
}

pub struct MockServer {
    pub port: u16,
    pub negotiates: Arc<Mutex<Vec<Recorded>>>,
    pub sockets: mpsc::UnboundedReceiver<(Recorded, Peer)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    pub async fn start() -> MockServer {
        Self::with_negotiator(Arc::new(|n, _| standard_negotiate(n))).await
    }

    pub async fn with_negotiator(negotiator: Negotiator) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on_listener(listener, negotiator)
    }

    pub fn on_listener(listener: TcpListener, negotiator: Negotiator) -> MockServer {
        let port = listener.local_addr().unwrap().port();
        let negotiates = Arc::new(Mutex::new(Vec::new()));
        let (socket_tx, sockets) = mpsc::unbounded_channel();
        let recorded = negotiates.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let negotiator = negotiator.clone();
                let recorded = recorded.clone();
                let socket_tx = socket_tx.clone();
                tokio::spawn(async move {
                    serve(stream, negotiator, recorded, socket_tx).await;
                });
            }
        });
        MockServer {
            port,
            negotiates,
            sockets,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn negotiate_count(&self) -> usize {
        self.negotiates.lock().unwrap().len()
    }

    /// The next WebSocket the client opens.
    pub async fn accept(&mut self) -> (Recorded, Peer) {
        tokio::time::timeout(Duration::from_secs(10), self.sockets.recv())
            .await
            .expect("the client opened no WebSocket")
            .expect("server stopped")
    }

    /// The next WebSocket, handshake done.
    pub async fn accept_connected(&mut self) -> (Recorded, Peer) {
        let (request, mut peer) = self.accept().await;
        peer.handshake().await;
        (request, peer)
    }
}

async fn serve(
    stream: TcpStream,
    negotiator: Negotiator,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    socket_tx: mpsc::UnboundedSender<(Recorded, Peer)>,
) {
    let mut head = [0u8; 4];
    loop {
        match stream.peek(&mut head).await {
            Ok(n) if n >= 4 => break,
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    if &head == b"POST" {
        answer_negotiate(stream, negotiator, recorded).await;
        return;
    }
    let captured = Arc::new(Mutex::new(None));
    let capture = captured.clone();
    let callback = move |request: &Request, response: Response| {
        *capture.lock().unwrap() = Some(Recorded {
            method: request.method().to_string(),
            target: request.uri().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        });
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let request = captured.lock().unwrap().take().unwrap();
    let _ = socket_tx.send((
        request,
        Peer {
            ws,
            records: VecDeque::new(),
            binary_records: VecDeque::new(),
        },
    ));
}

async fn answer_negotiate(
    mut stream: TcpStream,
    negotiator: Negotiator,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 1024];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&data).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let request = Recorded {
        method,
        target,
        headers,
    };
    let n = {
        let mut recorded = recorded.lock().unwrap();
        recorded.push(request.clone());
        recorded.len() - 1
    };
    let (status, body) = negotiator(n, &request);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The server side of one WebSocket, speaking JSON records.
pub struct Peer {
    pub ws: WebSocketStream<TcpStream>,
    records: VecDeque<Value>,
    binary_records: VecDeque<Vec<u8>>,
}

impl Peer {
    /// Reads the handshake request and answers `{}`.
    pub async fn handshake(&mut self) {
        let request = self.next_frame().await.expect("handshake request");
        assert_eq!(request, b"{\"protocol\":\"json\",\"version\":1}\x1e");
        self.send_text("{}\u{1e}").await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// Sends one JSON record.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&format!("{value}\u{1e}")).await;
    }

    /// The bytes of the next data frame, `None` once the socket closed.
    pub async fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("nothing from the client within 10 s");
            match message {
                Some(Ok(Message::Text(text))) => return Some(text.as_bytes().to_vec()),
                Some(Ok(Message::Binary(bytes))) => return Some(bytes.to_vec()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON record from the client, `None` once the socket closed.
    pub async fn recv(&mut self) -> Option<Value> {
        while self.records.is_empty() {
            let frame = self.next_frame().await?;
            assert_eq!(frame.last(), Some(&0x1e), "records end with RS");
            for record in frame.split(|&b| b == 0x1e).filter(|r| !r.is_empty()) {
                self.records
                    .push_back(serde_json::from_slice(record).expect("valid JSON record"));
            }
        }
        self.records.pop_front()
    }

    /// The next record that is not a Ping.
    pub async fn recv_non_ping(&mut self) -> Option<Value> {
        loop {
            let record = self.recv().await?;
            if record["type"] != 6 {
                return Some(record);
            }
        }
    }

    /// Reads the MessagePack handshake request and answers `{}`.
    pub async fn handshake_msgpack(&mut self) {
        let request = self.next_frame().await.expect("handshake request");
        assert_eq!(request, b"{\"protocol\":\"messagepack\",\"version\":1}\x1e");
        self.ws
            .send(Message::binary(b"{}\x1e".to_vec()))
            .await
            .unwrap();
    }

    /// Sends one MessagePack message: `body` behind its varint length.
    pub async fn send_msgpack(&mut self, body: &[u8]) {
        let mut frame = Vec::new();
        let mut len = body.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                frame.push(byte);
                break;
            }
            frame.push(byte | 0x80);
        }
        frame.extend_from_slice(body);
        self.ws.send(Message::binary(frame)).await.unwrap();
    }

    /// The body of the next MessagePack message from the client, `None`
    /// once the socket closed.
    pub async fn recv_msgpack(&mut self) -> Option<Vec<u8>> {
        while self.binary_records.is_empty() {
            let frame = self.next_frame().await?;
            let mut rest = &frame[..];
            while !rest.is_empty() {
                let mut len = 0usize;
                let mut shift = 0;
                loop {
                    let byte = rest[0];
                    rest = &rest[1..];
                    len |= usize::from(byte & 0x7f) << shift;
                    shift += 7;
                    if byte & 0x80 == 0 {
                        break;
                    }
                }
                self.binary_records.push_back(rest[..len].to_vec());
                rest = &rest[len..];
            }
        }
        self.binary_records.pop_front()
    }

    /// The next MessagePack message that is not a Ping (`[6]`).
    pub async fn recv_msgpack_non_ping(&mut self) -> Option<Vec<u8>> {
        loop {
            let body = self.recv_msgpack().await?;
            if body != [0x91, 0x06] {
                return Some(body);
            }
        }
    }

    /// Waits until the client closes the socket; returns the records it
    /// sent meanwhile.
    pub async fn until_closed(&mut self) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(record) = self.recv().await {
            seen.push(record);
        }
        seen
    }
}
