#![no_main]
//! Arbitrary bytes into the JSON hub protocol decoder: never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hub_runtime::protocol::json::fuzz_decode(data);
});
