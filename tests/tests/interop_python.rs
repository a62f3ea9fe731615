//! Python's `pysignalr` client (PyPI, pinned in
//! `tests/interop/python/requirements.txt`) runs echo, add, broadcast,
//! groups, a server stream, `Fail` and a client result against the
//! `conformance-server` binary, with the JSON and the MessagePack protocol.
//!
//! `scripts/test.sh` installs the client into a virtual environment at
//! `target/interop-python`; `HUB_PYTHON` names another interpreter.

use std::path::PathBuf;
use std::process::Command;

use hub_tests::{ServerProcess, interop_dir};

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("HUB_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = interop_dir().join("../../target/interop-python/bin/python");
    assert!(
        venv.exists(),
        "no Python environment with pysignalr at {}: run scripts/test.sh (or set HUB_PYTHON)",
        venv.display()
    );
    venv
}

fn run(protocol: &str) {
    let server = ServerProcess::start(SERVER, &[]);
    let hub = format!("{}/hubs/test", server.base_url());
    let output = Command::new(python())
        .arg(interop_dir().join("python/conformance_pysignalr.py"))
        .env("HUB_URL", &hub)
        .env("HUB_PROTOCOL", protocol)
        .output()
        .expect("the Python interpreter must start");
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "pysignalr failed conformance scenarios with {protocol}"
    );
}

#[test]
fn pysignalr_json() {
    run("json");
}

#[test]
fn pysignalr_messagepack() {
    run("messagepack");
}
