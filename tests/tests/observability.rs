//! Spans and trace context, captured from a real server and a real Rust
//! client over loopback sockets (the `StationHub`, called through its
//! typed proxy):
//!
//! - a test subscriber sees the documented spans with their fields:
//!   `signalr.connection` (connection id, transport, protocol, user, close
//!   status), `signalr.invocation` / `signalr.stream` (OpenTelemetry RPC
//!   fields, invocation id, outcome, duration) as children of the
//!   connection span, `signalr.upload` inside its invocation, errors as
//!   events inside the invocation, a slow-consumer close as an event inside
//!   the slow connection's span;
//! - with `tracing-opentelemetry`, a span started in the Rust client is the
//!   parent of the server's invocation span (same trace id), through the
//!   `traceparent` header of the invocation.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use hub_runtime::client::HubConnection;
use hub_runtime::server::{HubOptions, HubServer};
use hub_runtime::{CallContext, HubError, hub, hub_client, hub_server};
use hub_tests::station::{
    IStationClient, IStationHubProxy, Reading, Source, StationHub, serve_on_loopback,
};
use tracing::Instrument as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

const PATIENCE: Duration = Duration::from_secs(30);

/// One span as the test subscriber saw it.
#[derive(Debug, Clone, Default)]
struct SeenSpan {
    name: String,
    fields: BTreeMap<String, String>,
    parent: Option<u64>,
    closed: bool,
    /// Messages of the events recorded inside it.
    events: Vec<String>,
}

/// Records every span, its fields (also those recorded later), its parent,
/// whether it closed, and the events inside it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<HashMap<u64, SeenSpan>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut span = SeenSpan {
            name: attributes.metadata().name().to_owned(),
            parent: context
                .span(id)
                .and_then(|span| span.parent())
                .map(|parent| parent.id().into_u64()),
            ..SeenSpan::default()
        };
        attributes.record(&mut Fields(&mut span.fields));
        self.0.lock().unwrap().insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        let Some(parent) = context.event_span(event) else {
            return;
        };
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        if let Some(span) = self.0.lock().unwrap().get_mut(&parent.id().into_u64()) {
            span.events
                .push(fields.remove("message").unwrap_or_default());
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            span.closed = true;
        }
    }
}

