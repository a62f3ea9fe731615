//! Stateful reconnect as the fuzzer drives it: the server's real
//! [`ReplayBuffer`], [`InboundSequence`] and [`Sequencing`], wired the way
//! the connection's writer and reader wire them, against a model client
//! that behaves as the official clients do (it counts sequenced messages,
//! skips what it already processed, gives up on a Sequence above its count,
//! acknowledges the highest id it processed, and buffers and replays its
//! own messages). The sockets between them are queues that a cut empties.
//!
//! Invariants asserted after every step: the client processes the server's
//! messages exactly once, in order, without a gap, and never sees a
//! Sequence that would make it give up; the server processes the client's
//! messages likewise; the replay buffer holds exactly the unacknowledged
//! records (ids and bytes), never more bytes than its bound allows; and
//! once the fuzzer's steps are over, a final reconnect delivers everything
//! that was sent, both ways.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::watch;

use crate::protocol::{Ack, HubMessage, Invocation, Sequence};
use crate::server::connection::stateful::{
    CONNECTED_FACTOR, Inbound, InboundSequence, ReplayBuffer, Sequencing,
};

/// One step of a stateful connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatefulStep {
    /// The hub sends a message of `len` bytes to the client (the writer
    /// takes it from the queue only when the replay buffer has room;
    /// otherwise it stays queued and nothing happens here).
    ServerSends {
        /// The record's size in bytes.
        len: u16,
    },
    /// The client reads up to this many messages from its socket.
    ClientReads(u8),
    /// The client sends an Ack of the highest id it processed.
    ClientAcks,
    /// The client sends a sequenced message (an invocation).
    ClientSends,
    /// The server reads up to this many messages from its socket.
    ServerReads(u8),
    /// The writer's Ack tick: the server acknowledges what it received.
    ServerAckTick,
    /// The socket drops: whatever is in flight both ways is lost.
    Cut,
    /// The client reconnects (when cut): Sequence and replay both ways.
    Resume,
    /// A hostile client sends a Sequence with this id.
    HostileSequence(u64),
}

/// A message on a socket, with what the model knows about it.
#[derive(Debug, Clone)]
enum Wire {
    /// A sequenced message carrying its sender's id in its payload.
    Message { id: u64, record: Bytes },
    /// `Sequence`.
    Sequence(u64),
    /// `Ack`.
    Ack(u64),
}

/// The record for the server's message `id`: its id, then padding.
fn record(id: u64, len: u16) -> Bytes {
    let mut bytes = id.to_le_bytes().to_vec();
    bytes.resize(usize::from(len).max(8), 0xA5);
    Bytes::from(bytes)
}

fn record_id(record: &Bytes) -> u64 {
    let mut id = [0; 8];
    id.copy_from_slice(&record[..8]);
    u64::from_le_bytes(id)
}

/// The model of an official client.
#[derive(Default)]
struct Client {
    /// The id the next sequenced message from the server gets.
    next_receiving: u64,
    /// The highest server id processed.
    latest_received: u64,
    /// The id of the client's next own message.
    next_sending: u64,
    /// Own messages sent and not yet acknowledged by the server.
    unacked: VecDeque<u64>,
}

struct Run {
    limit: usize,
    largest_record: usize,
    // The server's side, as the writer and reader hold it.
    buffer: ReplayBuffer,
    sequencing: Sequencing,
    acked: watch::Receiver<u64>,
    inbound: InboundSequence,
    connected: bool,
    last_ack_sent: u64,
    /// The id of the server's next message.
    next_server_id: u64,
    /// The highest client id the server processed.
    server_processed: u64,
    client: Client,
    to_client: VecDeque<Wire>,
    to_server: VecDeque<Wire>,
    /// A hostile Sequence broke the connection: it ends.
    broken: bool,
}

impl Run {
    fn new(limit: usize) -> Self {
        let sequencing = Sequencing::new();
        let acked = sequencing.acked();
        Run {
            limit,
            largest_record: 8,
            buffer: ReplayBuffer::new(limit),
            sequencing,
            acked,
            inbound: InboundSequence::new(),
            connected: true,
            last_ack_sent: 0,
            next_server_id: 1,
            server_processed: 0,
            client: Client {
                next_receiving: 1,
                latest_received: 0,
                next_sending: 1,
                unacked: VecDeque::new(),
            },
            to_client: VecDeque::new(),
            to_server: VecDeque::new(),
            broken: false,
        }
    }

