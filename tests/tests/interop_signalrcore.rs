//! Python's `signalrcore` client (PyPI, pinned in
//! `tests/interop/python/requirements.txt`) receives the clock demo's time
//! pushes over Server-Sent Events and over Long Polling.
//!
//! `scripts/test.sh` installs the client into the virtual environment at
//! `target/interop-python`; `HUB_PYTHON` names another interpreter.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use clock_demo::{ClockHub, HUB_PATH, app, worker};
use hub_runtime::server::HubServer;
use hub_tests::interop_dir;

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("HUB_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = interop_dir().join("../../target/interop-python/bin/python");
    assert!(
        venv.exists(),
        "no Python environment with signalrcore at {}: run scripts/test.sh (or set HUB_PYTHON)",
        venv.display()
    );
    venv
}

fn run(transport: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hub = HubServer::new(ClockHub);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(&hub);
    runtime.spawn(async move { axum::serve(listener, router).await });
    runtime.spawn(worker(hub.context(), std::future::pending()));

    let output = Command::new(python())
        .arg(interop_dir().join("python/clock_signalrcore.py"))
        .env("HUB_URL", format!("http://{addr}{HUB_PATH}"))
        .env("HUB_TRANSPORT", transport)
        .output()
        .expect("the Python interpreter must start");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "signalrcore did not receive the clock over {transport}"
    );
    let expected = match transport {
        "ServerSentEvents" => "transport: SSETransport",
        _ => "transport: LongPollingTransport",
    };
    assert!(stdout.contains(expected), "{stdout}");
}

#[test]
fn signalrcore_receives_the_clock_over_server_sent_events() {
    run("ServerSentEvents");
}

#[test]
fn signalrcore_receives_the_clock_over_long_polling() {
    run("LongPolling");
}
