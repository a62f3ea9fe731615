//! Every example binary answers `--help` and `--version` (its flags are
//! parsed by clap) and refuses an unknown flag with exit code 2.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn every_example_answers_help_and_version() {
    for (name, exe) in [
        ("chat", env!("CARGO_BIN_EXE_chat")),
        ("stock-ticker", env!("CARGO_BIN_EXE_stock-ticker")),
        ("upload", env!("CARGO_BIN_EXE_upload")),
        ("rust-client", env!("CARGO_BIN_EXE_rust-client")),
        ("scale-out", env!("CARGO_BIN_EXE_scale-out")),
        ("axum-app", env!("CARGO_BIN_EXE_axum-app")),
    ] {
        let help = Command::new(exe).arg("--help").output().unwrap();
        assert!(help.status.success(), "{name} --help failed");
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(
            text.contains("Usage:") && (text.contains("--bind") || text.contains("--url")),
            "{name} --help: {text}"
        );
        let version = Command::new(exe).arg("--version").output().unwrap();
        assert!(
            String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{name} --version"
        );
        let wrong = Command::new(exe).arg("--no-such-flag").output().unwrap();
        assert_eq!(wrong.status.code(), Some(2), "{name} took an unknown flag");
    }
}
