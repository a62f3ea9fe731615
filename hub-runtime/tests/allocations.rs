//! Heap allocations of the decode path, counted by an instrumented global
//! allocator: a count, not a timing, so it is deterministic. One test in
//! this binary, so that no other test allocates while it counts.
//!
//! The criterion benches print the same counts next to their timings
//! (`cargo bench -p hub-runtime --bench codecs`, `--bench dispatch`).

use std::alloc::System;

use bytes::{Bytes, BytesMut};
use hub_runtime::protocol::json::{self, JsonRecordView};
use hub_runtime::protocol::{HubMessage, HubProtocol, Invocation, Payload};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations(mut work: impl FnMut()) -> usize {
    work();
    let region = Region::new(GLOBAL);
    work();
    region.change().allocations
}

fn echo_record(arguments: usize) -> Bytes {
    let message = HubMessage::Invocation(Invocation {
        invocation_id: Some("12345".into()),
        target: "Echo".into(),
        arguments: (0..arguments)
            .map(|i| Payload::from_value(format!("argument {i}")))
            .collect(),
        ..Invocation::default()
    });
    let mut wire = BytesMut::new();
    HubProtocol::Json.encode(&message, &mut wire).ok();
    wire.truncate(wire.len() - 1);
    wire.freeze()
}

#[test]
fn decoding_an_invocation_allocates_only_what_the_message_owns() {
    let record = echo_record(1);
    assert!(
        JsonRecordView::scan(&record).is_some(),
        "an ordinary echo Invocation is read by the one-pass reader"
    );

    let borrowed = allocations(|| {
        let view = JsonRecordView::scan(&record);
        std::hint::black_box(view.map(|view| view.arguments().len()));
    });
    assert_eq!(
        borrowed, 0,
        "the one-pass reader finds type, id, target and arguments without allocating"
    );
    let eight = echo_record(8);
    let borrowed_eight = allocations(|| {
        std::hint::black_box(JsonRecordView::scan(&eight).map(|view| view.arguments().len()));
    });
    assert_eq!(
        borrowed_eight, 0,
        "up to eight arguments are held without allocating"
    );

    // The owned message holds the id and the target as `String`s and the
    // arguments in a `Vec`: three allocations, nothing else.
    let owned = allocations(|| {
        std::hint::black_box(json::decode_record(&record).ok());
    });
    assert_eq!(
        owned, 3,
        "decoding an echo Invocation into a HubMessage allocates its id, target and argument list only"
    );
    let serde = allocations(|| {
        std::hint::black_box(json::decode_record_with_serde(&record).ok());
    });
    assert!(
        owned < serde,
        "the one-pass reader allocates less than the serde path ({owned} against {serde})"
    );
}
