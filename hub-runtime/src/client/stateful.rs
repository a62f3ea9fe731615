//! Stateful reconnect for the client: a WebSocket that survives drops.
//!
//! [`wrap`] puts a task between the connection and its WebSocket. The task
//! numbers the tracked messages (types 1–5) it sends, keeps them until the
//! server acknowledges them (and holds further sends while more than the
//! buffer size is unacknowledged), acknowledges what it receives once a
//! second, and drops replayed duplicates. When the socket drops without a
//! Close frame, it opens a new one to the same URL (same connection token,
//! no negotiate, no handshake), sends a Sequence and replays what the
//! server has not acknowledged; incoming messages are ignored until the
//! server's Sequence. If the server cannot be reached again within the
//! resume window, the connection ends as a lost connection would.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::transport::frame::{Frame, FrameSink, FrameSource, Reopen, transport_error};
use crate::HubError;
use crate::protocol::{Ack, HubMessage, HubProtocol, Sequence, TransferFormat};

/// How long the client tries to resume after a drop (below the server's
/// disconnect timeout, 15 s by default).
const RESUME_WINDOW: Duration = Duration::from_secs(10);

/// How often received messages are acknowledged (as the official clients).
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// Splits `frame` into whole records; a partial tail stays in `partial`.
fn split_records(protocol: HubProtocol, partial: &mut BytesMut, frame: &[u8]) -> Vec<Bytes> {
    partial.extend_from_slice(frame);
    let mut records = Vec::new();
    loop {
        let end = match protocol.transfer_format() {
            TransferFormat::Text => partial.iter().position(|&b| b == 0x1e).map(|i| i + 1),
            TransferFormat::Binary => {
                // VarInt length prefix, then the body.
                let mut length = 0usize;
                let mut prefix = None;
                for (index, byte) in partial.iter().take(5).enumerate() {
                    length |= usize::from(byte & 0x7f) << (7 * index);
                    if byte & 0x80 == 0 {
                        prefix = Some(index + 1);
                        break;
                    }
                }
                prefix
                    .map(|prefix| prefix + length)
                    .filter(|end| *end <= partial.len())
            }
        };
        match end {
            Some(end) => records.push(partial.split_to(end).freeze()),
            None => return records,
        }
    }
}

/// The message of one whole record, if it decodes.
fn decode(protocol: HubProtocol, record: &Bytes) -> Option<HubMessage> {
    let mut buffer = BytesMut::from(&record[..]);
    protocol.decoder(None).decode(&mut buffer).ok().flatten()
}

struct State {
    protocol: HubProtocol,
    /// Sent tracked records not yet acknowledged; the first has `first_id`.
    buffer: VecDeque<Bytes>,
    buffered_bytes: usize,
    first_id: u64,
    buffer_limit: usize,
    /// Incoming: the id of the next tracked message, the highest processed.
    next_incoming: u64,
    latest_incoming: u64,
    last_ack_sent: u64,
    /// After a resume: drop everything until the server's Sequence.
    waiting_for_sequence: bool,
    incoming_partial: BytesMut,
}

impl State {
    /// Takes a frame from the connection: numbers and keeps its tracked
    /// records. Returns the frame to write.
    fn outgoing(&mut self, frame: Frame) -> Frame {
        let Frame::Data(bytes) = &frame else {
            return frame;
        };
        let mut partial = BytesMut::new();
        for record in split_records(self.protocol, &mut partial, bytes) {
            if decode(self.protocol, &record).is_some_and(|m| m.is_sequenced()) {
                self.buffered_bytes += record.len();
                self.buffer.push_back(record);
            }
        }
        frame
    }