impl Capture {
    fn spans(&self) -> Vec<(u64, SeenSpan)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(id, span)| (*id, span.clone()))
            .collect()
    }

    /// The one span named `name` whose fields include `fields`.
    fn find(&self, name: &str, fields: &[(&str, &str)]) -> (u64, SeenSpan) {
        let found: Vec<_> = self
            .spans()
            .into_iter()
            .filter(|(_, span)| {
                span.name == name
                    && fields.iter().all(|(key, value)| {
                        span.fields.get(*key).map(String::as_str) == Some(*value)
                    })
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {name} span with {fields:?}; all spans: {:#?}",
            self.spans()
        );
        found.into_iter().next().unwrap()
    }

    /// Waits (the server ends spans after the client moved on) until the
    /// span `name` with `fields` is closed and has `field`.
    async fn closed(&self, name: &str, fields: &[(&str, &str)], field: &str) -> (u64, SeenSpan) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let done = self.spans().into_iter().any(|(_, span)| {
                span.name == name
                    && span.closed
                    && span.fields.contains_key(field)
                    && fields.iter().all(|(key, value)| {
                        span.fields.get(*key).map(String::as_str) == Some(*value)
                    })
            });
            if done {
                return self.find(name, fields);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} {fields:?} never closed with {field}: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[derive(Clone, Default)]
struct Client;

impl IStationClient for Client {
    async fn reading_added(&self, _reading: Reading) {}

    async fn confirm_reset(&self, _station_id: String) -> bool {
        false
    }
}

fn reading(station: &str, celsius: f64) -> Reading {
    Reading {
        station_id: station.to_owned(),
        celsius,
        taken_at: "2024-05-01T12:00:00.250Z".parse().unwrap(),
        note: None,
        source: Source::Sensor { sensor_id: 7 },
        extras: BTreeMap::new(),
    }
}

async fn serve(options: HubOptions) -> String {
    serve_on_loopback(
        HubServer::builder(StationHub::default())
            .options(options)
            .build(),
    )
    .await
}

async fn connect(url: &str) -> HubConnection {
    let connection = HubConnection::builder(url)
        .handlers(Client.into_handlers())
        .build()
        .unwrap();
    tokio::time::timeout(PATIENCE, connection.start())
        .await
        .unwrap()
        .unwrap();
    connection
}

/// The test runs on one thread (`current_thread`), where the subscriber is
/// the default: the server's and the client's tasks all report to it.
#[tokio::test]
async fn spans_have_the_documented_names_fields_and_parents() {
    let capture = Capture::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let url = serve(HubOptions::default()).await;
    let connection = connect(&url).await;
    let hub = connection.hub::<IStationHubProxy>();

    assert_eq!(hub.add_reading(reading("north", 21.5)).await.unwrap(), 1);
    let error = hub.add_reading(reading("north", -300.0)).await.unwrap_err();
    assert!(error.message().contains("absolute zero"), "{error}");
    let streamed: Vec<Reading> = hub
        .readings("north".to_owned(), 10)
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(streamed.len(), 1);
    let uploaded = hub
        .upload_readings(stream::iter([reading("south", 1.0), reading("south", 2.0)]))
        .await
        .unwrap();
    assert_eq!(uploaded, 2);
    connection.stop().await;

    let (connection_id, connection_span) = capture
        .closed("signalr.connection", &[], "signalr.connection.status")
        .await;
    let fields = &connection_span.fields;
    assert_eq!(fields["rpc.system"], "signalr");
    assert_eq!(fields["rpc.service"], "StationHub");
    assert_eq!(fields["signalr.hub.path"], "/hubs/station");
    assert_eq!(fields["signalr.transport"], "web_sockets");
    assert_eq!(fields["signalr.protocol"], "json");
    assert_eq!(fields["signalr.connection.status"], "normal_closure");
    assert_eq!(fields["signalr.connection.id"].len(), 22, "{fields:?}");
    assert!(!fields.contains_key("enduser.id"), "anonymous: {fields:?}");

    let rpc = |method: &'static str| {
        [
            ("rpc.system", "signalr"),
            ("rpc.service", "StationHub"),
            ("rpc.method", method),
        ]
    };
    let ok = [
        rpc("AddReading").as_slice(),
        &[("signalr.invocation.outcome", "ok")],
    ]
    .concat();
    let (_, added) = capture
        .closed("signalr.invocation", &ok, "signalr.invocation.duration")
        .await;
    assert_eq!(added.parent, Some(connection_id));
    assert_eq!(added.fields["otel.kind"], "server");
    assert_eq!(added.fields["otel.name"], "StationHub/AddReading");
    assert!(!added.fields["signalr.invocation.id"].is_empty());
    assert!(
        added.fields["signalr.invocation.duration"]
            .parse::<f64>()
            .unwrap()
            >= 0.0
    );

    let failed = [
        rpc("AddReading").as_slice(),
        &[("signalr.invocation.outcome", "error")],
    ]
    .concat();
    let (_, failed) = capture
        .closed("signalr.invocation", &failed, "signalr.invocation.duration")
        .await;
    assert_eq!(failed.parent, Some(connection_id));
    assert_eq!(failed.fields["otel.status_code"], "error");
    assert!(
        failed
            .events
            .iter()
            .any(|event| event == "invocation failed"),
        "the error is an event inside the invocation span: {failed:?}"
    );

    let streamed = [
        rpc("Readings").as_slice(),
        &[("signalr.invocation.outcome", "ok")],
    ]
    .concat();
    let (_, stream_span) = capture
        .closed("signalr.stream", &streamed, "signalr.invocation.duration")
        .await;
    assert_eq!(stream_span.parent, Some(connection_id));

    let uploaded = [
        rpc("UploadReadings").as_slice(),
        &[("signalr.invocation.outcome", "ok")],
    ]
    .concat();
    let (upload_invocation, _) = capture
        .closed(
            "signalr.invocation",
            &uploaded,
            "signalr.invocation.duration",
        )
        .await;
    let (_, upload) = capture
        .closed("signalr.upload", &[], "signalr.stream.ids")
        .await;
    assert_eq!(upload.parent, Some(upload_invocation));
    // One stream id (the client numbers them with its invocation ids).
    let ids = &upload.fields["signalr.stream.ids"];
    assert!(
        ids.starts_with('[') && ids.ends_with(']') && !ids.contains(','),
        "{ids}"
    );
}

/// What the flood hub calls on its clients.
#[hub_client]
pub trait IFloodClient {
    /// One message of a flood.
    async fn drop_in(&self, number: u32);
}

/// A hub that floods the other clients.
#[hub_server]
pub trait IFloodHub {
    /// Sends `count` messages to every other client, without waiting.
    async fn flood(&self, ctx: &CallContext<Self>, count: u32) -> Result<(), HubError>;
}

struct FloodHub;

#[hub(client = IFloodClient)]
impl IFloodHub for FloodHub {
    async fn flood(&self, ctx: &CallContext<Self>, count: u32) -> Result<(), HubError> {
        for number in 0..count {
            ctx.clients().others().drop_in(number).await?;
        }
        Ok(())
    }
}

#[derive(Clone)]
struct FloodClient;

impl IFloodClient for FloodClient {
    async fn drop_in(&self, _number: u32) {}
}

/// With an outbound queue of one message, one `Flood` overflows the other
/// connection's queue before its writer runs (one thread): the warning is
/// inside the slow connection's span, not the flooding invocation's.
#[tokio::test]
async fn a_slow_consumer_close_is_an_event_in_the_slow_connections_span() {
    let capture = Capture::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let hub = HubServer::builder(FloodHub)
        .options(HubOptions {
            outbound_queue_capacity: 1,
            ..HubOptions::default()
        })
        .build();
    let app = axum::Router::new().nest("/hubs/flood", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{address}/hubs/flood");
    let connect = |url: String| async move {
        let connection = HubConnection::builder(url.as_str())
            .handlers(FloodClient.into_handlers())
            .build()
            .unwrap();
        tokio::time::timeout(PATIENCE, connection.start())
            .await
            .unwrap()
            .unwrap();
        connection
    };
    let slow = connect(url.clone()).await;
    let slow_id = slow.connection_id().unwrap();
    let flooder = connect(url).await;
    flooder.hub::<IFloodHubProxy>().flood(10).await.unwrap();

    let (_, slow_span) = capture
        .closed(
            "signalr.connection",
            &[("signalr.connection.id", slow_id.as_str())],
            "signalr.connection.status",
        )
        .await;
    assert!(
        slow_span
            .events
            .iter()
            .any(|event| event == "outbound queue full; closing the slow connection"),
        "{slow_span:?}"
    );
    let (_, flood) = capture
        .closed(
            "signalr.invocation",
            &[("rpc.method", "Flood")],
            "signalr.invocation.outcome",
        )
        .await;
    assert!(flood.events.is_empty(), "{flood:?}");
    flooder.stop().await;
}

/// A span current in the Rust client is the parent of the server's
/// invocation span, across the wire: the client puts `traceparent` in the
/// invocation's headers, the server adopts it.
#[tokio::test]
async fn the_servers_invocation_span_is_a_child_of_the_clients_span() {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("observability-test");
    let _default = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
    );
    let url = serve(HubOptions::default()).await;
    let connection = connect(&url).await;
    let hub = connection.hub::<IStationHubProxy>();

    let client_span = tracing::info_span!("client.add_reading");
    let count = async { hub.add_reading(reading("east", 3.0)).await }
        .instrument(client_span.clone())
        .await
        .unwrap();
    assert_eq!(count, 1);
    drop(client_span);
    connection.stop().await;
    // The server span ends right after the Completion is queued.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (client, server) = loop {
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        let client = spans
            .iter()
            .find(|span| span.name == "client.add_reading")
            .cloned();
        let server = spans
            .iter()
            .find(|span| span.name == "StationHub/AddReading")
            .cloned();
        if let (Some(client), Some(server)) = (client, server) {
            break (client, server);
        }
        assert!(tokio::time::Instant::now() < deadline, "spans: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        server.span_context.trace_id(),
        client.span_context.trace_id(),
        "same trace"
    );
    assert_eq!(
        server.parent_span_id,
        client.span_context.span_id(),
        "the client's span is the server span's parent"
    );
    assert_eq!(server.span_kind, opentelemetry::trace::SpanKind::Server);
    assert!(
        server
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "rpc.system" && kv.value.as_str() == "signalr")
    );
}

