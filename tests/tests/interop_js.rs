//! The official `@microsoft/signalr` JavaScript client (npm, pinned by
//! `tests/interop/package-lock.json`) runs every conformance scenario against
//! the `conformance-server` binary over real sockets, and receives the clock
//! demo's dates (`clock-server`) over JSON and MessagePack.

use hub_tests::{ServerProcess, run_node_tests};

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
    let server = ServerProcess::start(SERVER, &["--keep-alive-ms", "1000", "--transports", served]);
    let large = ServerProcess::start(
        SERVER,
        &["--max-message-size", "4000000", "--transports", served],
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

#[test]
fn official_js_client_falls_back_to_long_polling_messagepack() {
    // SSE carries text only: MessagePack skips it.
    run_fallback("messagepack", "serversentevents,longpolling", "LongPolling");
}

/// The path of the `clock-server` binary, built (or brought up to date)
/// first: Cargo sets `CARGO_BIN_EXE_*` only for the binary's own package
/// (clock-demo). As `clock_demo.rs` does, it is built into the target
/// directory and profile this test runs from.
fn clock_server_binary() -> std::path::PathBuf {
    // `<target>/<profile>/deps/interop_js-…`
    let exe = std::env::current_exe().expect("the test knows its path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test binary is in <target>/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .expect("a profile directory")
        .to_string_lossy()
        .into_owned();
    let target = profile_dir.parent().expect("a target directory");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "-p",
            "clock-demo",
            "--bin",
            "clock-server",
        ])
        .arg("--target-dir")
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        other => {
            cargo.args(["--profile", other]);
        }
    }
    let status = cargo.status().expect("run cargo");
    assert!(status.success(), "cannot build clock-server");
    profile_dir.join("clock-server")
}

/// `Timestamp` reaches the official client as .NET's `DateTime` does: a
/// `Date` over MessagePack (the timestamp extension), an ISO 8601 string
/// over JSON; pushed by the clock demo's worker and returned by `GetTime`.
#[test]
fn official_js_client_gets_the_clocks_dates_over_json_and_messagepack() {
    let binary = clock_server_binary();
    let server = ServerProcess::start(binary.to_str().expect("a UTF-8 path"), &[]);
    let hub = format!("{}/hubs/clock", server.base_url());
    let passed = run_node_tests("clock_dates.test.mjs", &[("CLOCK_HUB_URL", &hub)]);
    assert!(passed, "the JS client did not get the clock's dates");
    assert!(server.terminate(), "clock-server exits with 0 on SIGTERM");
}
