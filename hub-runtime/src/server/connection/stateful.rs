//! Stateful reconnect: sequence numbers, the replay buffer, Acks.
//!
//! Each side numbers its sequenced messages (types 1–5) 1, 2, 3, … without
//! writing the numbers; the receiver counts the same way. The writer keeps
//! every record it has taken from the queue in a [`ReplayBuffer`] until the
//! client acknowledges it; when a WebSocket is replaced, it writes a
//! Sequence (the oldest buffered id) and replays the buffer, so the client
//! sees every message exactly once. The reader drops the client's replayed
//! duplicates with an [`InboundSequence`] and tells the writer what to
//! acknowledge.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::watch;

use crate::protocol::HubMessage;

/// What the reader and the writer of a stateful connection share.
#[derive(Debug)]
pub(crate) struct Sequencing {
    /// The highest client message id processed: what our Acks carry.
    received: AtomicU64,
    /// The highest of our message ids the client acknowledged.
    acked: watch::Sender<u64>,
}

impl Sequencing {
    pub(crate) fn new() -> Self {
        Sequencing {
            received: AtomicU64::new(0),
            acked: watch::Sender::new(0),
        }
    }

    /// The highest client message id processed so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// A receiver woken when the client acknowledges more.
    pub(crate) fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }
}

/// The reader's side: counts the client's sequenced messages and drops the
/// ones already processed.
#[derive(Debug)]
pub(crate) struct InboundSequence {
    /// The id the next sequenced message has.
    next: u64,
    /// The highest id processed.
    latest: u64,
}

/// What to do with an incoming message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// Dispatch it.
    Process,
    /// A replayed duplicate, an Ack or a Sequence: handled here.
    Skip,
    /// A Sequence beyond what was received: the state is broken.
    Broken,
}

impl InboundSequence {
    pub(crate) fn new() -> Self {
        InboundSequence { next: 1, latest: 0 }
    }

    /// Accounts for `message`.
    pub(crate) fn accept(&mut self, message: &HubMessage, shared: &Sequencing) -> Inbound {
        match message {
            HubMessage::Sequence(sequence) => {
                // The client can only have dropped what we acknowledged
                // (ids up to `latest`). `next` itself may be lower: a
                // previous replay may have been cut off half-way.
                if sequence.sequence_id > self.latest + 1 {
                    return Inbound::Broken;
                }
                self.next = sequence.sequence_id;
                Inbound::Skip
            }
            HubMessage::Ack(ack) => {
                shared.acked.send_if_modified(|acked| {
                    let newer = ack.sequence_id > *acked;
                    if newer {
                        *acked = ack.sequence_id;
                    }
                    newer
                });
                Inbound::Skip
            }
            message if message.is_sequenced() => {
                let current = self.next;
                self.next += 1;
                if current <= self.latest {
                    return Inbound::Skip;
                }
                self.latest = current;
                shared.received.store(current, Ordering::Release);
                Inbound::Process
            }
            _ => Inbound::Process,
        }
    }
}

/// How far beyond its limit the replay buffer may grow while the client
/// is connected (see [`ReplayBuffer::has_room`]).
pub(crate) const CONNECTED_FACTOR: usize = 8;

/// The records sent and not yet acknowledged, oldest first.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    records: VecDeque<Bytes>,
    /// The id of `records[0]` (the next id when empty).
    first_id: u64,
    bytes: usize,
    limit: usize,
    /// The last Sequence we sent: the client's next expected id is at
    /// least this (it may have stopped half-way through our replay).
    sequence_floor: u64,
    /// The last id replayed after that Sequence.
    replay_end: u64,
}