/// `GET /metrics` of a server at `base` (`http://HOST:PORT`): the value of
/// the sample line `name` (no labels), 0 when absent.
async fn scrape(base: &str, name: &str) -> f64 {
    scrape_series(base, name).await.unwrap_or(0.0)
}

/// The value of the series `name`, `None` when the server does not export it.
async fn scrape_series(base: &str, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    socket
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map(|value| value.trim().parse().unwrap())
}

/// Whether the metric `name` reaches `at_least` within [`PATIENCE`].
async fn scrape_until(base: &str, name: &str, at_least: f64) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if scrape(base, name).await >= at_least {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two `conformance-server --redis … --metrics` processes: a broadcast from
/// a client of the first is published by it and received by both (each
/// node subscribes to `all`), and the counters say so.
#[tokio::test]
async fn backplane_metrics_count_publishes_and_receives() {
    use hub_tests::conformance::ConformanceConnection;
    use hub_tests::{RedisProcess, ServerProcess};
    const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

    let redis = RedisProcess::start();
    let url = redis.url();
    let a = ServerProcess::start(SERVER, &["--redis", &url, "--metrics"]);
    let b = ServerProcess::start(SERVER, &["--redis", &url, "--metrics"]);
    let mut receiver = ConformanceConnection::new(
        HubConnection::builder(format!("{}/hubs/test", b.base_url()).as_str()),
        "receiver",
    )
    .unwrap();
    receiver.start().await.unwrap();
    let sender = ConformanceConnection::new(
        HubConnection::builder(format!("{}/hubs/test", a.base_url()).as_str()),
        "sender",
    )
    .unwrap();
    sender.start().await.unwrap();
    let published = "signalr_server_backplane_published_total";
    let received = "signalr_server_backplane_received_total";
    let before = (
        scrape(a.base_url(), published).await,
        scrape(b.base_url(), received).await,
    );
    sender.hub.broadcast("across".to_owned()).await.unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, receiver.next())
            .await
            .unwrap(),
        "across"
    );
    // The publisher counts a message once Redis has answered its PUBLISH,
    // which can be after the receiver already has it: wait for the count.
    assert!(
        scrape_until(a.base_url(), published, before.0 + 1.0).await,
        "the sending node counts the broadcast it published"
    );
    assert!(
        scrape_until(b.base_url(), received, before.1 + 1.0).await,
        "the receiving node counts the broadcast it received"
    );
    assert_eq!(
        scrape(a.base_url(), "signalr_server_backplane_dropped_total").await,
        0.0
    );
    assert_eq!(
        scrape_series(b.base_url(), "signalr_server_backplane_duplicates_total").await,
        Some(0.0),
        "the receiving node exports its count of dropped second copies, and one Redis \
         server delivers each message once"
    );
    assert_eq!(
        scrape(a.base_url(), "signalr_server_backplane_buffered").await,
        0.0
    );
    sender.connection.stop().await;
    receiver.connection.stop().await;
}
