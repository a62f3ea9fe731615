//! Smoke test: `hubbench run --quick` against every server, then `hubbench
//! render` of its results. It checks that every server answered every
//! workload it runs (the clock and the connect storm at tiny sizes: 20
//! clients and 2 ticks, 40 connects), that the records carry what the
//! report reads, and that the report has its sections and goals; not the
//! numbers (performance is measured by `scripts/bench.sh`, never asserted
//! in tests).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const SERVERS: [&str; 4] = ["ours-json", "ours-msgpack", "raw", "socketioxide"];
const WORKLOADS: [&str; 7] = [
    "echo",
    "broadcast",
    "single-broadcast",
    "idle",
    "slow-consumer",
    "clock",
    "connect-storm",
];

/// Whether `server` runs `workload` (the clock and the connect storm
/// compare ours with raw only).
fn runs(server: &str, workload: &str) -> bool {
    !(server == "socketioxide" && matches!(workload, "clock" | "connect-storm"))
}

#[test]
fn quick_run_gets_answers_from_every_server() {
    let dir = std::env::temp_dir().join(format!("hubbench-quick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("quick.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_hubbench"))
        .args(["run", "--quick", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();

    let mut answered = BTreeSet::new();
    let mut failed = Vec::new();
    let mut header = Value::Null;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if record["record"] == "run" {
            header = record;
            continue;
        }
        if record.get("record").is_some() {
            continue;
        }
        let server = record["server"].as_str().unwrap().to_owned();
        let workload = record["workload"].as_str().unwrap().to_owned();
        assert!(
            runs(&server, &workload),
            "{server} ran {workload}, which compares ours with raw only"
        );
        if record["ok"] != Value::Bool(true) {
            failed.push(line.to_owned());
            continue;
        }
        match workload.as_str() {
            "clock" => {
                let last = record["last_client_ms"].as_array().unwrap();
                assert_eq!(
                    last.len(),
                    2,
                    "{server}: the clock measures the 2 ticks asked for, each reaching all 20 clients: {record}"
                );
                assert!(
                    last.iter().all(|ms| ms.as_f64().unwrap() >= 0.0),
                    "{server}: a tick reaches the last client after it was sent: {record}"
                );
                assert_eq!(record["clients"], 20, "{server}: every client connected");
            }
            "connect-storm" => {
                // Ours negotiates before the upgrade unless the row is its
                // skip-negotiation storm; raw never does.
                let negotiates =
                    server.starts_with("ours") && !server.ends_with("-skip-negotiation");
                assert_eq!(
                    record["negotiate"],
                    Value::Bool(negotiates),
                    "{server}: ours negotiates before the upgrade (not in its skip-negotiation row), raw does not: {record}"
                );
                assert!(
                    record["connects_per_s"].as_f64().unwrap() > 0.0,
                    "{server}: the storm counts its connects: {record}"
                );
            }
            _ => {}
        }
        answered.insert((server, workload));
    }
    assert!(failed.is_empty(), "runs failed: {failed:#?}");
    assert_eq!(header["order"], "interleaved", "the run header: {header}");
    for server in SERVERS {
        for workload in WORKLOADS {
            if runs(server, workload) {
                assert!(
                    answered.contains(&(server.to_owned(), workload.to_owned())),
                    "{server} did not answer {workload}"
                );
            }
        }
    }
    assert!(status.success(), "hubbench run --quick failed");

    let markdown = dir.join("RESULTS.md");
    let rendered = Command::new(env!("CARGO_BIN_EXE_hubbench"))
        .args(["render", "--md"])
        .arg(&markdown)
        .arg("--png")
        .arg(dir.join("chart.png"))
        .arg(&out)
        .status()
        .unwrap();
    let report = std::fs::read_to_string(&markdown).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(rendered.success(), "hubbench render failed");
    for section in [
        "## echo",
        "## broadcast",
        "## clock",
        "## connect storm",
        "## goals",
        "**Spread.**",
    ] {
        assert!(
            report.contains(section),
            "the report has the section {section:?}:\n{report}"
        );
    }
    for goal in [
        "idle: server RSS per connection (JSON",
        "echo deliveries per server CPU-s, JSON vs raw ≥ 0.7×",
        "broadcast deliveries per server CPU-s, MessagePack vs socketioxide ≥ 2×",
        "clock, JSON: last client p99 after the tick < 25 ms",
        "connect storm, MessagePack vs raw (per server CPU-s) ≥ 0.8×",
    ] {
        assert!(
            report.contains(goal),
            "the goals table lists {goal:?}:\n{report}"
        );
    }
}
