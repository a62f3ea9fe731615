//! The load generator's one client: a minimal WebSocket client over a tokio
//! `TcpStream`, speaking four protocols on top (SignalR JSON, SignalR
//! MessagePack, raw text frames, Socket.IO v5).
//!
//! Every server is measured with this same code, so the client's cost per
//! message is the same whatever the server: frames are parsed in a fixed
//! 4 KiB buffer per connection, and a delivery is found by scanning the
//! frame's bytes for the timestamp marker each payload carries
//! (`@@` + 16 hex digits of the send time + `|`). Scanning instead of
//! decoding counts coalesced records (several hub messages in one frame)
//! correctly, and costs every protocol the same.
//!
//! Client frames are masked with the all-zero key (RFC 6455 requires a
//! key, not a random one from a load generator), so payloads are written
//! as they are.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// The application protocol spoken over the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// SignalR, JSON hub protocol.
    Json,
    /// SignalR, MessagePack hub protocol.
    MsgPack,
    /// Raw text frames (`e…` echo, `b…` broadcast).
    Raw,
    /// Socket.IO v5 over engine.io v4 WebSockets.
    Sio,
}

/// A SignalR Ping in the JSON hub protocol.
const SIGNALR_JSON_PING: &[u8] = b"{\"type\":6}\x1e";
/// A SignalR Ping in the MessagePack hub protocol (length 2, `[6]`).
const SIGNALR_MSGPACK_PING: &[u8] = &[0x02, 0x91, 0x06];

/// The length of a marker: `@@`, 16 hex digits, `|`.
pub const MARKER_LEN: usize = 19;
const READ_BUFFER: usize = 4096;

/// Nanoseconds since the load generator's epoch; marker timestamps.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Writes a payload of `size` bytes (at least [`MARKER_LEN`]) carrying the
/// timestamp `ts`.
fn write_payload(out: &mut Vec<u8>, ts: u64, size: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"@@");
    for shift in (0..16).rev() {
        out.push(HEX[((ts >> (shift * 4)) & 0xf) as usize]);
    }
    out.push(b'|');
    out.resize(out.len() + size.saturating_sub(MARKER_LEN), b'x');
}

fn parse_marker(bytes: &[u8]) -> Option<u64> {
    let hex = bytes.get(2..18)?;
    let mut value = 0u64;
    for &digit in hex {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u64::from(nibble);
    }
    Some(value)
}

fn write_varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn msgpack_str_header(out: &mut Vec<u8>, len: usize) {
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len < 256 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
}

/// Appends a client WebSocket frame (FIN, zero mask key) around `payload`.
fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// Encodes requests of one protocol; reuses its buffers.
#[derive(Debug)]
pub struct Encoder {
    proto: Proto,
    body: Vec<u8>,
    next_id: u64,
}

impl Encoder {
    /// An encoder for `proto`.
    pub fn new(proto: Proto) -> Self {
        Encoder {
            proto,
            body: Vec::with_capacity(64),
            next_id: 1,
        }
    }

    /// Appends the frame of an echo call (`Echo` invocation, `e` frame,
    /// `echo` event with an ack) with a payload of `size` bytes to `out`.
    pub fn echo(&mut self, out: &mut Vec<u8>, ts: u64, size: usize) {
        self.request(out, true, ts, size);
    }

    /// Appends the frame of a broadcast request.
    pub fn broadcast(&mut self, out: &mut Vec<u8>, ts: u64, size: usize) {
        self.request(out, false, ts, size);
    }