impl ReplayBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        ReplayBuffer {
            records: VecDeque::new(),
            first_id: 1,
            bytes: 0,
            limit: limit.max(1),
            sequence_floor: 1,
            replay_end: 0,
        }
    }

    /// A replay starts: the Sequence carries [`first_id`](Self::first_id)
    /// and every buffered record follows.
    pub(crate) fn start_replay(&mut self) {
        self.sequence_floor = self.first_id;
        self.replay_end = self.first_id + self.records.len() as u64 - 1;
    }

    /// Keeps a record about to be written.
    pub(crate) fn push(&mut self, record: Bytes) {
        self.bytes += record.len();
        self.records.push_back(record);
    }

    /// Drops the records the client acknowledged (ids up to `acked`).
    ///
    /// An Ack carries the highest id the client ever processed, not how
    /// far it got through our last replay: if the socket dropped half-way
    /// through it, the client's counter sits lower, and a next Sequence
    /// above that counter would make the official clients give up
    /// ("Sequence ID greater than amount of messages we've received."). So
    /// until the client acknowledges a record sent after the replay
    /// (proof that it went through all of it), records from the last
    /// Sequence on are kept.
    pub(crate) fn acknowledge(&mut self, acked: u64) {
        let droppable = if acked > self.replay_end {
            self.sequence_floor = acked + 1;
            acked
        } else {
            acked.min(self.sequence_floor - 1)
        };
        while self.first_id <= droppable {
            let Some(record) = self.records.pop_front() else {
                break;
            };
            self.bytes -= record.len();
            self.first_id += 1;
        }
    }

    /// Whether more records may be taken.
    ///
    /// While the client is away, up to the limit: beyond it the outbound
    /// queue fills and the slow-consumer policy closes the connection.
    /// While it is connected, up to [`CONNECTED_FACTOR`] times the limit:
    /// the official clients acknowledge only once a second, and a client
    /// that keeps reading but whose Acks are late (one lost with a dropped
    /// socket) must not stall the writer — the connection's own invocations
    /// cannot wait for room, so a stalled writer would soon overflow the
    /// queue. A client that never acknowledges still hits the bound.
    pub(crate) fn has_room(&self, connected: bool) -> bool {
        let limit = if connected {
            self.limit.saturating_mul(CONNECTED_FACTOR)
        } else {
            self.limit
        };
        self.bytes < limit
    }

    /// The id a Sequence before the replay carries.
    pub(crate) fn first_id(&self) -> u64 {
        self.first_id
    }

    /// The buffered records, oldest first.
    pub(crate) fn records(&self) -> impl Iterator<Item = &Bytes> {
        self.records.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Ack, Invocation, Sequence};

    fn invocation() -> HubMessage {
        HubMessage::Invocation(Invocation::default())
    }

    #[test]
    fn duplicates_after_a_sequence_are_skipped() {
        let shared = Sequencing::new();
        let mut inbound = InboundSequence::new();
        for _ in 0..3 {
            assert_eq!(inbound.accept(&invocation(), &shared), Inbound::Process);
        }
        assert_eq!(shared.received(), 3);
        let sequence = HubMessage::Sequence(Sequence { sequence_id: 2 });
        assert_eq!(inbound.accept(&sequence, &shared), Inbound::Skip);
        assert_eq!(inbound.accept(&invocation(), &shared), Inbound::Skip);
        assert_eq!(inbound.accept(&invocation(), &shared), Inbound::Skip);
        assert_eq!(inbound.accept(&invocation(), &shared), Inbound::Process);
        assert_eq!(shared.received(), 4);
        let too_far = HubMessage::Sequence(Sequence { sequence_id: 9 });
        assert_eq!(inbound.accept(&too_far, &shared), Inbound::Broken);
        let ack = HubMessage::Ack(Ack { sequence_id: 7 });
        assert_eq!(inbound.accept(&ack, &shared), Inbound::Skip);
        assert_eq!(*shared.acked().borrow(), 7);
    }

    #[test]
    fn replay_buffer_keeps_a_cut_replay() {
        let mut buffer = ReplayBuffer::new(1000);
        for record in ["a", "b", "c", "d"] {
            buffer.push(Bytes::from(record));
        }
        buffer.acknowledge(1);
        buffer.start_replay(); // Sequence 2, then 2..4
        // An Ack of 4 does not prove the client went through the replay.
        buffer.acknowledge(4);
        assert_eq!(buffer.first_id(), 2);
        buffer.push(Bytes::from("e"));
        buffer.acknowledge(5);
        assert_eq!(buffer.first_id(), 6);
    }

    #[test]
    fn replay_buffer_trims_and_bounds() {
        let mut buffer = ReplayBuffer::new(10);
        for record in ["aaaa", "bbbb", "cccc"] {
            buffer.push(Bytes::from(record));
        }
        assert!(!buffer.has_room(false));
        assert!(buffer.has_room(true));
        buffer.acknowledge(2);
        assert_eq!(buffer.first_id(), 3);
        assert!(buffer.has_room(false));
        assert_eq!(buffer.records().collect::<Vec<_>>(), [&Bytes::from("cccc")]);
        buffer.acknowledge(9);
        assert_eq!(buffer.first_id(), 4);
    }
}
