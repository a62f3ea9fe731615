//! Compile-time behaviour of `#[hub_client]` and `#[hub]` (trybuild), and
//! the generated code with `hub-runtime` renamed in `Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}

/// The target directory this test was built in (`…/target/debug/deps/ui-…`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test knows its path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps")
        .to_path_buf()
}

/// A crate that depends on `hub_renamed = { package = "hub-runtime" }` and
/// nothing named `hub_runtime`: the macros must find the renamed crate
/// (trybuild cannot give one case a different `Cargo.toml`). Built like a
/// trybuild project: in the shared target directory, with the workspace's
/// lock file, offline.
#[test]
fn renamed_runtime_crate() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("tests/ is in the workspace");
    let fixture = manifest_dir.join("ui/renamed");
    let target = target_dir();
    let project = target.join("tests").join("hub-renamed");
    std::fs::create_dir_all(project.join("src")).expect("create the project");

    let manifest = std::fs::read_to_string(fixture.join("Cargo.toml.in"))
        .expect("read the fixture manifest")
        .replace("@WORKSPACE@", &workspace.display().to_string());
    std::fs::write(project.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::copy(fixture.join("src/main.rs"), project.join("src/main.rs")).expect("copy main.rs");
    if !project.join("Cargo.lock").exists() {
        std::fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock"))
            .expect("copy Cargo.lock");
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "the renamed-crate project failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "renamed: ok"
    );
}
