//! Drivers for the structure-aware fuzz targets of `hub-runtime/fuzz` that
//! reach server internals: compiled only under `cargo fuzz` (which sets
//! `--cfg fuzzing`) and for this crate's unit tests, never part of the
//! public API. The fuzz targets build the inputs with `arbitrary`; these
//! functions run them through the server's own code and assert the
//! invariants (a failed assertion is a crash the fuzzer reports).

pub mod long_polling;
pub mod stateful;