    /// Takes a frame from the server: handles Acks and Sequences, drops
    /// duplicates. Returns what the connection should read, or an error
    /// when the server's Sequence is impossible.
    fn incoming(&mut self, bytes: &[u8]) -> Result<Option<Bytes>, String> {
        let mut keep = BytesMut::new();
        for record in split_records(self.protocol, &mut self.incoming_partial, bytes) {
            let message = decode(self.protocol, &record);
            if self.waiting_for_sequence {
                match message {
                    Some(HubMessage::Sequence(_)) => self.waiting_for_sequence = false,
                    _ => continue,
                }
            }
            match message {
                Some(HubMessage::Sequence(Sequence { sequence_id })) => {
                    if sequence_id > self.latest_incoming + 1 {
                        return Err(
                            "Sequence ID greater than amount of messages we've received.".into(),
                        );
                    }
                    self.next_incoming = sequence_id;
                }
                Some(HubMessage::Ack(Ack { sequence_id })) => {
                    while self.first_id <= sequence_id {
                        let Some(record) = self.buffer.pop_front() else {
                            break;
                        };
                        self.buffered_bytes -= record.len();
                        self.first_id += 1;
                    }
                }
                Some(message) if message.is_sequenced() => {
                    let current = self.next_incoming;
                    self.next_incoming += 1;
                    if current > self.latest_incoming {
                        self.latest_incoming = current;
                        keep.extend_from_slice(&record);
                    }
                }
                _ => keep.extend_from_slice(&record),
            }
        }
        Ok((!keep.is_empty()).then(|| keep.freeze()))
    }

    fn encode(&self, message: &HubMessage) -> Bytes {
        let mut out = BytesMut::new();
        // Ack and Sequence carry only a number: they always encode.
        let _ = self.protocol.encode(message, &mut out);
        out.freeze()
    }

    /// The Sequence and replay that start a resumed socket.
    fn replay(&self) -> Bytes {
        let mut out = BytesMut::from(
            &self.encode(&HubMessage::Sequence(Sequence {
                sequence_id: self.first_id,
            }))[..],
        );
        for record in &self.buffer {
            out.extend_from_slice(record);
        }
        out.freeze()
    }
}

/// Wraps an open WebSocket whose handshake (version 2) is done.
/// `leftover` is what followed the handshake response; the returned bytes
/// are what the connection should read of it.
pub(crate) fn wrap(
    sink: FrameSink,
    source: FrameSource,
    leftover: BytesMut,
    protocol: HubProtocol,
    buffer_limit: usize,
    reopen: Reopen,
) -> (FrameSink, FrameSource, BytesMut) {
    let mut state = State {
        protocol,
        buffer: VecDeque::new(),
        buffered_bytes: 0,
        first_id: 1,
        buffer_limit: buffer_limit.max(1),
        next_incoming: 1,
        latest_incoming: 0,
        last_ack_sent: 0,
        waiting_for_sequence: false,
        incoming_partial: BytesMut::new(),
    };
    let leftover = match state.incoming(&leftover) {
        Ok(Some(bytes)) => BytesMut::from(&bytes[..]),
        _ => BytesMut::new(),
    };
    let (outgoing_tx, outgoing_rx) = mpsc::channel::<Frame>(16);
    let (incoming_tx, mut incoming_rx) = mpsc::channel::<Result<Frame, HubError>>(16);
    tokio::spawn(run(state, sink, source, outgoing_rx, incoming_tx, reopen));
    let exposed_sink: FrameSink = Box::pin(futures_util::sink::unfold(
        outgoing_tx,
        |outgoing, frame: Frame| async move {
            outgoing
                .send(frame)
                .await
                .map_err(|_| transport_error("the connection is closed"))?;
            Ok::<_, HubError>(outgoing)
        },
    ));
    let exposed_source: FrameSource = Box::pin(futures_util::stream::poll_fn(move |context| {
        incoming_rx.poll_recv(context)
    }));
    (exposed_sink, exposed_source, leftover)
}

