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
//! | `signalr.server.backplane.published`, `.received`, `.errors`, `.dropped`, `.duplicates` | counters | — |
//! | `signalr.server.backplane.buffered` | gauge | — |
//!
//! `prometheus_router` also reports `tokio_alive_tasks` (a gauge, the
//! tokio runtime's live tasks, read at each scrape).

pub use crate::telemetry::hub_metrics::{
    ACTIVE_CONNECTIONS, BACKPLANE_BUFFERED, BACKPLANE_DROPPED, BACKPLANE_DUPLICATES,
    BACKPLANE_ERRORS, BACKPLANE_PUBLISHED, BACKPLANE_RECEIVED, CONNECTION_DURATION,
    CONNECTION_DURATION_BUCKETS, HISTOGRAM_BUCKETS, INVOCATION_DURATION,
    INVOCATION_DURATION_BUCKETS, INVOCATIONS, OUTBOUND_QUEUE_HIGH_WATER,
    OUTBOUND_QUEUE_HIGH_WATER_BUCKETS, SENT_BYTES, SENT_MESSAGES, SLOW_CONSUMER_CLOSES,
    STATEFUL_REPLAYED, STATEFUL_RESUMES, describe_metrics,
};

/// Installs a Prometheus recorder (from `metrics-exporter-prometheus`) as
/// the global `metrics` recorder, with every histogram's buckets and
/// Prometheus' recommended naming, and returns a router that answers
/// `GET /metrics` with the text exposition format. Call it once, before
/// the first connection (feature `prometheus`).
///
/// ```no_run
/// # async fn run(hub: hub_runtime::server::HubServer<impl hub_runtime::Hub>) -> Result<(), Box<dyn std::error::Error>> {
/// let app = axum::Router::new()
///     .nest("/hubs/chat", hub.router())
///     .merge(hub_runtime::server::metrics::prometheus_router()?);
/// # let _: axum::Router = app; Ok(())
/// # }
/// ```
#[cfg(feature = "prometheus")]
pub fn prometheus_router<S>() -> Result<axum::Router<S>, metrics_exporter_prometheus::BuildError>
where
    S: Clone + Send + Sync + 'static,
{
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for (name, buckets) in HISTOGRAM_BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)?;
    }
    let handle = builder.install_recorder()?;
    describe_metrics();
    // The exporter keeps histograms' samples until rendered: render on
    // every scrape, and upkeep (which also drains them) now and then in
    // between so that an unscraped process does not grow.
    let upkeep = handle.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
    }
    Ok(axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            // The runtime's live tasks, read at scrape time (a gauge named
            // `tokio_alive_tasks`): a count that stays up once the
            // connections are gone is a task leak (the soak checks it).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                metrics::gauge!("tokio.alive_tasks")
                    .set(runtime.metrics().num_alive_tasks() as f64);
            }
            let text = handle.render();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    ))
}
