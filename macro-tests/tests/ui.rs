//! Compile-time behaviour of `#[hub_client]`, `#[hub]`, `#[hub_server]` and
//! `#[authorize]` (trybuild). The macros under a renamed runtime crate are
//! tested by the `hub-macros-renamed` package (`macro-tests/renamed`), since
//! trybuild cannot give one case a different `Cargo.toml`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