    fn request(&mut self, out: &mut Vec<u8>, echo: bool, ts: u64, size: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let body = &mut self.body;
        body.clear();
        let opcode = match self.proto {
            Proto::Json => {
                if echo {
                    body.extend_from_slice(b"{\"type\":1,\"invocationId\":\"");
                    body.extend_from_slice(id.to_string().as_bytes());
                    body.extend_from_slice(b"\",\"target\":\"Echo\",\"arguments\":[\"");
                } else {
                    body.extend_from_slice(
                        b"{\"type\":1,\"target\":\"Broadcast\",\"arguments\":[\"",
                    );
                }
                write_payload(body, ts, size);
                body.extend_from_slice(b"\"]}\x1e");
                1
            }
            Proto::MsgPack => {
                let mut record = Vec::with_capacity(size + 32);
                record.extend_from_slice(&[0x95, 0x01, 0x80]);
                if echo {
                    let id = id.to_string();
                    msgpack_str_header(&mut record, id.len());
                    record.extend_from_slice(id.as_bytes());
                    record.extend_from_slice(&[0xa4]);
                    record.extend_from_slice(b"Echo");
                } else {
                    record.push(0xc0);
                    record.push(0xa9);
                    record.extend_from_slice(b"Broadcast");
                }
                record.push(0x91);
                msgpack_str_header(&mut record, size.max(MARKER_LEN));
                write_payload(&mut record, ts, size);
                write_varint(body, record.len());
                body.extend_from_slice(&record);
                2
            }
            Proto::Raw => {
                body.push(if echo { b'e' } else { b'b' });
                write_payload(body, ts, size);
                1
            }
            Proto::Sio => {
                if echo {
                    body.extend_from_slice(b"42");
                    body.extend_from_slice(id.to_string().as_bytes());
                    body.extend_from_slice(b"[\"echo\",\"");
                } else {
                    body.extend_from_slice(b"42[\"broadcast\",\"");
                }
                write_payload(body, ts, size);
                body.extend_from_slice(b"\"]");
                1
            }
        };
        frame(out, opcode, body);
    }
}

/// What [`Conn::recv_frames`] hands each small data frame's payload to.
pub type FrameHandler<'a> = dyn FnMut(&[u8]) + Send + 'a;

/// What one [`Conn::recv`] saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Received {
    /// Markers (deliveries) found.
    pub markers: u32,
    /// Whether the connection ended (EOF, Close frame or error).
    pub closed: bool,
}

/// One client connection after its protocol handshake.
#[derive(Debug)]
pub struct Conn {
    proto: Proto,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes left in the data frame being streamed.
    remaining: u64,
    control: Vec<u8>,
}

impl Conn {
    /// Connects from `source` (a 127.0.0.x address) to the server, upgrades
    /// to WebSocket and completes the protocol's handshake.
    ///
    /// `receive_buffer` sets `SO_RCVBUF` (stalled receivers use a small
    /// one so their backlog reaches the server quickly).
    pub async fn connect(
        proto: Proto,
        server: SocketAddr,
        source: IpAddr,
        receive_buffer: Option<u32>,
    ) -> io::Result<Conn> {
        Self::connect_with(proto, server, source, receive_buffer, None).await
    }

    /// Connects as the official SignalR clients do: `POST
    /// /hub/negotiate?negotiateVersion=1` on a connection of its own, then
    /// the WebSocket upgrade at `/hub?id=<connectionToken>` and the
    /// handshake. Other protocols connect as [`Conn::connect`] does.
    pub async fn connect_negotiated(
        proto: Proto,
        server: SocketAddr,
        source: IpAddr,
    ) -> io::Result<Conn> {
        if !matches!(proto, Proto::Json | Proto::MsgPack) {
            return Self::connect(proto, server, source, None).await;
        }
        let token = negotiate(server, source).await?;
        Self::connect_with(proto, server, source, None, Some(&token)).await
    }

