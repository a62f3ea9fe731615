//! TypeScript generated from the Rust contract traits: the committed
//! modules are what `hub-typescript` generates today, they compile with
//! `tsc --strict`, wrong calls do not compile, and the station client
//! (`tests/ts/station_client.ts`) runs in node against the Rust
//! `StationHub` over a real socket.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hub_runtime::server::HubServer;
use hub_tests::station::StationHub;
use hub_tests::{interop_dir, typescript_modules, workspace_root};

fn ts_dir() -> PathBuf {
    workspace_root().join("tests/ts")
}

fn tsc() -> PathBuf {
    let tsc = interop_dir().join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        interop_dir().display()
    );
    tsc
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `tsc -p` on a project that extends `tests/ts/tsconfig.json` with
/// `files` (absolute paths) and `compiler_options` (JSON members).
fn tsc_project(dir: &Path, files: &[PathBuf], compiler_options: &str) -> Output {
    let files: Vec<String> = files
        .iter()
        .map(|file| serde_json::to_string(&file.display().to_string()).unwrap())
        .collect();
    let config = format!(
        "{{\"extends\": {}, \"compilerOptions\": {{{compiler_options}}}, \"files\": [{}]}}",
        serde_json::to_string(&ts_dir().join("tsconfig.json").display().to_string()).unwrap(),
        files.join(", ")
    );
    let project = dir.join("tsconfig.json");
    std::fs::write(&project, config).unwrap();
    Command::new(tsc())
        .arg("-p")
        .arg(&project)
        .arg("--pretty")
        .arg("false")
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hub-ts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn committed_modules_are_up_to_date() {
    let modules = typescript_modules().unwrap();
    assert!(!modules.is_empty());
    for (path, generated) in modules {
        let committed = std::fs::read_to_string(workspace_root().join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            committed == generated,
            "{path} is not what the Rust traits generate: run \
             `cargo run -p hub-tests --bin hub-typescript`"
        );
    }
}

#[test]
fn generated_modules_compile_with_strict() {
    let output = Command::new(tsc())
        .arg("-p")
        .arg(ts_dir().join("tsconfig.json"))
        .args(["--noEmit", "--strict", "--pretty", "false"])
        .output()
        .unwrap();
    assert!(output.status.success(), "tsc failed:\n{}", text(&output));
}

#[test]
fn the_generated_module_is_strict_typescript_on_its_own() {
    let dir = temp_dir("alone");
    for (path, _) in typescript_modules().unwrap() {
        let output = tsc_project(
            &dir,
            &[workspace_root().join(path)],
            "\"noEmit\": true, \"noUnusedLocals\": true, \"noUnusedParameters\": true",
        );
        assert!(output.status.success(), "{path}:\n{}", text(&output));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Each file of `tests/ts/wrong` makes one mistake and names the error
/// `tsc` must report (`// expect: TS2345`).
#[test]
fn wrong_calls_fail_to_compile() {
    let dir = temp_dir("wrong");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(ts_dir().join("wrong"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "ts"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "the wrong-call cases are missing");
    for case in cases {
        let source = std::fs::read_to_string(&case).unwrap();
        let expected = source
            .lines()
            .find_map(|line| line.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{} names no expected error", case.display()))
            .trim()
            .to_owned();
        let output = tsc_project(&dir, std::slice::from_ref(&case), "\"noEmit\": true");
        let report = text(&output);
        assert!(
            !output.status.success(),
            "{} compiled, but it is wrong",
            case.display()
        );
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            report
                .lines()
                .any(|line| line.contains(&name) && line.contains(&format!("error {expected}:"))),
            "{}: expected {expected}, tsc said:\n{report}",
            case.display()
        );
        // Only the deliberate mistake: one error.
        assert_eq!(
            report.matches(": error TS").count(),
            1,
            "{}: {report}",
            case.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The clock page's script in `clock-demo/web/dist` (bundled into
/// `clock-server`) is what `tsc -p clock-demo/web` makes of its TypeScript
/// today.
#[test]
fn the_clock_page_script_is_compiled_from_its_typescript() {
    let web = workspace_root().join("clock-demo/web");
    let out = temp_dir("clock");
    let output = Command::new(tsc())
        .arg("-p")
        .arg(web.join("tsconfig.json"))
        .arg("--outDir")
        .arg(&out)
        .args(["--pretty", "false"])
        .output()
        .unwrap();
    assert!(output.status.success(), "tsc failed:\n{}", text(&output));
    for file in ["main.js", "generated/clock.js"] {
        let compiled = std::fs::read_to_string(out.join(file)).unwrap();
        let committed = std::fs::read_to_string(web.join("dist").join(file)).unwrap();
        assert!(
            compiled == committed,
            "clock-demo/web/dist/{file} is stale: run `tsc -p clock-demo/web` \
             (tests/interop/node_modules/.bin/tsc)"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

/// Serves `StationHub` at `/hubs/station` on a loopback port, in a runtime
/// of its own; returns the hub's URL.
fn serve_station() -> String {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let hub = HubServer::new(StationHub::default());
            let app = axum::Router::new().nest("/hubs/station", hub.router());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            url_tx
                .send(format!("http://{address}/hubs/station"))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url_rx.recv_timeout(Duration::from_secs(60)).unwrap()
}

#[test]
fn the_station_client_runs_against_the_rust_hub() {
    let dir = temp_dir("station");
    let out = dir.join("out");
    let output = tsc_project(
        &dir,
        &[
            ts_dir().join("node.d.ts"),
            ts_dir().join("generated/station.ts"),
            ts_dir().join("station_client.ts"),
        ],
        &format!(
            "\"outDir\": {}, \"rootDir\": {}",
            serde_json::to_string(&out.display().to_string()).unwrap(),
            serde_json::to_string(&ts_dir().display().to_string()).unwrap()
        ),
    );
    assert!(output.status.success(), "tsc failed:\n{}", text(&output));
    std::fs::write(out.join("package.json"), "{\"type\": \"module\"}").unwrap();

    let url = serve_station();
    let output = Command::new("node")
        .arg(out.join("station_client.js"))
        .env("STATION_URL", &url)
        .env("INTEROP_DIR", interop_dir())
        .output()
        .unwrap();
    let report = text(&output);
    assert!(
        output.status.success(),
        "the station client failed:\n{report}"
    );
    assert!(report.contains("station: ok"), "{report}");
    let _ = std::fs::remove_dir_all(dir);
}