    fn step(&mut self, step: StatefulStep) {
        match step {
            StatefulStep::ServerSends { len } => {
                if !self.buffer.has_room(self.connected) {
                    return;
                }
                let id = self.next_server_id;
                self.next_server_id += 1;
                let record = record(id, len);
                self.largest_record = self.largest_record.max(record.len());
                self.buffer.push(record.clone());
                if self.connected {
                    self.to_client.push_back(Wire::Message { id, record });
                }
            }
            StatefulStep::ClientReads(count) => {
                for _ in 0..count {
                    let Some(wire) = self.to_client.pop_front() else {
                        break;
                    };
                    self.client_receives(wire);
                }
            }
            StatefulStep::ClientAcks => {
                if self.connected && self.client.latest_received > 0 {
                    self.to_server
                        .push_back(Wire::Ack(self.client.latest_received));
                }
            }
            StatefulStep::ClientSends => {
                let id = self.client.next_sending;
                self.client.next_sending += 1;
                self.client.unacked.push_back(id);
                if self.connected {
                    self.to_server.push_back(Wire::Message {
                        id,
                        record: Bytes::new(),
                    });
                }
            }
            StatefulStep::ServerReads(count) => {
                for _ in 0..count {
                    let Some(wire) = self.to_server.pop_front() else {
                        break;
                    };
                    self.server_receives(wire);
                    if self.broken {
                        return;
                    }
                }
            }
            StatefulStep::ServerAckTick => {
                let received = self.sequencing.received();
                if self.connected && received > self.last_ack_sent {
                    self.to_client.push_back(Wire::Ack(received));
                    self.last_ack_sent = received;
                }
            }
            StatefulStep::Cut => {
                self.connected = false;
                self.to_client.clear();
                self.to_server.clear();
            }
            StatefulStep::Resume => {
                if !self.connected {
                    self.resume();
                }
            }
            StatefulStep::HostileSequence(id) => {
                let expected_broken = id > self.server_processed + 1;
                let message = HubMessage::Sequence(Sequence { sequence_id: id });
                let outcome = self.inbound.accept(&message, &self.sequencing);
                if expected_broken {
                    assert_eq!(
                        outcome,
                        Inbound::Broken,
                        "a Sequence {id} above what the server processed ({}) breaks the connection",
                        self.server_processed
                    );
                    self.broken = true;
                } else {
                    assert_eq!(
                        outcome,
                        Inbound::Skip,
                        "a Sequence is handled by the reader"
                    );
                    // The client now replays from `id`: what it sends next
                    // is counted from there (duplicates up to what was
                    // processed are skipped, then new ids follow). The
                    // model client resends everything from `id` on.
                    self.to_server.clear();
                    let resend: Vec<u64> = (id..self.client.next_sending).collect();
                    for id in resend {
                        self.to_server.push_back(Wire::Message {
                            id,
                            record: Bytes::new(),
                        });
                    }
                }
            }
        }
        self.check_buffer();
    }

    /// Both sides reconnect: the writer's replay (Sequence, the buffered
    /// records, an Ack of what it received) and the client's (Sequence of
    /// its oldest unacknowledged message, then those messages).
    fn resume(&mut self) {
        self.connected = true;
        self.buffer.start_replay();
        self.to_client
            .push_back(Wire::Sequence(self.buffer.first_id()));
        for record in self.buffer.records() {
            self.to_client.push_back(Wire::Message {
                id: record_id(record),
                record: record.clone(),
            });
        }
        let received = self.sequencing.received();
        if received > 0 {
            self.to_client.push_back(Wire::Ack(received));
        }
        self.last_ack_sent = received;

        let first_unacked = self
            .client
            .unacked
            .front()
            .copied()
            .unwrap_or(self.client.next_sending);
        self.to_server.push_back(Wire::Sequence(first_unacked));
        for &id in &self.client.unacked {
            self.to_server.push_back(Wire::Message {
                id,
                record: Bytes::new(),
            });
        }
    }

    fn client_receives(&mut self, wire: Wire) {
        let client = &mut self.client;
        match wire {
            Wire::Sequence(id) => {
                assert!(
                    id <= client.next_receiving,
                    "the server's Sequence {id} is not above the client's count {} (the official clients give up on it: a message would be lost)",
                    client.next_receiving
                );
                client.next_receiving = id;
            }
            Wire::Message { id, record } => {
                let current = client.next_receiving;
                client.next_receiving += 1;
                assert_eq!(
                    id, current,
                    "the client's count matches the server's numbering of its messages"
                );
                assert_eq!(
                    record_id(&record),
                    id,
                    "a replayed record is the one first sent with its id"
                );
                if current <= client.latest_received {
                    return; // a duplicate, skipped by the client
                }
                assert_eq!(
                    current,
                    client.latest_received + 1,
                    "the client processes every server message once, in order, none lost"
                );
                client.latest_received = current;
            }
            Wire::Ack(id) => {
                assert!(
                    id < client.next_sending,
                    "the server acknowledges only messages the client sent"
                );
                while client.unacked.front().is_some_and(|&sent| sent <= id) {
                    client.unacked.pop_front();
                }
            }
        }
    }