    async fn connect_with(
        proto: Proto,
        server: SocketAddr,
        source: IpAddr,
        receive_buffer: Option<u32>,
        token: Option<&str>,
    ) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream: TcpStream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        let path = match (proto, token) {
            (Proto::Json | Proto::MsgPack, Some(token)) => format!("/hub?id={token}"),
            (Proto::Json | Proto::MsgPack, None) => "/hub".to_owned(),
            (Proto::Raw, _) => "/ws".to_owned(),
            (Proto::Sio, _) => "/socket.io/?EIO=4&transport=websocket".to_owned(),
        };
        let (reader, writer) = stream.into_split();
        let mut conn = Conn {
            proto,
            reader,
            writer,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            remaining: 0,
            control: Vec::new(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        conn.writer.write_all(request.as_bytes()).await?;
        // The 101 response; frames may follow in the same read.
        loop {
            if let Some(at) = memchr::memmem::find(&conn.buf[..conn.end], b"\r\n\r\n") {
                if !conn.buf.starts_with(b"HTTP/1.1 101") {
                    return Err(io::Error::other("the server refused the WebSocket upgrade"));
                }
                conn.start = at + 4;
                break;
            }
            if conn.end == conn.buf.len() {
                return Err(io::Error::other("upgrade response too large"));
            }
            let n = conn.reader.read(&mut conn.buf[conn.end..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            conn.end += n;
        }
        match proto {
            Proto::Json | Proto::MsgPack => {
                let name = if proto == Proto::Json {
                    "json"
                } else {
                    "messagepack"
                };
                let handshake = format!("{{\"protocol\":\"{name}\",\"version\":1}}\x1e");
                conn.send_frame(1, handshake.as_bytes()).await?;
                let answer = conn.small_frame().await?;
                if !answer.starts_with(b"{}\x1e") {
                    return Err(io::Error::other(format!(
                        "handshake failed: {}",
                        String::from_utf8_lossy(&answer)
                    )));
                }
            }
            Proto::Sio => {
                let open = conn.small_frame().await?;
                if !open.starts_with(b"0{") {
                    return Err(io::Error::other("no engine.io open packet"));
                }
                conn.send_frame(1, b"40").await?;
                let mut connected = conn.small_frame().await?;
                // engine.io may ping before the Socket.IO connect answer.
                while connected == b"2" {
                    conn.send_frame(1, b"3").await?;
                    connected = conn.small_frame().await?;
                }
                if !connected.starts_with(b"40") {
                    return Err(io::Error::other(format!(
                        "no Socket.IO connect answer: {}",
                        String::from_utf8_lossy(&connected)
                    )));
                }
            }
            Proto::Raw => {}
        }
        Ok(conn)
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        frame(&mut out, opcode, payload);
        self.writer.write_all(&out).await
    }

    /// Writes already framed bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes).await
    }

    /// Reads one whole small data frame (handshakes only).
    async fn small_frame(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let available = &self.buf[self.start..self.end];
            if let Some((header, len, opcode)) = parse_header(available) {
                let total = header + len as usize;
                if total > READ_BUFFER {
                    return Err(io::Error::other("handshake frame too large"));
                }
                if available.len() >= total {
                    let payload = available[header..total].to_vec();
                    self.start += total;
                    if opcode == 1 || opcode == 2 {
                        return Ok(payload);
                    }
                    continue;
                }
            }
            self.fill().await?;
        }
    }

    /// Compacts the buffer and reads more; EOF is an error.
    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.reader.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Reads once from the socket and handles every complete frame,
    /// calling `on_marker` with the timestamp of every delivery. Answers
    /// WebSocket pings and engine.io pings on the way.
    pub async fn recv(&mut self, on_marker: &mut impl FnMut(u64)) -> Received {
        self.recv_inner(on_marker, None).await
    }

    /// Reads once from the socket and hands the payload of every complete
    /// small data frame (up to 125 bytes, such as a clock tick) to
    /// `on_frame` instead of scanning it for markers.
    pub async fn recv_frames(&mut self, on_frame: &mut FrameHandler<'_>) -> Received {
        self.recv_inner(&mut |_| {}, Some(on_frame)).await
    }

    async fn recv_inner(
        &mut self,
        on_marker: &mut impl FnMut(u64),
        mut on_frame: Option<&mut FrameHandler<'_>>,
    ) -> Received {
        let mut received = Received::default();
        if let Err(_error) = self.fill().await {
            received.closed = true;
            return received;
        }
        loop {
            let available = &self.buf[self.start..self.end];
            if self.remaining > 0 {
                let take = available.len().min(self.remaining as usize);
                let chunk = &available[..take];
                let frame_continues = self.remaining as usize > take;
                let mut consumed = take;
                let mut from = 0;
                while let Some(at) = memchr::memmem::find(&chunk[from..], b"@@") {
                    let at = from + at;
                    if at + MARKER_LEN > take && frame_continues {
                        // A marker split by the read: keep it for the next one.
                        consumed = at;
                        break;
                    }
                    if let Some(ts) = parse_marker(&chunk[at..]) {
                        received.markers += 1;
                        on_marker(ts);
                    }
                    from = at + 2;
                }
                self.start += consumed;
                self.remaining -= consumed as u64;
                if consumed < take || self.start == self.end {
                    break;
                }
                continue;
            }
            let Some((header, len, opcode)) = parse_header(available) else {
                break;
            };
            let small = len <= 125;
            if small {
                if available.len() < header + len as usize {
                    break;
                }
                let payload = &available[header..header + len as usize];
                match opcode {
                    8 => {
                        received.closed = true;
                        return received;
                    }
                    9 => {
                        self.control.clear();
                        frame(&mut self.control, 10, payload);
                    }
                    1 if self.proto == Proto::Sio && payload == b"2" => {
                        self.control.clear();
                        frame(&mut self.control, 1, b"3");
                    }
                    // A SignalR server Ping (every 15 s) is answered with a
                    // Ping, standing in for the official clients' keep-alive
                    // timer: a client that only listens (the clock's, the
                    // idle ones) is not closed after the server's 30 s
                    // client timeout.
                    1 if self.proto == Proto::Json && payload == SIGNALR_JSON_PING => {
                        self.control.clear();
                        frame(&mut self.control, 1, SIGNALR_JSON_PING);
                    }
                    2 if self.proto == Proto::MsgPack && payload == SIGNALR_MSGPACK_PING => {
                        self.control.clear();
                        frame(&mut self.control, 2, SIGNALR_MSGPACK_PING);
                    }
                    _ if on_frame.is_some() => {
                        if let Some(on_frame) = on_frame.as_mut() {
                            on_frame(payload);
                        }
                    }
                    _ => {
                        let mut from = 0;
                        while let Some(at) = memchr::memmem::find(&payload[from..], b"@@") {
                            let at = from + at;
                            if let Some(ts) = parse_marker(&payload[at..]) {
                                received.markers += 1;
                                on_marker(ts);
                            }
                            from = at + 2;
                        }
                    }
                }
                self.start += header + len as usize;
                if !self.control.is_empty() {
                    let control = std::mem::take(&mut self.control);
                    if self.writer.write_all(&control).await.is_err() {
                        received.closed = true;
                        return received;
                    }
                    self.control = control;
                    self.control.clear();
                }
            } else {
                if opcode >= 8 {
                    received.closed = true;
                    return received;
                }
                self.start += header;
                self.remaining = len;
            }
        }
        received
    }
}

impl Conn {
    /// Splits off the writing half; the returned future reads and discards
    /// everything the server sends (a broadcast's sender also receives
    /// its own broadcasts and must keep reading to stay healthy).
    pub fn into_writer(
        self,
    ) -> (
        OwnedWriteHalf,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut reader = self.reader;
        let drain = async move {
            let mut sink = vec![0u8; 16 * 1024];
            while let Ok(n) = reader.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        (self.writer, drain)
    }
}

/// `POST /hub/negotiate?negotiateVersion=1` on a connection of its own
/// (closed by the server after the answer, as `Connection: close` asks);
/// returns the `connectionToken`.
async fn negotiate(server: SocketAddr, source: IpAddr) -> io::Result<String> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "POST /hub/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {server}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::with_capacity(512);
    // A negotiate answer is a few hundred bytes; 16 KiB bounds a wrong one.
    (&mut stream)
        .take(16 * 1024)
        .read_to_end(&mut answer)
        .await?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "negotiate failed: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        )));
    }
    const FIELD: &[u8] = b"\"connectionToken\":\"";
    let start = memchr::memmem::find(&answer, FIELD)
        .map(|at| at + FIELD.len())
        .ok_or_else(|| io::Error::other("negotiate answer without a connectionToken"))?;
    let length = memchr::memchr(b'"', &answer[start..])
        .ok_or_else(|| io::Error::other("negotiate answer: unterminated connectionToken"))?;
    let token = &answer[start..start + length];
    // Tokens are URL-safe base64: they go into the query as they are.
    if !token
        .iter()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'))
    {
        return Err(io::Error::other(
            "negotiate answer: a connectionToken that is not URL-safe",
        ));
    }
    Ok(String::from_utf8_lossy(token).into_owned())
}

