//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/`) through
//! the functions the fuzz targets call, so that plain `cargo test` exercises
//! every seed on stable.

#![allow(clippy::unwrap_used)]

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "seed {} panicked", path.display());
        count += 1;
    }
    assert!(
        count >= 10,
        "expected a seed corpus in {}, found {count} files",
        dir.display()
    );
}

#[test]
fn json_decoder_seeds() {
    replay("json", hub_runtime::protocol::json::fuzz_decode);
}

#[test]
fn messagepack_decoder_seeds() {
    replay(
        "messagepack",
        hub_runtime::protocol::messagepack::fuzz_decode,
    );
}

#[test]
fn handshake_seeds() {
    replay("handshake", hub_runtime::protocol::handshake::fuzz_decode);
}