    fn server_receives(&mut self, wire: Wire) {
        let message = match &wire {
            Wire::Message { .. } => HubMessage::Invocation(Invocation::default()),
            Wire::Sequence(id) => HubMessage::Sequence(Sequence { sequence_id: *id }),
            Wire::Ack(id) => HubMessage::Ack(Ack { sequence_id: *id }),
        };
        let outcome = self.inbound.accept(&message, &self.sequencing);
        match wire {
            Wire::Message { id, .. } => match outcome {
                Inbound::Process => {
                    assert_eq!(
                        id,
                        self.server_processed + 1,
                        "the server processes every client message once, in order, none lost"
                    );
                    self.server_processed = id;
                    assert_eq!(
                        self.sequencing.received(),
                        id,
                        "what the server acknowledges is what it processed"
                    );
                }
                Inbound::Skip => assert!(
                    id <= self.server_processed,
                    "only a message already processed is skipped as a duplicate (id {id}, processed {})",
                    self.server_processed
                ),
                Inbound::Broken => panic!("a sequenced message never breaks the connection"),
            },
            Wire::Sequence(_) => {
                assert_eq!(
                    outcome,
                    Inbound::Skip,
                    "the official client's Sequence never breaks the connection"
                );
            }
            Wire::Ack(_) => {
                assert_eq!(outcome, Inbound::Skip, "an Ack is handled by the reader");
                // The writer wakes on a newer Ack and trims the buffer.
                if self.acked.has_changed().unwrap_or(false) {
                    let acked = *self.acked.borrow_and_update();
                    self.buffer.acknowledge(acked);
                }
            }
        }
    }

    fn check_buffer(&self) {
        let bytes: usize = self.buffer.records().map(Bytes::len).sum();
        // `has_room` is checked before each record is taken, so the bound
        // is exceeded by at most one record.
        let bound = self.limit.max(1) * CONNECTED_FACTOR + self.largest_record;
        assert!(
            bytes < bound,
            "the replay buffer holds {bytes} bytes, within its bound of {bound}"
        );
        let mut expected = self.buffer.first_id();
        for record in self.buffer.records() {
            assert_eq!(
                record_id(record),
                expected,
                "the replay buffer holds consecutive ids from first_id"
            );
            expected += 1;
        }
        assert_eq!(
            expected, self.next_server_id,
            "the replay buffer holds every record up to the last one sent"
        );
        assert!(
            self.buffer.first_id() <= self.client.latest_received + 1,
            "the replay buffer dropped only records the client processed"
        );
    }

    /// After the fuzzer's steps: reconnect if needed and let every message
    /// through both ways, twice with Acks in between.
    fn settle(&mut self) {
        if self.broken {
            return;
        }
        for _ in 0..2 {
            if !self.connected {
                self.resume();
            }
            while !self.to_client.is_empty() || !self.to_server.is_empty() {
                self.step(StatefulStep::ClientReads(u8::MAX));
                self.step(StatefulStep::ServerReads(u8::MAX));
            }
            self.step(StatefulStep::ClientAcks);
            self.step(StatefulStep::ServerAckTick);
            self.step(StatefulStep::ClientReads(u8::MAX));
            self.step(StatefulStep::ServerReads(u8::MAX));
        }
        assert_eq!(
            self.client.latest_received,
            self.next_server_id - 1,
            "every message the server sent reached the client"
        );
        assert_eq!(
            self.server_processed,
            self.client.next_sending - 1,
            "every message the client sent reached the server"
        );
        assert!(
            self.client.unacked.is_empty(),
            "the server acknowledged everything it received"
        );
    }
}

/// Runs `steps` on a stateful connection whose replay buffer is bounded to
/// `limit` bytes, asserting the invariants in the module docs (a failed
/// assertion panics, which the fuzzer reports).
pub fn stateful_interleaving(limit: usize, steps: &[StatefulStep]) {
    let mut run = Run::new(limit);
    for &step in steps {
        run.step(step);
        if run.broken {
            return;
        }
    }
    run.settle();
}

#[cfg(test)]
mod tests {
    use super::StatefulStep::*;
    use super::*;

    #[test]
    fn a_cut_replay_is_replayed_again() {
        stateful_interleaving(
            64,
            &[
                ServerSends { len: 10 },
                ServerSends { len: 10 },
                ClientReads(1),
                ClientAcks,
                ServerReads(1),
                Cut,
                ServerSends { len: 10 },
                Resume,
                ClientReads(2),
                ClientAcks,
                ServerReads(9),
                Cut,
                Resume,
                ClientSends,
                ServerReads(9),
                ServerAckTick,
                ClientReads(9),
            ],
        );
    }

    /// Pseudo-random interleavings (a fixed xorshift seed), so that `cargo
    /// test` exercises the model beyond the hand-written cases.
    #[test]
    fn random_interleavings_keep_the_invariants() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let limit = (next() % 200) as usize;
            let steps: Vec<StatefulStep> = (0..(next() % 120))
                .map(|_| {
                    let arg = next();
                    match next() % 9 {
                        0 | 1 => ServerSends {
                            len: (arg % 64) as u16,
                        },
                        2 => ClientReads((arg % 6) as u8),
                        3 => ClientAcks,
                        4 => ClientSends,
                        5 => ServerReads((arg % 6) as u8),
                        6 => ServerAckTick,
                        7 => Cut,
                        _ => Resume,
                    }
                })
                .collect();
            stateful_interleaving(limit, &steps);
        }
    }
}
