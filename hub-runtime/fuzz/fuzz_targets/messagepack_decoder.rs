#![no_main]
//! Arbitrary bytes into the MessagePack hub protocol decoder: never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hub_runtime::protocol::messagepack::fuzz_decode(data);
});
