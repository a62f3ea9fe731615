//! Metrics go through the [`metrics`] facade: the application installs a
//! recorder (Prometheus, OpenTelemetry, StatsD, …) or none. Every handle a
//! connection or invocation touches is registered once per hub path (at
//! the first connection through it) and kept in [`HubMetrics`]: on the hot
//! path a metric is one call on a cached handle, which is a no-op without a
//! recorder (no key is built, no label is allocated, no lock is taken). A
//! recorder must therefore be installed before the first connection.
//!
//! The names and attributes of the two standard metrics are those of the
//! OpenTelemetry semantic conventions for SignalR (what ASP.NET Core
//! publishes); ours follow the same style. The README lists them all.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};

/// `signalr.server.connection.duration`: seconds from a connection's
/// transport request to its end (histogram; `signalr.transport`,
/// `signalr.connection.status`). Semantic convention.
pub const CONNECTION_DURATION: &str = "signalr.server.connection.duration";
/// `signalr.server.active_connections`: connections running now (gauge;
/// `signalr.transport`). Semantic convention.
pub const ACTIVE_CONNECTIONS: &str = "signalr.server.active_connections";
/// `signalr.server.invocations`: hub method calls (counter; `hub`, `method`,
/// `outcome`).
pub const INVOCATIONS: &str = "signalr.server.invocations";
/// `signalr.server.invocation.duration`: seconds a hub method ran
/// (histogram; `hub`, `method`).
pub const INVOCATION_DURATION: &str = "signalr.server.invocation.duration";
/// `signalr.server.sent_messages`: messages queued to connections (counter;
/// `signalr.protocol`). A broadcast counts once per receiving connection.
pub const SENT_MESSAGES: &str = "signalr.server.sent_messages";
/// `signalr.server.sent_bytes`: bytes of those messages (counter;
/// `signalr.protocol`).
pub const SENT_BYTES: &str = "signalr.server.sent_bytes";
/// `signalr.server.outbound_queue.high_water`: per connection, the deepest
/// its outbound queue got, in queued items, recorded when it ends
/// (histogram; `hub`).
pub const OUTBOUND_QUEUE_HIGH_WATER: &str = "signalr.server.outbound_queue.high_water";
/// `signalr.server.slow_consumer_closes`: connections closed because their
/// outbound queue was full (counter; `hub`).
pub const SLOW_CONSUMER_CLOSES: &str = "signalr.server.slow_consumer_closes";
/// `signalr.server.stateful_reconnect.resumes`: stateful connections resumed
/// on a new WebSocket (counter; `hub`).
pub const STATEFUL_RESUMES: &str = "signalr.server.stateful_reconnect.resumes";
/// `signalr.server.stateful_reconnect.replayed_messages`: messages sent again
/// after a resume (counter; `hub`).
pub const STATEFUL_REPLAYED: &str = "signalr.server.stateful_reconnect.replayed_messages";
/// `signalr.server.backplane.published`: messages published to the
/// backplane (counter).
pub const BACKPLANE_PUBLISHED: &str = "signalr.server.backplane.published";
/// `signalr.server.backplane.received`: messages received from the
/// backplane (counter).
pub const BACKPLANE_RECEIVED: &str = "signalr.server.backplane.received";
/// `signalr.server.backplane.errors`: failed publishes and lost backplane
/// connections (counter).
pub const BACKPLANE_ERRORS: &str = "signalr.server.backplane.errors";
/// `signalr.server.backplane.buffered`: messages waiting for the backplane
/// to come back (gauge).
pub const BACKPLANE_BUFFERED: &str = "signalr.server.backplane.buffered";
/// `signalr.server.backplane.dropped`: buffered messages dropped because the
/// buffer was full (counter).
pub const BACKPLANE_DROPPED: &str = "signalr.server.backplane.dropped";
/// `signalr.server.backplane.duplicates`: second copies of a backplane
/// message, dropped (counter).
pub const BACKPLANE_DUPLICATES: &str = "signalr.server.backplane.duplicates";

/// The bucket boundaries of `signalr.server.connection.duration`, from the
/// semantic conventions (seconds).
pub const CONNECTION_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// The bucket boundaries of `signalr.server.invocation.duration` (seconds):
/// the semantic conventions' HTTP request duration buckets.
pub const INVOCATION_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Bucket boundaries of the outbound queue high-water mark (items).
pub const OUTBOUND_QUEUE_HIGH_WATER_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Every histogram with its bucket boundaries, for exporters that need
/// them up front (the Prometheus exporter renders a histogram without
/// buckets as a summary).
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (CONNECTION_DURATION, CONNECTION_DURATION_BUCKETS),
    (INVOCATION_DURATION, INVOCATION_DURATION_BUCKETS),
    (OUTBOUND_QUEUE_HIGH_WATER, OUTBOUND_QUEUE_HIGH_WATER_BUCKETS),
];

