#![no_main]
//! Arbitrary bytes into the handshake parsers: never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hub_runtime::protocol::handshake::fuzz_decode(data);
});
