//! Every binary of this package answers `--help` and `--version` (its
//! flags are parsed by clap) and refuses an unknown flag with exit code 2.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(name: &str, exe: &str) {
    let help = Command::new(exe).arg("--help").output().unwrap();
    assert!(help.status.success(), "{name} --help failed: {help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage:"), "{name} --help: {text}");
    assert!(text.contains("--help"), "{name} --help: {text}");

    let version = Command::new(exe).arg("--version").output().unwrap();
    assert!(version.status.success(), "{name} --version failed");
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "{name} --version: {text}"
    );

    let wrong = Command::new(exe).arg("--no-such-flag").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{name} took an unknown flag");
}

#[test]
fn hubbench_answers_help_and_version() {
    check("hubbench", env!("CARGO_BIN_EXE_hubbench"));
    check("soak", env!("CARGO_BIN_EXE_soak"));
    for command in ["run", "render", "serve"] {
        let help = Command::new(env!("CARGO_BIN_EXE_hubbench"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success(), "hubbench {command} --help failed");
    }
}
