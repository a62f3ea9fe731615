//! The transport matrix of the Rust-client tests against the
//! `conformance-server` binary: which transports a scenario's servers
//! serve, which one the client must end up on, and whether over https.
//!
//! A test file writes each scenario as `async fn name(protocol:
//! HubProtocol)` that starts its servers with [`start_server`] and builds
//! its connections with [`builder`] (checking them with [`assert_route`]),
//! then lists the scenarios under [`over_websockets!`](crate::over_websockets),
//! [`over_http_transports!`](crate::over_http_transports) and
//! [`over_https!`](crate::over_https): one test for each scenario and route.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hub_runtime::client::{HubConnection, HubConnectionBuilder, TransportType};
use hub_runtime::protocol::HubProtocol;

use crate::ServerProcess;
use crate::tls::TestCa;

/// Which transports the servers of a scenario serve, and the one the
/// client must end up on.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// `--transports` of the server (all when empty): with fewer, the
    /// client must fall back.
    pub served: &'static str,
    /// What `HubConnection::transport()` must say once connected: a
    /// scenario that passes on another transport (say, Long Polling after
    /// Server-Sent Events silently failed) proves nothing about this one.
    pub expected: TransportType,
    /// Served over https, with a throwaway CA the client trusts.
    pub tls: bool,
}

thread_local! {
    /// The running scenario's route. A thread-local, as a scenario's
    /// servers and connections are all made on the test's own thread (the
    /// `block_on` of `#[tokio::test]`).
    static ROUTE: Cell<Route> = const {
        Cell::new(Route { served: "", expected: TransportType::WebSockets, tls: false })
    };
    /// The CA of the running scenario's https servers (made on first use).
    static CA: RefCell<Option<Rc<TestCa>>> = const { RefCell::new(None) };
}

impl Route {
    /// Makes this the route of the scenario running on this thread.
    pub fn enter(self) {
        ROUTE.with(|route| route.set(self));
    }

    /// The route of the scenario running on this thread.
    pub fn current() -> Route {
        ROUTE.with(Cell::get)
    }
}

/// The scenario's CA when it runs over https.
pub fn test_ca() -> Option<Rc<TestCa>> {
    if !Route::current().tls {
        return None;
    }
    Some(CA.with(|slot| {
        slot.borrow_mut()
            .get_or_insert_with(|| Rc::new(TestCa::new()))
            .clone()
    }))
}

/// `args` plus the scenario's `--transports` (and `--tls-cert`/`--tls-key`
/// over https).
pub fn server_args(args: &[&str]) -> Vec<String> {
    let served = Route::current().served;
    let mut args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    if !served.is_empty() {
        args.extend(["--transports".to_owned(), served.to_owned()]);
    }
    if let Some(ca) = test_ca() {
        args.extend(ca.server_args());
    }
    args
}

/// Starts `binary` with `args` and the scenario's transports.
pub fn start_server(binary: &str, args: &[&str]) -> ServerProcess {
    let args = server_args(args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(binary, &args)
}

/// A connection builder for `hub_url` with `protocol`, trusting the
/// scenario's CA over https.
pub fn builder(hub_url: &str, protocol: HubProtocol) -> HubConnectionBuilder {
    let builder = HubConnection::builder(hub_url).protocol(protocol);
    match test_ca() {
        Some(ca) => builder.root_certificates(
            std::fs::read(ca.ca_cert_file()).expect("the test CA's certificate is readable"),
        ),
        None => builder,
    }
}

/// Fails unless `connection` is connected over the scenario's transport:
/// the client falls back to the next transport without a word when one
/// fails.
pub fn assert_route(connection: &HubConnection) {
    assert_eq!(
        connection.transport(),
        Some(Route::current().expected),
        "connected over the wrong transport"
    );
}

/// One module of tests: each scenario (`async fn scenario(HubProtocol)` of
/// the calling file) with `protocol`, over a route.
#[macro_export]
macro_rules! scenarios_over {
    ($module:ident, $protocol:ident, $served:literal => $expected:ident; $($scenario:ident),* $(,)?) => {
        $crate::scenarios_over!($module, $protocol, $served => $expected, tls: false; $($scenario),*);
    };
    ($module:ident, $protocol:ident, $served:literal => $expected:ident, tls: $tls:literal; $($scenario:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    $crate::route::Route {
                        served: $served,
                        expected: hub_runtime::client::TransportType::$expected,
                        tls: $tls,
                    }
                    .enter();
                    super::$scenario(hub_runtime::protocol::HubProtocol::$protocol).await;
                }
            )*
        }
    };
}

/// Each scenario with JSON and with MessagePack, over WebSockets (modules
/// `json` and `messagepack`).
#[macro_export]
macro_rules! over_websockets {
    ($($scenario:ident),* $(,)?) => {
        $crate::scenarios_over!(json, Json, "" => WebSockets; $($scenario),*);
        $crate::scenarios_over!(messagepack, MessagePack, "" => WebSockets; $($scenario),*);
    };
}

/// Each scenario with servers that serve no WebSockets: the client falls
/// back to Server-Sent Events (JSON) or Long Polling (MessagePack, as
/// Server-Sent Events carry text only; JSON with a server that serves only
/// Long Polling), and must really be on that transport.
#[macro_export]
macro_rules! over_http_transports {
    ($($scenario:ident),* $(,)?) => {
        $crate::scenarios_over!(
            server_sent_events_json, Json,
            "serversentevents,longpolling" => ServerSentEvents; $($scenario),*
        );
        $crate::scenarios_over!(
            long_polling_json, Json,
            "longpolling" => LongPolling; $($scenario),*
        );
        $crate::scenarios_over!(
            long_polling_messagepack, MessagePack,
            "serversentevents,longpolling" => LongPolling; $($scenario),*
        );
    };
}

/// Over https on every transport, the client trusting the test's CA:
/// negotiate, `wss://`, the event stream, polls and POSTs all over TLS.
#[macro_export]
macro_rules! over_https {
    ($($scenario:ident),* $(,)?) => {
        $crate::scenarios_over!(https_websockets_json, Json, "" => WebSockets, tls: true; $($scenario),*);
        $crate::scenarios_over!(https_websockets_messagepack, MessagePack, "" => WebSockets, tls: true; $($scenario),*);
        $crate::scenarios_over!(
            https_server_sent_events_json, Json,
            "serversentevents,longpolling" => ServerSentEvents, tls: true; $($scenario),*
        );
        $crate::scenarios_over!(
            https_long_polling_messagepack, MessagePack,
            "serversentevents,longpolling" => LongPolling, tls: true; $($scenario),*
        );
    };
}
