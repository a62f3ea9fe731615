//! The Rust client calling a hub through the typed proxy that
//! `#[hub_server]` generates (no method-name strings), against the
//! `StationHub` served over a real loopback socket, with JSON and with
//! MessagePack: results, `Option`, a server stream, an upload stream,
//! fire-and-forget, a hub error, a context, and a client result answered by
//! the `#[hub_client]` implementation. The same calls run once more over
//! the in-memory transport (`HubServer::test_client`: no socket), which
//! must behave exactly alike.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use hub_runtime::client::{HubConnection, HubConnectionBuilder};
use hub_runtime::protocol::HubProtocol;
use hub_runtime::server::HubServer;
use hub_runtime::{HubErrorKind, Timestamp};
use hub_tests::station::{
    IStationClient, IStationHubProxy, Level, Reading, Source, StationHub, serve_on_loopback,
};

const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
struct Client {
    added: Arc<Mutex<Vec<Reading>>>,
}

impl IStationClient for Client {
    async fn reading_added(&self, reading: Reading) {
        self.added.lock().unwrap().push(reading);
    }

    async fn confirm_reset(&self, station_id: String) -> bool {
        station_id == "obsolete"
    }
}

async fn serve() -> String {
    serve_on_loopback(HubServer::new(StationHub::default())).await
}

fn reading(station: &str, celsius: f64) -> Reading {
    Reading {
        station_id: station.to_owned(),
        celsius,
        taken_at: "2024-05-01T12:00:00.250Z".parse().unwrap(),
        note: Some("typed".to_owned()),
        source: Source::Sensor { sensor_id: 7 },
        extras: BTreeMap::from([("humidity".to_owned(), 40)]),
    }
}

/// Where the calls go: a hub over a loopback socket, or in memory.
enum Over {
    Socket,
    InMemory,
}

async fn every_kind_of_call(protocol: HubProtocol, over: Over) {
    let builder: HubConnectionBuilder = match over {
        Over::Socket => HubConnection::builder(serve().await),
        Over::InMemory => HubServer::new(StationHub::default()).test_client(),
    };
    let client = Client::default();
    let connection = builder
        .protocol(protocol)
        .handlers(client.clone().into_handlers())
        .build()
        .unwrap();
    tokio::time::timeout(PATIENCE, connection.start())
        .await
        .unwrap()
        .unwrap();
    let hub = connection.hub::<IStationHubProxy>();

    assert_eq!(hub.add_reading(reading("north", 21.5)).await.unwrap(), 1);
    assert_eq!(hub.add_reading(reading("north", 38.0)).await.unwrap(), 2);
    // The futures are `'static`: a call can be spawned.
    let spawned = tokio::spawn(hub.latest("north".to_owned()));
    let latest = spawned.await.unwrap().unwrap().unwrap();
    assert_eq!(latest, reading("north", 38.0));
    assert_eq!(hub.latest("nowhere".to_owned()).await.unwrap(), None);

    let streamed: Vec<Reading> = hub
        .readings("north".to_owned(), 10)
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        streamed,
        vec![reading("north", 21.5), reading("north", 38.0)]
    );

    let uploaded = hub
        .upload_readings(stream::iter([reading("east", 1.0), reading("east", 2.0)]))
        .await
        .unwrap();
    assert_eq!(uploaded, 2);

    hub.log("fire-and-forget".to_owned()).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !hub
        .log_lines()
        .await
        .unwrap()
        .contains(&"fire-and-forget".to_owned())
    {
        assert!(tokio::time::Instant::now() < deadline, "the send never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let levels = hub.levels().await.unwrap();
    assert_eq!(levels.get("north"), Some(&Level::HeatWarning));
    assert_eq!(levels.get("east"), Some(&Level::Normal));

    hub.add_reading(reading("obsolete", 3.0)).await.unwrap();
    assert!(hub.reset("obsolete".to_owned()).await.unwrap());
    assert!(!hub.reset("north".to_owned()).await.unwrap());
    assert_eq!(hub.latest("obsolete".to_owned()).await.unwrap(), None);

    let error = hub.add_reading(reading("north", -300.0)).await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert!(error.message().contains("absolute zero"), "{error}");

    // `reading_added` reached this client for every reading added.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client.added.lock().unwrap().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no ReadingAdded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added = client.added.lock().unwrap().clone();
    assert_eq!(added[0], reading("north", 21.5));
    assert!(added[0].taken_at > Timestamp::UNIX_EPOCH);

    connection.stop().await;
    let error = hub.latest("north".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
}

#[tokio::test]
async fn every_kind_of_call_with_json() {
    every_kind_of_call(HubProtocol::Json, Over::Socket).await;
}

#[tokio::test]
async fn every_kind_of_call_with_messagepack() {
    every_kind_of_call(HubProtocol::MessagePack, Over::Socket).await;
}

#[tokio::test]
async fn every_kind_of_call_in_memory_with_json() {
    every_kind_of_call(HubProtocol::Json, Over::InMemory).await;
}

#[tokio::test]
async fn every_kind_of_call_in_memory_with_messagepack() {
    every_kind_of_call(HubProtocol::MessagePack, Over::InMemory).await;
}