/// Describes every metric (unit and help text) to the installed recorder.
/// Idempotent; called when a hub registers its handles.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        CONNECTION_DURATION,
        Unit::Seconds,
        "The duration of connections on the server."
    );
    describe_gauge!(
        ACTIVE_CONNECTIONS,
        "Number of connections that are currently active on the server."
    );
    describe_counter!(
        INVOCATIONS,
        "Hub method invocations, by hub, method and outcome."
    );
    describe_histogram!(
        INVOCATION_DURATION,
        Unit::Seconds,
        "How long hub methods ran."
    );
    describe_counter!(SENT_MESSAGES, "Messages queued to connections.");
    describe_counter!(SENT_BYTES, Unit::Bytes, "Bytes queued to connections.");
    describe_histogram!(
        OUTBOUND_QUEUE_HIGH_WATER,
        "The deepest each connection's outbound queue got (items)."
    );
    describe_counter!(
        SLOW_CONSUMER_CLOSES,
        "Connections closed because they did not read fast enough."
    );
    describe_counter!(STATEFUL_RESUMES, "Stateful-reconnect connections resumed.");
    describe_counter!(
        STATEFUL_REPLAYED,
        "Messages replayed to resumed connections."
    );
    describe_counter!(BACKPLANE_PUBLISHED, "Messages published to the backplane.");
    describe_counter!(BACKPLANE_RECEIVED, "Messages received from the backplane.");
    describe_counter!(
        BACKPLANE_ERRORS,
        "Failed backplane publishes and lost backplane connections."
    );
    describe_gauge!(
        BACKPLANE_BUFFERED,
        "Messages buffered while the backplane is away."
    );
    describe_counter!(
        BACKPLANE_DROPPED,
        "Buffered backplane messages dropped (buffer full)."
    );
    describe_counter!(
        BACKPLANE_DUPLICATES,
        "Second copies of backplane messages, dropped."
    );
}

/// The transport of a connection, as the semantic conventions name it
/// (`signalr.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportLabel {
    WebSockets = 0,
    ServerSentEvents = 1,
    LongPolling = 2,
}

impl TransportLabel {
    const ALL: [TransportLabel; 3] = [
        TransportLabel::WebSockets,
        TransportLabel::ServerSentEvents,
        TransportLabel::LongPolling,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TransportLabel::WebSockets => "web_sockets",
            TransportLabel::ServerSentEvents => "server_sent_events",
            TransportLabel::LongPolling => "long_polling",
        }
    }
}

/// How a connection ended (`signalr.connection.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionStatus {
    /// The client or the transport ended it (also errors and slow consumers,
    /// as ASP.NET Core counts them).
    NormalClosure = 0,
    /// The client was silent for too long, or did not come back in time.
    Timeout = 1,
    /// The server shut down.
    AppShutdown = 2,
}

impl ConnectionStatus {
    const ALL: [ConnectionStatus; 3] = [
        ConnectionStatus::NormalClosure,
        ConnectionStatus::Timeout,
        ConnectionStatus::AppShutdown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::NormalClosure => "normal_closure",
            ConnectionStatus::Timeout => "timeout",
            ConnectionStatus::AppShutdown => "app_shutdown",
        }
    }
}

/// How an invocation ended (`outcome`).
///
/// `Unauthorized` and `Blocked` are the outcomes of authorization (a policy
/// refused the caller) and of hub filters (a filter stopped the call); see
/// [`Outcome::of_error`], the one place that maps an error to an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok = 0,
    Error = 1,
    Unauthorized = 2,
    Blocked = 3,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Unauthorized,
        Outcome::Blocked,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Blocked => "blocked",
        }
    }

    /// The outcome of an invocation whose method failed with `error`.
    /// Authorization refusals and filter blocks are `InvocationError`s of
    /// their own (`Unauthorized`, `Blocked`), mapped in the dispatcher's
    /// `outcome_of`; a hub error is always `Error`.
    pub(crate) fn of_error(_error: &crate::HubError) -> Outcome {
        Outcome::Error
    }
}

/// The hub protocols, as the `signalr.protocol` label names them.
fn protocol_index(protocol: crate::protocol::HubProtocol) -> usize {
    match protocol {
        crate::protocol::HubProtocol::Json => 0,
        crate::protocol::HubProtocol::MessagePack => 1,
    }
}