async fn run(
    mut state: State,
    mut sink: FrameSink,
    mut source: FrameSource,
    mut outgoing: mpsc::Receiver<Frame>,
    incoming: mpsc::Sender<Result<Frame, HubError>>,
    reopen: Reopen,
) {
    let mut ack_tick = tokio::time::interval(ACK_INTERVAL);
    ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let has_room = state.buffered_bytes < state.buffer_limit;
        let lost = tokio::select! {
            message = outgoing.recv(), if has_room => {
                let Some(message) = message else {
                    let _ = sink.close().await;
                    return;
                };
                let closing = matches!(message, Frame::Close(_));
                let result = sink.send(state.outgoing(message)).await;
                if closing {
                    let _ = sink.close().await;
                    // Let the connection read the server's answer.
                    while let Some(Ok(message)) = source.next().await {
                        if incoming.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                result.is_err()
            }
            frame = source.next() => match frame {
                Some(Ok(Frame::Data(bytes))) => match forward(&mut state, &bytes, &incoming).await {
                    Ok(lost) => lost,
                    Err(()) => return,
                },
                // A Close frame: the server ended the connection.
                Some(Ok(frame @ Frame::Close(_))) => {
                    let _ = incoming.send(Ok(frame)).await;
                    return;
                }
                Some(Err(_)) | None => true,
            },
            _ = ack_tick.tick() => {
                if state.latest_incoming > state.last_ack_sent {
                    let ack = state.encode(&HubMessage::Ack(Ack { sequence_id: state.latest_incoming }));
                    match sink.send(Frame::Data(ack)).await {
                        Ok(()) => {
                            state.last_ack_sent = state.latest_incoming;
                            false
                        }
                        Err(_) => true,
                    }
                } else {
                    false
                }
            }
            () = incoming.closed() => return,
        };
        if !lost {
            continue;
        }
        // The socket dropped: resume on a new one.
        debug!("WebSocket lost; resuming");
        let deadline = Instant::now() + RESUME_WINDOW;
        let resumed = loop {
            if Instant::now() >= deadline {
                break None;
            }
            match tokio::time::timeout_at(deadline, reopen()).await {
                Ok(Ok((mut new_sink, new_source))) => {
                    let replay = state.replay();
                    let sent = new_sink.send(Frame::Data(replay)).await.is_ok();
                    if sent {
                        break Some((new_sink, new_source));
                    }
                }
                Ok(Err(error)) => debug!(%error, "resume attempt failed"),
                Err(_) => break None,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some((new_sink, new_source)) = resumed else {
            let _ = incoming
                .send(Err(transport_error(
                    "the connection was lost and could not be resumed",
                )))
                .await;
            return;
        };
        sink = new_sink;
        source = new_source;
        state.waiting_for_sequence = true;
        state.incoming_partial.clear();
        // Our last Ack may have been lost with the old socket.
        state.last_ack_sent = 0;
    }
}

/// Hands the kept part of a frame to the connection. `Err(())` ends the
/// task; `Ok(lost)` otherwise.
async fn forward(
    state: &mut State,
    bytes: &[u8],
    incoming: &mpsc::Sender<Result<Frame, HubError>>,
) -> Result<bool, ()> {
    match state.incoming(bytes) {
        Ok(Some(kept)) => {
            incoming.send(Ok(Frame::Data(kept))).await.map_err(|_| ())?;
            Ok(false)
        }
        Ok(None) => Ok(false),
        Err(error) => {
            let _ = incoming.send(Err(transport_error(error))).await;
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_whole_only() {
        let mut partial = BytesMut::new();
        let records = split_records(HubProtocol::Json, &mut partial, b"{\"type\":6}\x1e{\"ty");
        assert_eq!(records, [Bytes::from_static(b"{\"type\":6}\x1e")]);
        let records = split_records(HubProtocol::Json, &mut partial, b"pe\":6}\x1e");
        assert_eq!(records, [Bytes::from_static(b"{\"type\":6}\x1e")]);
        let mut partial = BytesMut::new();
        let records = split_records(HubProtocol::MessagePack, &mut partial, &[2, 0x91, 6, 1]);
        assert_eq!(records, [Bytes::from_static(&[2, 0x91, 6])]);
        assert_eq!(partial.len(), 1);
    }
}