/// The send time carried by a clock tick's payload, in nanoseconds since
/// the Unix epoch: the `show_time` argument of a SignalR Invocation, an
/// RFC 3339 string in JSON (`"arguments":["2026-12-05T19:00:00.123456Z"]`)
/// or the MessagePack timestamp extension (−1) in its 32, 64 or 96-bit
/// form. `None` for any other frame (a Ping).
pub fn tick_time_ns(payload: &[u8]) -> Option<i128> {
    const JSON: &[u8] = b"\"arguments\":[\"";
    if let Some(at) = memchr::memmem::find(payload, JSON) {
        let rest = &payload[at + JSON.len()..];
        let text = std::str::from_utf8(&rest[..memchr::memchr(b'"', rest)?]).ok()?;
        return hub_runtime::Timestamp::parse(text)
            .ok()
            .map(hub_runtime::Timestamp::unix_nanos);
    }
    // The arguments array of one element (0x91), then the extension.
    let be = |bytes: &[u8]| {
        bytes
            .iter()
            .fold(0u64, |value, &b| (value << 8) | u64::from(b))
    };
    if let Some(at) = memchr::memmem::find(payload, &[0x91, 0xd6, 0xff]) {
        let seconds = be(payload.get(at + 3..at + 7)?);
        return Some(i128::from(seconds) * 1_000_000_000);
    }
    if let Some(at) = memchr::memmem::find(payload, &[0x91, 0xd7, 0xff]) {
        let value = be(payload.get(at + 3..at + 11)?);
        let (nanos, seconds) = (value >> 34, value & ((1 << 34) - 1));
        return Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos));
    }
    if let Some(at) = memchr::memmem::find(payload, &[0x91, 0xc7, 0x0c, 0xff]) {
        let nanos = be(payload.get(at + 4..at + 8)?);
        let seconds = be(payload.get(at + 8..at + 16)?) as i64;
        return Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos));
    }
    None
}