const PROTOCOL_LABELS: [&str; 2] = ["json", "messagepack"];

/// The label value of invocations of a method the hub does not have: the
/// wire name would let clients create any number of series.
pub(crate) const UNKNOWN_METHOD: &str = "(unknown)";

/// One hub's metric handles, registered once per hub path.
pub(crate) struct HubMetrics {
    /// `signalr.server.active_connections` per transport.
    active: [Gauge; 3],
    /// `signalr.server.connection.duration` per transport and status.
    duration: [[Histogram; 3]; 3],
    /// `signalr.server.invocations` per method (and one more for unknown
    /// methods) and outcome.
    invocations: Vec<[Counter; 4]>,
    /// `signalr.server.invocation.duration` per method.
    invocation_duration: Vec<Histogram>,
    sent_messages: [Counter; 2],
    sent_bytes: [Counter; 2],
    queue_high_water: Histogram,
    slow_consumer_closes: Counter,
    resumes: Counter,
    replayed: Counter,
    /// Whether a recorder was installed when the handles were registered:
    /// only then are invocations timed (two clock reads, a measurable part
    /// of an echo call's cost).
    recording: bool,
}

/// Whether a `metrics` recorder is installed. The facade does not say; its
/// no-op recorder is zero-sized and real ones hold state, so the size of
/// the current recorder tells. (A zero-sized recorder of one's own is taken
/// for none: invocation durations are then recorded only for invocations
/// whose span is enabled; everything else is recorded.)
fn recorder_installed() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

impl std::fmt::Debug for HubMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubMetrics").finish_non_exhaustive()
    }
}

impl HubMetrics {
    /// Registers the handles of the hub served at `hub` (its path) whose
    /// methods are `methods` (wire names).
    pub(crate) fn new(hub: &str, methods: &[&'static str]) -> HubMetrics {
        describe_metrics();
        let hub: Arc<str> = Arc::from(hub);
        let hub_label = || metrics::Label::new("hub", metrics::SharedString::from(hub.clone()));
        let active = TransportLabel::ALL.map(|transport| {
            metrics::gauge!(ACTIVE_CONNECTIONS, "signalr.transport" => transport.as_str())
        });
        let duration = TransportLabel::ALL.map(|transport| {
            ConnectionStatus::ALL.map(|status| {
                metrics::histogram!(CONNECTION_DURATION,
                    "signalr.transport" => transport.as_str(),
                    "signalr.connection.status" => status.as_str())
            })
        });
        let mut invocations = Vec::with_capacity(methods.len() + 1);
        let mut invocation_duration = Vec::with_capacity(methods.len() + 1);
        for method in methods.iter().copied().chain([UNKNOWN_METHOD]) {
            invocations.push(Outcome::ALL.map(|outcome| {
                metrics::counter!(
                    INVOCATIONS,
                    vec![
                        hub_label(),
                        metrics::Label::new("method", method),
                        metrics::Label::new("outcome", outcome.as_str()),
                    ]
                )
            }));
            invocation_duration.push(metrics::histogram!(
                INVOCATION_DURATION,
                vec![hub_label(), metrics::Label::new("method", method)]
            ));
        }
        let by_protocol = |name: &'static str| {
            PROTOCOL_LABELS.map(|protocol| metrics::counter!(name, "signalr.protocol" => protocol))
        };
        HubMetrics {
            active,
            duration,
            sent_messages: by_protocol(SENT_MESSAGES),
            sent_bytes: by_protocol(SENT_BYTES),
            queue_high_water: metrics::histogram!(OUTBOUND_QUEUE_HIGH_WATER, vec![hub_label()]),
            slow_consumer_closes: metrics::counter!(SLOW_CONSUMER_CLOSES, vec![hub_label()]),
            resumes: metrics::counter!(STATEFUL_RESUMES, vec![hub_label()]),
            replayed: metrics::counter!(STATEFUL_REPLAYED, vec![hub_label()]),
            invocations,
            invocation_duration,
            recording: recorder_installed(),
        }
    }

    /// Whether invocations should be timed for the metrics.
    pub(crate) fn recording(&self) -> bool {
        self.recording
    }

    /// Counts a connection as active until the guard ends it.
    pub(crate) fn connection_started(
        self: &Arc<Self>,
        transport: TransportLabel,
    ) -> ConnectionMetricsGuard {
        self.active[transport as usize].increment(1.0);
        ConnectionMetricsGuard {
            metrics: self.clone(),
            transport,
            started: Instant::now(),
            status: ConnectionStatus::NormalClosure,
        }
    }

