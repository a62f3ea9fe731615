//! The clock demo: ASP.NET Core's "Host ASP.NET Core SignalR in
//! background services" sample, in Rust.
//!
//! A background [`worker`] calls `show_time` on every client each second
//! through a `HubContext<ClockHub>`; clients may also ask for the time.
//! [`app`] is the whole web application: the hub at `/hubs/clock` and a
//! page at `/` that shows the live clock with the official
//! `@microsoft/signalr` browser client, bundled into the binary. The page
//! is TypeScript (`web/src/main.ts`) written against the module generated
//! from [`IClockHub`] and [`IClock`].
//!
//! The binaries:
//!
//! - `clock-server [--bind 127.0.0.1:5000]` serves [`app`] and runs the
//!   [`worker`];
//! - `clock-client [--url http://127.0.0.1:5000/hubs/clock]` is the
//!   sample's `ClockHubClient`: it implements [`IClock`], prints each time
//!   it receives and reconnects by itself.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use hub_runtime::server::HubServer;
use hub_runtime::{HubContext, Timestamp, hub, hub_client, hub_server};

/// What the server calls on clock clients (`IClock` in the sample).
#[hub_client(typescript)]
pub trait IClock {
    /// Shows the server's current time.
    async fn show_time(&self, now: Timestamp);
}

/// What clock clients call on the hub: the contract shared by the server
/// ([`ClockHub`] implements it), the Rust client
/// (`connection.hub::<IClockHubProxy>()`) and the page
/// (`web/src/generated/clock.ts`, generated from these traits).
#[hub_server(typescript)]
pub trait IClockHub {
    /// The server's current time, on request.
    async fn get_time(&self) -> Timestamp;
}

/// The clock hub: clients connect to it to receive the time.
#[derive(Debug, Default)]
pub struct ClockHub;

#[hub(client = IClock)]
impl IClockHub for ClockHub {
    async fn get_time(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The TypeScript module of the clock contract, committed as
/// `web/src/generated/clock.ts` (`cargo run -p hub-tests --bin
/// hub-typescript` writes it; a test checks it is up to date).
///
/// # Errors
/// When two types share a TypeScript name (not in this contract).
pub fn typescript() -> Result<String, hub_runtime::typescript::TypeScriptError> {
    hub_runtime::typescript::TypeScript::new()
        .contract::<IClockHubContract>()
        .contract::<IClockContract>()
        .render()
}

/// Where the hub is mounted.
pub const HUB_PATH: &str = "/hubs/clock";

/// Where the page loads the SignalR browser client from.
pub const SIGNALR_SCRIPT_PATH: &str = "/lib/signalr.min.js";

/// The page served at `/`.
pub const INDEX_HTML: &str = include_str!("../web/index.html");

/// `dist/browser/signalr.min.js` of the npm package `@microsoft/signalr`,
/// the version pinned by `tests/interop/package-lock.json` (a test checks
/// that the two are byte-identical). Its license is
/// `clock-demo/web/vendor/LICENSE`.
pub const SIGNALR_SCRIPT: &[u8] = include_bytes!("../web/vendor/signalr.min.js");

/// The page's script, compiled by `tsc -p clock-demo/web` from
/// `web/src/main.ts` (a test checks it is up to date), served at
/// [`APP_SCRIPT_PATH`].
pub const APP_SCRIPT: &str = include_str!("../web/dist/main.js");

/// Where the page loads its script from.
pub const APP_SCRIPT_PATH: &str = "/app/main.js";

/// The module generated from [`IClockHub`] and [`IClock`], compiled:
/// `main.js` imports it as `./generated/clock.js`.
pub const CONTRACT_SCRIPT: &str = include_str!("../web/dist/generated/clock.js");

/// Where [`CONTRACT_SCRIPT`] is served.
pub const CONTRACT_SCRIPT_PATH: &str = "/app/generated/clock.js";

/// A JavaScript response, cacheable for an hour.
fn javascript(body: impl IntoResponse) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// How often the worker pushes the time.
pub const TICK: Duration = Duration::from_secs(1);

/// The web application: `hub`'s endpoints under [`HUB_PATH`], the clock
/// page at `/` with its scripts ([`APP_SCRIPT_PATH`],
/// [`CONTRACT_SCRIPT_PATH`]) and the SignalR browser client at
/// [`SIGNALR_SCRIPT_PATH`].
///
/// ```
/// use clock_demo::{ClockHub, app};
/// use hub_runtime::server::HubServer;
///
/// let hub = HubServer::new(ClockHub);
/// let app: axum::Router = app(&hub);
/// ```
pub fn app(hub: &HubServer<ClockHub>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            SIGNALR_SCRIPT_PATH,
            get(|| async { javascript(SIGNALR_SCRIPT) }),
        )
        .route(APP_SCRIPT_PATH, get(|| async { javascript(APP_SCRIPT) }))
        .route(
            CONTRACT_SCRIPT_PATH,
            get(|| async { javascript(CONTRACT_SCRIPT) }),
        )
        .nest(HUB_PATH, hub.router())
}

/// The sample's `Worker`: every [`TICK`], calls `show_time` with the
/// current time on every connected client, until `stop` completes.
///
/// A failed broadcast (which only a serialization bug could cause) is
/// logged and the worker carries on with the next tick.
///
/// ```no_run
/// # async fn run(hub: hub_runtime::server::HubServer<clock_demo::ClockHub>) {
/// let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
/// let worker = tokio::spawn(clock_demo::worker(hub.context(), async move {
///     let _ = stop_rx.await;
/// }));
/// // … later, on shutdown:
/// let _ = stop_tx.send(());
/// let _ = worker.await;
/// # }
/// ```
pub async fn worker(context: HubContext<ClockHub>, stop: impl Future<Output = ()>) {
    let mut ticks = tokio::time::interval(TICK);
    // After a stall (a suspended laptop), tick once and carry on at the
    // usual pace rather than firing a burst of stale times.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = context.clients().all().show_time(Timestamp::now()).await {
            tracing::warn!(%error, "cannot send the time to the clients");
        }
    }
}
