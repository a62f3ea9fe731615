//! What a run measures: the servers (variants), the workloads (jobs)
//! with their parameters, the timing, and the quick and full plans.

use std::time::Duration;

use crate::pinning::Cores;
use crate::servers::ServerKind;
use crate::wsclient::Proto;

/// One server as the clients see it.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// The name in results.
    pub name: &'static str,
    pub(crate) kind: ServerKind,
    pub(crate) proto: Proto,
}

/// Every server of a run: ours (both protocols), the raw baseline,
/// socketioxide.
pub const VARIANTS: [Variant; 4] = [
    Variant {
        name: "ours-json",
        kind: ServerKind::Hub,
        proto: Proto::Json,
    },
    Variant {
        name: "ours-msgpack",
        kind: ServerKind::Hub,
        proto: Proto::MsgPack,
    },
    Variant {
        name: "raw",
        kind: ServerKind::Raw,
        proto: Proto::Raw,
    },
    Variant {
        name: "socketioxide",
        kind: ServerKind::SocketIo,
        proto: Proto::Sio,
    },
];

/// A workload with its parameters.
#[derive(Debug, Clone)]
pub enum Job {
    /// Closed-loop echo calls.
    Echo {
        /// Connections.
        connections: usize,
        /// Calls in flight per connection.
        in_flight: usize,
        /// Payload bytes.
        size: usize,
    },
    /// One sender, many receivers: max rate, then (if `stepped`) rising
    /// fixed rates.
    Broadcast {
        /// Receivers.
        receivers: usize,
        /// Payload bytes.
        size: usize,
        /// Whether to search the highest rate with p99 < 100 ms.
        stepped: bool,
    },
    /// Broadcasts sent one at a time: time until the last receiver has it.
    Single {
        /// Receivers.
        receivers: usize,
        /// How many broadcasts.
        count: usize,
    },
    /// Idle connections: connect rate and server RSS per connection.
    Idle {
        /// Connection counts at which RSS is read.
        checkpoints: Vec<usize>,
    },
    /// The seed's sample at scale: `clients` connected clients, the
    /// server's background worker calls `show_time(now)` on all of them
    /// every tick (the raw baseline pushes the same frame).
    Clock {
        /// Connected clients.
        clients: usize,
        /// Ticks measured (after two that warm up).
        ticks: usize,
    },
    /// New connections as fast as they are accepted: for our hub
    /// `POST /negotiate`, the WebSocket upgrade with the negotiated id and
    /// the SignalR handshake; for the raw baseline the upgrade only.
    ConnectStorm {
        /// Connections opened (kept open until the storm ends).
        connections: usize,
        /// Connects in progress at once.
        concurrency: usize,
    },
    /// Broadcast at max rate with some receivers not reading.
    SlowConsumer {
        /// Receivers, stalled ones included.
        receivers: usize,
        /// Receivers that stop reading.
        stalled: usize,
        /// Payload bytes.
        size: usize,
    },
}

impl Job {
    /// Whether `variant` runs this job: the clock and the connect storm
    /// compare ours with the raw baseline only (the goals; the
    /// clock's frame is SignalR's, which socketioxide does not speak).
    pub fn runs_on(&self, variant: &Variant) -> bool {
        !matches!(self, Job::Clock { .. } | Job::ConnectStorm { .. })
            || variant.kind != ServerKind::SocketIo
    }

    /// Whether the job runs once however many repetitions the plan has:
    /// the long jobs with their own repetitions inside (single: many
    /// broadcasts; idle: a ramp of checkpoints; slow consumer: two
    /// phases), to stay within the time budget.
    pub fn once(&self) -> bool {
        matches!(
            self,
            Job::Single { .. } | Job::Idle { .. } | Job::SlowConsumer { .. }
        )
    }
}