    /// Counts an invocation of method `index` (`None`: unknown) that ended
    /// with `outcome`, after `elapsed` (if it ran).
    pub(crate) fn invocation(
        &self,
        index: Option<usize>,
        outcome: Outcome,
        elapsed: Option<Duration>,
    ) {
        let row = index.unwrap_or(self.invocations.len() - 1);
        if let Some(counters) = self.invocations.get(row) {
            counters[outcome as usize].increment(1);
        }
        if let (Some(elapsed), Some(histogram)) = (elapsed, self.invocation_duration.get(row)) {
            histogram.record(elapsed.as_secs_f64());
        }
    }

    /// Counts `bytes` queued to one connection speaking `protocol`.
    pub(crate) fn sent(&self, protocol: crate::protocol::HubProtocol, bytes: usize) {
        let index = protocol_index(protocol);
        self.sent_messages[index].increment(1);
        self.sent_bytes[index].increment(bytes as u64);
    }

    pub(crate) fn queue_high_water(&self, depth: usize) {
        self.queue_high_water.record(depth as f64);
    }

    pub(crate) fn slow_consumer_closed(&self) {
        self.slow_consumer_closes.increment(1);
    }

    pub(crate) fn resumed(&self) {
        self.resumes.increment(1);
    }

    pub(crate) fn replayed(&self, messages: usize) {
        self.replayed.increment(messages as u64);
    }
}

#[cfg(feature = "redis")]
/// A backplane's metric handles, registered when it is made.
pub(crate) struct BackplaneMetrics {
    published: Counter,
    received: Counter,
    errors: Counter,
    buffered: Gauge,
    dropped: Counter,
    duplicates: Counter,
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for BackplaneMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackplaneMetrics").finish_non_exhaustive()
    }
}

#[cfg(feature = "redis")]
impl BackplaneMetrics {
    pub(crate) fn new() -> BackplaneMetrics {
        describe_metrics();
        BackplaneMetrics {
            published: metrics::counter!(BACKPLANE_PUBLISHED),
            received: metrics::counter!(BACKPLANE_RECEIVED),
            errors: metrics::counter!(BACKPLANE_ERRORS),
            buffered: metrics::gauge!(BACKPLANE_BUFFERED),
            dropped: metrics::counter!(BACKPLANE_DROPPED),
            duplicates: metrics::counter!(BACKPLANE_DUPLICATES),
        }
    }

    pub(crate) fn published(&self, messages: usize) {
        self.published.increment(messages as u64);
    }

    pub(crate) fn received(&self) {
        self.received.increment(1);
    }

    pub(crate) fn error(&self) {
        self.errors.increment(1);
    }

    pub(crate) fn buffered(&self, messages: usize) {
        self.buffered.set(messages as f64);
    }

    pub(crate) fn dropped(&self, messages: u64) {
        self.dropped.increment(messages);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.increment(1);
    }
}

/// An active connection's metrics: ends it (gauge down, duration recorded)
/// when dropped, however the connection's task ends.
#[derive(Debug)]
pub(crate) struct ConnectionMetricsGuard {
    metrics: Arc<HubMetrics>,
    transport: TransportLabel,
    started: Instant,
    status: ConnectionStatus,
}

impl ConnectionMetricsGuard {
    /// Says how the connection ended.
    pub(crate) fn set_status(&mut self, status: ConnectionStatus) {
        self.status = status;
    }
}

impl Drop for ConnectionMetricsGuard {
    fn drop(&mut self) {
        let transport = self.transport as usize;
        self.metrics.active[transport].decrement(1.0);
        self.metrics.duration[transport][self.status as usize]
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The metric handles of every hub path a server is reached through
/// (usually one), registered at the first connection of each.
#[derive(Default)]
pub(crate) struct HubMetricsByPath {
    by_path: Mutex<Vec<(Box<str>, Arc<HubMetrics>)>>,
}

impl HubMetricsByPath {
    /// The handles for `path`, registered on first use.
    pub(crate) fn get(
        &self,
        path: &str,
        methods: impl FnOnce() -> Vec<&'static str>,
    ) -> Arc<HubMetrics> {
        let mut by_path = self.by_path.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, metrics)) = by_path.iter().find(|(known, _)| &**known == path) {
            return metrics.clone();
        }
        let metrics = Arc::new(HubMetrics::new(path, &methods()));
        by_path.push((path.into(), metrics.clone()));
        metrics
    }
}
