//! Smoke test: `hubbench run --quick` against every server. It checks that
//! every server answered every workload, not the numbers (performance is
//! measured by `scripts/bench.sh`, never asserted in tests).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn quick_run_gets_answers_from_every_server() {
    let out = std::env::temp_dir().join(format!("hubbench-quick-{}.jsonl", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_hubbench"))
        .args(["run", "--quick", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);

    let mut answered = BTreeSet::new();
    let mut failed = Vec::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        if record.get("record").is_some() {
            continue;
        }
        let key = (
            record["server"].as_str().unwrap().to_owned(),
            record["workload"].as_str().unwrap().to_owned(),
        );
        if record["ok"] == serde_json::Value::Bool(true) {
            answered.insert(key);
        } else {
            failed.push(line.to_owned());
        }
    }
    assert!(failed.is_empty(), "runs failed: {failed:#?}");
    for server in ["ours-json", "ours-msgpack", "raw", "socketioxide"] {
        for workload in [
            "echo",
            "broadcast",
            "single-broadcast",
            "idle",
            "slow-consumer",
        ] {
            assert!(
                answered.contains(&(server.to_owned(), workload.to_owned())),
                "{server} did not answer {workload}"
            );
        }
    }
    assert!(status.success(), "hubbench run --quick failed");
}
