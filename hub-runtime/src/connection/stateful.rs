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
                if sequence.sequence_id > self.next {
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

/// The records sent and not yet acknowledged, oldest first.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    records: VecDeque<Bytes>,
    /// The id of `records[0]` (the next id when empty).
    first_id: u64,
    bytes: usize,
    limit: usize,
}

impl ReplayBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        ReplayBuffer {
            records: VecDeque::new(),
            first_id: 1,
            bytes: 0,
            limit: limit.max(1),
        }
    }

    /// Keeps a record about to be written.
    pub(crate) fn push(&mut self, record: Bytes) {
        self.bytes += record.len();
        self.records.push_back(record);
    }

    /// Drops the records the client acknowledged (ids up to `acked`).
    pub(crate) fn acknowledge(&mut self, acked: u64) {
        while self.first_id <= acked {
            let Some(record) = self.records.pop_front() else {
                break;
            };
            self.bytes -= record.len();
            self.first_id += 1;
        }
    }

    /// Whether more records may be taken: the buffer is below its limit.
    pub(crate) fn has_room(&self) -> bool {
        self.bytes < self.limit
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
    fn replay_buffer_trims_and_bounds() {
        let mut buffer = ReplayBuffer::new(10);
        for record in ["aaaa", "bbbb", "cccc"] {
            buffer.push(Bytes::from(record));
        }
        assert!(!buffer.has_room());
        buffer.acknowledge(2);
        assert_eq!(buffer.first_id(), 3);
        assert!(buffer.has_room());
        assert_eq!(buffer.records().collect::<Vec<_>>(), [&Bytes::from("cccc")]);
        buffer.acknowledge(9);
        assert_eq!(buffer.first_id(), 4);
    }
}
