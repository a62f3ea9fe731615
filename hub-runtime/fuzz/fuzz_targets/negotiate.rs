#![no_main]
//! Structure-aware: negotiate requests (query strings built from fuzzed
//! keys and values, or raw) and negotiate responses (fuzzed JSON bodies, as
//! a client reads them). Never a panic; a parsed request's query parses
//! back to the same request, a parsed response re-serializes and parses.
use hub_runtime::protocol::negotiate::{NegotiateRequest, NegotiateResponse};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let query = if u.arbitrary::<bool>()? {
        let keys = [
            "negotiateVersion",
            "useStatefulReconnect",
            "id",
            "access_token",
            "NEGOTIATEVERSION",
        ];
        let mut query = String::new();
        for _ in 0..u.int_in_range(0..=4)? {
            let key = *u.choose(&keys)?;
            let value: String = u.arbitrary()?;
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(key);
            query.push('=');
            query.push_str(&value);
        }
        query
    } else {
        u.arbitrary()?
    };
    if let Ok(request) = NegotiateRequest::from_query(&query) {
        let again = NegotiateRequest::from_query(&request.to_query())
            .expect("a request's own query parses");
        assert_eq!(again, request, "negotiate request round trip");
    }
    let body = u.take_rest();
    if let Ok(response) = NegotiateResponse::from_slice(body) {
        let again = NegotiateResponse::from_slice(&response.to_vec())
            .expect("a response's own body parses");
        assert_eq!(again.to_vec(), response.to_vec(), "negotiate response round trip");
    }
    Ok(())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});
