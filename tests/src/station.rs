//! A weather-station contract that uses every feature of typed contracts:
//! the hub's methods as a `#[hub_server]` trait (results, `Option`,
//! server streams, upload streams, fire-and-forget, a context, a renamed
//! method, a client result), the clients' as a `#[hub_client]` trait, and
//! serde-renamed structs, tagged enums and maps in between. Both traits are
//! `typescript`: `hub-typescript` writes `tests/ts/generated/station.ts`
//! from them.
//!
//! [`StationHub`] implements the hub (run by the `station-server` binary
//! and by the Rust proxy tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures_util::{Stream, StreamExt};
use hub_runtime::hub::UploadStream;
use hub_runtime::{CallContext, HubError, Timestamp, hub, hub_client, hub_server};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// How a reading was taken: a tagged union on the wire
/// (`{"type":"manual","by":"ann"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Source {
    /// Read off by a person.
    Manual {
        /// Who read it.
        by: String,
    },
    /// Sent by a sensor.
    #[serde(rename_all = "camelCase")]
    Sensor {
        /// The sensor's number.
        sensor_id: u32,
    },
}

/// How worrying a station's readings are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Nothing to see.
    Normal,
    /// Above 35 °C.
    HeatWarning,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// The station that measured it.
    pub station_id: String,
    /// The temperature.
    pub celsius: f64,
    /// When it was measured (an RFC 3339 string on the JSON wire).
    pub taken_at: Timestamp,
    /// A free-form note.
    pub note: Option<String>,
    /// How it was taken.
    pub source: Source,
    /// Extra numbers by name.
    pub extras: BTreeMap<String, i64>,
}

/// What the station hub calls on its clients.
#[hub_client(typescript)]
pub trait IStationClient {
    /// A reading was added by some client.
    async fn reading_added(&self, reading: Reading);
    /// A client result: may the station's readings be deleted?
    async fn confirm_reset(&self, station_id: String) -> bool;
}

/// The station hub's methods: what clients invoke.
#[hub_server(typescript)]
pub trait IStationHub {
    /// Stores a reading, tells every client, and answers how many the
    /// station now has.
    async fn add_reading(&self, ctx: &CallContext<Self>, reading: Reading)
    -> Result<u32, HubError>;
    /// The station's latest reading, if any.
    async fn latest(&self, station_id: String) -> Option<Reading>;
    /// The station's readings, oldest first, at most `limit`.
    async fn readings(&self, station_id: String, limit: u32) -> impl Stream<Item = Reading>;
    /// Stores every uploaded reading; answers how many.
    async fn upload_readings(&self, readings: UploadStream<Reading>) -> Result<u32, HubError>;
    /// Fire-and-forget: a line for the station's log.
    #[hub_method(send)]
    async fn log(&self, line: String);
    /// The log so far.
    async fn log_lines(&self) -> Vec<String>;
    /// The level of every station.
    async fn levels(&self) -> HashMap<String, Level>;
    /// Deletes a station's readings if the caller confirms (a client
    /// result); answers whether it did.
    #[hub_method(name = "ResetStation")]
    async fn reset(&self, ctx: CallContext<Self>, station_id: String) -> Result<bool, HubError>;
}

/// The station hub: readings by station, and a log.
#[derive(Debug, Default)]
pub struct StationHub {
    readings: Mutex<BTreeMap<String, Vec<Reading>>>,
    log: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StationHub {
    fn store(&self, reading: Reading) -> u32 {
        let mut readings = lock(&self.readings);
        let station = readings.entry(reading.station_id.clone()).or_default();
        station.push(reading);
        u32::try_from(station.len()).unwrap_or(u32::MAX)
    }
}

#[hub(client = IStationClient)]
impl IStationHub for StationHub {
    async fn add_reading(
        &self,
        ctx: &CallContext<Self>,
        reading: Reading,
    ) -> Result<u32, HubError> {
        if reading.celsius < -273.15 {
            return Err(HubError::new("a temperature cannot be below absolute zero"));
        }
        let count = self.store(reading.clone());
        ctx.clients().all().reading_added(reading).await?;
        Ok(count)
    }

    async fn latest(&self, station_id: String) -> Option<Reading> {
        lock(&self.readings)
            .get(&station_id)
            .and_then(|readings| readings.last().cloned())
    }

    async fn readings(&self, station_id: String, limit: u32) -> impl Stream<Item = Reading> {
        let readings: Vec<Reading> = lock(&self.readings)
            .get(&station_id)
            .map(|readings| readings.iter().take(limit as usize).cloned().collect())
            .unwrap_or_default();
        futures_util::stream::iter(readings)
    }

    async fn upload_readings(&self, mut readings: UploadStream<Reading>) -> Result<u32, HubError> {
        let mut count = 0;
        while let Some(reading) = readings.next().await {
            self.store(reading?);
            count += 1;
        }
        Ok(count)
    }

    async fn log(&self, line: String) {
        lock(&self.log).push(line);
    }

    async fn log_lines(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    async fn levels(&self) -> HashMap<String, Level> {
        lock(&self.readings)
            .iter()
            .map(|(station, readings)| {
                let hot = readings.iter().any(|reading| reading.celsius > 35.0);
                let level = if hot {
                    Level::HeatWarning
                } else {
                    Level::Normal
                };
                (station.clone(), level)
            })
            .collect()
    }

    async fn reset(&self, ctx: CallContext<Self>, station_id: String) -> Result<bool, HubError> {
        let confirmed = ctx
            .clients()
            .caller()
            .confirm_reset(station_id.clone())
            .await?;
        if confirmed {
            lock(&self.readings).remove(&station_id);
        }
        Ok(confirmed)
    }
}

/// The TypeScript module of the station contract
/// (`tests/ts/generated/station.ts`).
///
/// # Errors
/// When two types share a TypeScript name.
pub fn typescript() -> Result<String, hub_runtime::typescript::TypeScriptError> {
    hub_runtime::typescript::TypeScript::new()
        .contract::<IStationHubContract>()
        .contract::<IStationClientContract>()
        .render()
}

/// Serves `hub` at `/hubs/station` on a free loopback port, from a task of
/// the calling runtime; returns the hub's URL.
pub async fn serve_on_loopback(hub: hub_runtime::server::HubServer<StationHub>) -> String {
    let app = axum::Router::new().nest("/hubs/station", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/hubs/station")
}