/// Durations of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Before each measurement window.
    pub warmup: Duration,
    /// One measurement window.
    pub window: Duration,
    /// One step of the stepped-rate search.
    pub step: Duration,
    /// How long RSS settles before it is read.
    pub settle: Duration,
    /// The stepped rates, as fractions of the max rate.
    pub steps: &'static [f64],
    /// How long stalled receivers read their backlog at the end.
    pub fate_wait: Duration,
    /// How long the slow-consumer run may wait for the stalled
    /// receivers' backlog to build up.
    pub fill_limit: Duration,
    /// The clock's tick.
    pub tick: Duration,
}

/// The plan: jobs, repetitions, timing.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Workloads, each run against every variant.
    pub jobs: Vec<Job>,
    /// Repetitions of every (job, variant).
    pub repetitions: usize,
    /// Durations.
    pub timing: Timing,
    /// Variants to run (by name); all when empty.
    pub only: Vec<String>,
    /// Runs only jobs whose `workload params` text contains this.
    pub filter: Option<String>,
    /// The cores of the server and the load generator when pinned.
    pub cores: Option<Cores>,
}

impl Plan {
    /// The full plan (all workloads of the issue, about 25 minutes).
    pub fn full() -> Plan {
        let mut jobs = Vec::new();
        for connections in [1, 100, 1000] {
            for in_flight in [1, 8] {
                for size in [32, 1024] {
                    jobs.push(Job::Echo {
                        connections,
                        in_flight,
                        size,
                    });
                }
            }
        }
        for receivers in [100, 1000, 10_000] {
            for size in [32, 1024] {
                jobs.push(Job::Broadcast {
                    receivers,
                    size,
                    stepped: size == 32,
                });
            }
        }
        jobs.push(Job::Single {
            receivers: 10_000,
            count: 30,
        });
        jobs.push(Job::Idle {
            checkpoints: vec![1000, 10_000, 19_000],
        });
        jobs.push(Job::SlowConsumer {
            receivers: 1000,
            stalled: 10,
            size: 1024,
        });
        // 19,000 clients: the load generator holds them in one process
        // (the open-file limit is 20,000 per process; the server is
        // another process), spread over 32 source addresses.
        jobs.push(Job::Clock {
            clients: 19_000,
            ticks: 10,
        });
        jobs.push(Job::ConnectStorm {
            connections: 5000,
            concurrency: 64,
        });
        Plan {
            jobs,
            repetitions: 3,
            timing: Timing {
                warmup: Duration::from_millis(400),
                window: Duration::from_millis(1500),
                step: Duration::from_millis(800),
                settle: Duration::from_millis(1000),
                steps: &[0.25, 0.5, 0.7, 0.85, 1.0, 1.2],
                fate_wait: Duration::from_secs(3),
                fill_limit: Duration::from_secs(12),
                tick: Duration::from_secs(1),
            },
            only: Vec::new(),
            filter: None,
            cores: None,
        }
    }

    /// The quick plan: one small case of every workload, once.
    pub fn quick() -> Plan {
        Plan {
            jobs: vec![
                Job::Echo {
                    connections: 20,
                    in_flight: 8,
                    size: 32,
                },
                Job::Broadcast {
                    receivers: 50,
                    size: 32,
                    stepped: true,
                },
                Job::Single {
                    receivers: 200,
                    count: 2,
                },
                Job::Idle {
                    checkpoints: vec![300],
                },
                Job::SlowConsumer {
                    receivers: 50,
                    stalled: 1,
                    size: 1024,
                },
                Job::Clock {
                    clients: 20,
                    ticks: 2,
                },
                Job::ConnectStorm {
                    connections: 40,
                    concurrency: 8,
                },
            ],
            repetitions: 1,
            timing: Timing {
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(300),
                step: Duration::from_millis(200),
                settle: Duration::from_millis(200),
                steps: &[0.3, 0.6],
                fate_wait: Duration::from_millis(1000),
                fill_limit: Duration::from_secs(1),
                tick: Duration::from_millis(250),
            },
            only: Vec::new(),
            filter: None,
            cores: None,
        }
    }
}
