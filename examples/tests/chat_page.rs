//! The chat example's browser page: its TypeScript module is generated
//! from the Rust contract and committed, its script is compiled from it,
//! and two pages chat through the `chat` binary in headless Chromium.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web/chat")
}

fn tsc() -> PathBuf {
    let tsc = hub_tests::interop_dir().join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "run `npm ci` in tests/interop (scripts/test.sh does)"
    );
    tsc
}

/// `web/chat/src/generated/chat.ts` is what the contract generates today;
/// `UPDATE_TYPESCRIPT=1` writes it instead.
#[test]
fn the_chat_module_is_generated_from_the_contract() {
    let generated = hub_examples::chat::typescript().unwrap();
    let path = web().join("src/generated/chat.ts");
    if std::env::var_os("UPDATE_TYPESCRIPT").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `UPDATE_TYPESCRIPT=1 cargo test -p hub-examples --test chat_page`",
        path.display()
    );
}

/// `web/chat/dist` (bundled into `chat`) is what `tsc -p examples/web/chat`
/// makes of the page's TypeScript today.
#[test]
fn the_chat_page_script_is_compiled_from_its_typescript() {
    let out = std::env::temp_dir().join(format!("chat-page-{}", std::process::id()));
    let output = Command::new(tsc())
        .arg("-p")
        .arg(web().join("tsconfig.json"))
        .arg("--outDir")
        .arg(&out)
        .args(["--pretty", "false"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tsc failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    for file in ["main.js", "generated/chat.js"] {
        let compiled = std::fs::read_to_string(out.join(file)).unwrap();
        let committed = std::fs::read_to_string(web().join("dist").join(file)).unwrap_or_default();
        assert!(
            compiled == committed,
            "examples/web/chat/dist/{file} is stale: run `tests/interop/node_modules/.bin/tsc -p examples/web/chat`"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn two_pages_chat_in_headless_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "install Debian's chromium (`apt-get install -y chromium`; scripts/test.sh does)"
    );
    let server = hub_tests::ServerProcess::start(env!("CARGO_BIN_EXE_chat"), &[]);
    let passed = hub_tests::run_node_tests(
        "chat_page.test.mjs",
        &[
            ("CHAT_URL", &format!("{}/", server.base_url())),
            ("CHROMIUM", chromium.to_str().unwrap()),
        ],
    );
    assert!(passed, "the chat pages did not chat in headless Chromium");
    assert!(server.terminate(), "chat exits with 0 on SIGTERM");
}
