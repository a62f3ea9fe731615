//! The server's metrics: names, attributes and histogram buckets.
//!
//! The hub records through the [`metrics`](https://docs.rs/metrics) facade:
//! install any recorder (before the first connection) and these appear; with
//! none, recording costs a branch on a cached no-op handle. Names use the
//! OpenTelemetry style (dots); a Prometheus exporter turns dots into
//! underscores and, with its recommended naming, adds `_total` to counters
//! and the unit to the name (`signalr_server_connection_duration_seconds`).
//!
//! ```no_run
//! # fn install() -> Result<(), Box<dyn std::error::Error>> {
//! // With the `metrics-exporter-prometheus` crate:
//! // let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
//! // for (name, buckets) in hub_runtime::server::metrics::HISTOGRAM_BUCKETS {
//! //     builder = builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)?;
//! // }
//! // let handle = builder.install_recorder()?; // handle.render() is the text for GET /metrics
//! let names = hub_runtime::server::metrics::HISTOGRAM_BUCKETS.len();
//! # let _ = names; Ok(())
//! # }
//! ```
//!
//! | name | kind | attributes |
//! |---|---|---|
//! | `signalr.server.connection.duration` | histogram, s | `signalr.transport`, `signalr.connection.status` |
//! | `signalr.server.active_connections` | gauge | `signalr.transport` |
//! | `signalr.server.invocations` | counter | `hub`, `method`, `outcome` |
//! | `signalr.server.invocation.duration` | histogram, s | `hub`, `method` |
//! | `signalr.server.sent_messages`, `signalr.server.sent_bytes` | counters | `signalr.protocol` |
//! | `signalr.server.outbound_queue.high_water` | histogram, items | `hub` |
//! | `signalr.server.slow_consumer_closes` | counter | `hub` |
//! | `signalr.server.stateful_reconnect.resumes`, `…replayed_messages` | counters | `hub` |
//! | `signalr.server.backplane.published`, `.received`, `.errors`, `.dropped` | counters | — |
//! | `signalr.server.backplane.buffered` | gauge | — |

pub use crate::telemetry::hub_metrics::{
    ACTIVE_CONNECTIONS, BACKPLANE_BUFFERED, BACKPLANE_DROPPED, BACKPLANE_ERRORS,
    BACKPLANE_PUBLISHED, BACKPLANE_RECEIVED, CONNECTION_DURATION, CONNECTION_DURATION_BUCKETS,
    HISTOGRAM_BUCKETS, INVOCATION_DURATION, INVOCATION_DURATION_BUCKETS, INVOCATIONS,
    OUTBOUND_QUEUE_HIGH_WATER, OUTBOUND_QUEUE_HIGH_WATER_BUCKETS, SENT_BYTES, SENT_MESSAGES,
    SLOW_CONSUMER_CLOSES, STATEFUL_REPLAYED, STATEFUL_RESUMES, describe_metrics,
};
