//! Compile-time tests of `#[hub]`, `#[hub_client]`, `#[hub_server]` and
//! `#[authorize]` (trybuild): the cases in `ui/pass` compile, those in
//! `ui/fail` fail with the committed `.stderr`. The tests are in
//! `tests/ui.rs`; this library is empty.