/// Nanoseconds since the Unix epoch now (the clock's ticks carry the
/// server's wall-clock time; both processes read the same clock).
pub fn unix_now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as i128)
}

/// Parses a server frame header: (header length, payload length, opcode).
fn parse_header(bytes: &[u8]) -> Option<(usize, u64, u8)> {
    let first = *bytes.first()?;
    let second = *bytes.get(1)?;
    let opcode = first & 0x0f;
    let masked = second & 0x80 != 0;
    let (header, len) = match second & 0x7f {
        126 => (
            4,
            u64::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
        ),
        127 => {
            let raw: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            (10, u64::from_be_bytes(raw))
        }
        short => (2, u64::from(short)),
    };
    // Servers never mask; a masked frame is treated as its key + payload.
    Some((header + if masked { 4 } else { 0 }, len, opcode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_times_in_both_protocols() {
        let json = br#"{"type":1,"target":"ShowTime","arguments":["2024-01-01T00:00:00.5Z"]}"#;
        assert_eq!(
            tick_time_ns(json),
            Some(1_704_067_200_500_000_000),
            "the JSON tick's RFC 3339 argument is read"
        );
        // [1, {}, nil, "ShowTime", [timestamp 64: 0.5 s after 2024-01-01]]
        let mut msgpack = vec![0x95, 0x01, 0x80, 0xc0, 0xa8];
        msgpack.extend_from_slice(b"ShowTime");
        msgpack.extend_from_slice(&[0x91, 0xd7, 0xff]);
        let value: u64 = (500_000_000u64 << 34) | 1_704_067_200;
        msgpack.extend_from_slice(&value.to_be_bytes());
        assert_eq!(
            tick_time_ns(&msgpack),
            Some(1_704_067_200_500_000_000),
            "the MessagePack tick's timestamp extension is read"
        );
        assert_eq!(tick_time_ns(b"{\"type\":6}\x1e"), None, "a Ping is no tick");
    }

    #[test]
    fn payload_round_trip() {
        let mut out = Vec::new();
        write_payload(&mut out, 0x0123_4567_89ab_cdef, 32);
        assert_eq!(out.len(), 32);
        assert_eq!(parse_marker(&out), Some(0x0123_4567_89ab_cdef));
    }
}
