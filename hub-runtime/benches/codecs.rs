//! Encode and decode cost per message of both hub protocols, with the
//! number of heap allocations each takes (counted by an instrumented global
//! allocator, printed once per case before criterion's timing).
//!
//! ```text
//! cargo bench -p hub-runtime --bench codecs
//! ```

use std::alloc::System;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use hub_runtime::protocol::json::{self, JsonRecordView};
use hub_runtime::protocol::{
    Completion, CompletionResult, HubMessage, HubProtocol, Invocation, Payload,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The messages of the bench workloads: a broadcast `Receive(string)`, an
/// `Echo(string)` call and its Completion, at 32 B and 1 KiB.
fn messages() -> Vec<(String, HubMessage)> {
    let mut cases = Vec::new();
    for size in [32usize, 1024] {
        let text = "x".repeat(size);
        cases.push((
            format!("broadcast-{size}B"),
            HubMessage::Invocation(Invocation {
                target: "Receive".into(),
                arguments: vec![Payload::from_value(text.clone())],
                ..Invocation::default()
            }),
        ));
        cases.push((
            format!("echo-call-{size}B"),
            HubMessage::Invocation(Invocation {
                invocation_id: Some("12345".into()),
                target: "Echo".into(),
                arguments: vec![Payload::from_value(text.clone())],
                ..Invocation::default()
            }),
        ));
        cases.push((
            format!("completion-{size}B"),
            HubMessage::Completion(Completion {
                headers: Vec::new(),
                invocation_id: "12345".into(),
                result: CompletionResult::Value(Payload::from_value(text)),
            }),
        ));
    }
    cases
}

fn protocols() -> [HubProtocol; 2] {
    [HubProtocol::Json, HubProtocol::MessagePack]
}

/// Heap allocations of one call of `work` (after a warm-up call).
fn allocations(mut work: impl FnMut()) -> usize {
    work();
    let region = Region::new(GLOBAL);
    work();
    region.change().allocations
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for protocol in protocols() {
        for (name, message) in messages() {
            let id = format!("{}/{name}", protocol.name());
            let mut out = BytesMut::with_capacity(4096);
            let count = allocations(|| {
                out.clear();
                protocol.encode(&message, &mut out).ok();
            });
            eprintln!("allocations: encode {id}: {count} per message");
            group.bench_function(&id, |b| {
                b.iter(|| {
                    out.clear();
                    protocol.encode(black_box(&message), &mut out).ok();
                    black_box(out.len())
                });
            });
        }
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for protocol in protocols() {
        for (name, message) in messages() {
            let id = format!("{}/{name}", protocol.name());
            let mut record = BytesMut::new();
            protocol.encode(&message, &mut record).ok();
            let record = record.freeze();
            let mut decoder = protocol.decoder(Some(64 * 1024));
            let mut buffer = BytesMut::with_capacity(4096);
            let mut decode_one = |buffer: &mut BytesMut| {
                buffer.clear();
                buffer.extend_from_slice(&record);
                black_box(decoder.decode(buffer).ok().flatten())
            };
            let count = allocations(|| {
                decode_one(&mut buffer);
            });
            eprintln!("allocations: decode {id}: {count} per message");
            group.bench_function(&id, |b| b.iter(|| decode_one(&mut buffer)));
        }
    }
    group.finish();
}

/// One way of reading a record; returns something to keep.
type DecodeRecord = fn(&Bytes) -> usize;

/// One record through the one-pass reader against the serde path it sits
/// in front of (`decode_record_with_serde`, what every record went through
/// before), and the borrowed view alone: the proof that the hand-written
/// reader in `protocol/json_scan.rs` pays for itself.
fn decode_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode-record");
    for (name, message) in messages() {
        let mut wire = BytesMut::new();
        HubProtocol::Json.encode(&message, &mut wire).ok();
        wire.truncate(wire.len() - 1);
        let record = wire.freeze();
        let cases: [(&str, DecodeRecord); 3] = [
            ("serde", |record| {
                usize::from(json::decode_record_with_serde(record).is_ok())
            }),
            ("one-pass", |record| {
                usize::from(json::decode_record(record).is_ok())
            }),
            ("one-pass-borrowed", |record| {
                JsonRecordView::scan(record).map_or(0, |view| view.arguments().len())
            }),
        ];
        for (path, run) in cases {
            let id = format!("json/{name}/{path}");
            let count = allocations(|| {
                black_box(run(black_box(&record)));
            });
            eprintln!("allocations: decode-record {id}: {count} per record");
            group.bench_function(&id, |b| b.iter(|| run(black_box(&record))));
        }
    }
    group.finish();
}

criterion_group!(benches, encode, decode, decode_record);
criterion_main!(benches);
