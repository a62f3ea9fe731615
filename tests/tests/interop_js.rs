//! The official `@microsoft/signalr` JavaScript client (npm, pinned by
//! `tests/interop/package-lock.json`) runs every conformance scenario against
//! the `conformance-server` binary over real sockets, and receives the clock
//! demo's dates (`clock-server`) over JSON and MessagePack.

use hub_tests::{ServerProcess, clock_demo_binary, run_node_tests};

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

fn run(protocol: &str, transport: &str) {
    // Pings every second, so that the keep-alive scenario can give the
    // client a 3 s server timeout.
    let server = ServerProcess::start(SERVER, &["--keep-alive-ms", "1000"]);
    let large = ServerProcess::start(SERVER, &["--max-message-size", "4000000"]);
    let hub = format!("{}/hubs/test", server.base_url());
    let large_hub = format!("{}/hubs/test", large.base_url());
    let passed = run_node_tests(
        "conformance.test.mjs",
        &[
            ("HUB_URL", &hub),
            ("HUB_URL_LARGE", &large_hub),
            ("HUB_PROTOCOL", protocol),
            ("HUB_TRANSPORT", transport),
        ],
    );
    assert!(
        passed,
        "the JS client failed conformance scenarios over {transport} + {protocol}"
    );
}

#[test]
fn official_js_client_websockets_json() {
    run("json", "WebSockets");
}

#[test]
fn official_js_client_websockets_messagepack() {
    run("messagepack", "WebSockets");
}

/// The client may use every transport (`HUB_TRANSPORT=Auto`), the servers
/// serve only `served`: the client must fall back to `expected`, and every
/// scenario must pass over it.
fn run_fallback(protocol: &str, served: &str, expected: &str) {
    run_fallback_with(protocol, &["--transports", served], expected);
}

/// As [`run_fallback`], the servers started with `server_args`.
fn run_fallback_with(protocol: &str, server_args: &[&str], expected: &str) {
    let served = server_args.join(" ");
    let server = ServerProcess::start(
        SERVER,
        &[&["--keep-alive-ms", "1000"], server_args].concat(),
    );
    let large = ServerProcess::start(
        SERVER,
        &[&["--max-message-size", "4000000"], server_args].concat(),
    );
    let hub = format!("{}/hubs/test", server.base_url());
    let large_hub = format!("{}/hubs/test", large.base_url());
    let passed = run_node_tests(
        "conformance.test.mjs",
        &[
            ("HUB_URL", &hub),
            ("HUB_URL_LARGE", &large_hub),
            ("HUB_PROTOCOL", protocol),
            ("HUB_TRANSPORT", "Auto"),
            ("HUB_EXPECT_TRANSPORT", expected),
        ],
    );
    assert!(
        passed,
        "the JS client failed conformance scenarios over {expected} + {protocol} (server: {served})"
    );
}

#[test]
fn official_js_client_falls_back_to_server_sent_events_json() {
    run_fallback("json", "serversentevents,longpolling", "ServerSentEvents");
}

#[test]
fn official_js_client_falls_back_to_long_polling_json() {
    run_fallback("json", "longpolling", "LongPolling");
}

/// Server-Sent Events are offered but fail to start (403, as behind a
/// proxy that refuses event streams): the client moves on to Long Polling,
/// as it does against ASP.NET Core.
#[test]
fn official_js_client_falls_back_from_failing_server_sent_events_json() {
    run_fallback_with(
        "json",
        &[
            "--transports",
            "serversentevents,longpolling",
            "--refuse-event-streams",
        ],
        "LongPolling",
    );
}

#[test]
fn official_js_client_falls_back_to_long_polling_messagepack() {
    // SSE carries text only: MessagePack skips it.
    run_fallback("messagepack", "serversentevents,longpolling", "LongPolling");
}

/// `Timestamp` reaches the official client as .NET's `DateTime` does: a
/// `Date` over MessagePack (the timestamp extension), an ISO 8601 string
/// over JSON; pushed by the clock demo's worker and returned by `GetTime`.
#[test]
fn official_js_client_gets_the_clocks_dates_over_json_and_messagepack() {
    let binary = clock_demo_binary("clock-server");
    let server = ServerProcess::start(binary.to_str().expect("a UTF-8 path"), &[]);
    let hub = format!("{}/hubs/clock", server.base_url());
    let passed = run_node_tests("clock_dates.test.mjs", &[("CLOCK_HUB_URL", &hub)]);
    assert!(passed, "the JS client did not get the clock's dates");
    assert!(server.terminate(), "clock-server exits with 0 on SIGTERM");
}

/// `conformance-server --metrics`: the official client connects, invokes
/// (`ok`), fails (`error`), is refused by authorization (`unauthorized`) and
/// by the hub filter (`blocked`), and disconnects over each transport, and the
/// scraped gauges, counters and histograms move accordingly.
#[test]
fn official_js_client_moves_the_prometheus_metrics_on_every_transport() {
    let server = ServerProcess::start(SERVER, &["--metrics"]);
    let hub = format!("{}/hubs/test", server.base_url());
    let metrics = format!("{}/metrics", server.base_url());
    let passed = run_node_tests(
        "metrics.test.mjs",
        &[("HUB_URL", &hub), ("METRICS_URL", &metrics)],
    );
    assert!(passed, "the metrics did not move as the JS client expected");
}
