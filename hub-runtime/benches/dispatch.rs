//! One echo call end to end, in process: the Rust client's proxy call,
//! the in-memory transport, the server's decode, dispatch and Completion,
//! and the client's decode of the answer. Prints the heap allocations one
//! call takes before criterion's timing, counted by an instrumented global
//! allocator on a single-threaded runtime: in all, and the server's part.
//! The server's part is what is allocated while its connection task runs:
//! the session runs inside its `signalr.connection` span, which the bench's
//! subscriber (interested in that span only, so that nothing else the
//! server traces turns on) sees entered and exited around every poll. The
//! echo completes inline in that task. The client's part is the rest.
//!
//! ```text
//! cargo bench -p hub-runtime --bench dispatch
//! ```

use std::alloc::System;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use hub_runtime::protocol::HubProtocol;
use hub_runtime::server::HubServer;
use hub_runtime::{hub, hub_client, hub_server};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Whether the server's part is being counted.
static SPLITTING: AtomicBool = AtomicBool::new(false);
/// The allocation count when the server's connection span was entered.
static ENTERED_AT: AtomicUsize = AtomicUsize::new(0);
/// Allocations made inside the server's connection span while counting.
static SERVER_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// Sees the server's connection span entered and exited, nothing else.
struct ServerSide;

fn is_connection_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.name() == "signalr.connection"
}

impl Subscriber for ServerSide {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_connection_span(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_connection_span(metadata)
    }
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _span: &Id, _values: &Record<'_>) {}
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, _event: &Event<'_>) {}
    fn enter(&self, _span: &Id) {
        ENTERED_AT.store(GLOBAL.stats().allocations, Ordering::Relaxed);
    }
    fn exit(&self, _span: &Id) {
        if SPLITTING.load(Ordering::Relaxed) {
            let spent = GLOBAL.stats().allocations - ENTERED_AT.load(Ordering::Relaxed);
            SERVER_ALLOCATIONS.fetch_add(spent, Ordering::Relaxed);
        }
    }
}

/// The bench's client contract (nothing is pushed to clients).
#[hub_client]
pub trait IEchoClient {
    /// Unused.
    async fn receive(&self, text: String);
}

/// The bench's hub contract: the echo workload of `hubbench`.
#[hub_server]
pub trait IEcho {
    /// Answers with its argument.
    async fn echo(&self, text: String) -> String;
}

/// The hub.
pub struct Echo;

#[hub(client = IEchoClient)]
impl IEcho for Echo {
    async fn echo(&self, text: String) -> String {
        text
    }
}

fn echo(c: &mut Criterion) {
    // Before any span exists: the connection span of each test connection
    // is then enabled.
    tracing::subscriber::set_global_default(ServerSide)
        .unwrap_or_else(|e| panic!("the bench's subscriber: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"));
    let mut group = c.benchmark_group("echo-call");
    for protocol in [HubProtocol::Json, HubProtocol::MessagePack] {
        let server = HubServer::new(Echo);
        let connection = runtime.block_on(async {
            let connection = server
                .test_client()
                .protocol(protocol)
                .build()
                .unwrap_or_else(|e| panic!("a client: {e}"));
            connection
                .start()
                .await
                .unwrap_or_else(|e| panic!("connected: {e}"));
            connection
        });
        let proxy = connection.hub::<IEchoProxy>();
        let text = "x".repeat(32);
        let call = || {
            runtime
                .block_on(proxy.echo(text.clone()))
                .unwrap_or_else(|e| panic!("echo answered: {e}"))
        };
        // Warm-up: buffers and queues reach their steady size.
        for _ in 0..100 {
            call();
        }
        let calls = 1000;
        SERVER_ALLOCATIONS.store(0, Ordering::Relaxed);
        SPLITTING.store(true, Ordering::Relaxed);
        let region = Region::new(GLOBAL);
        for _ in 0..calls {
            black_box(call());
        }
        let stats = region.change();
        SPLITTING.store(false, Ordering::Relaxed);
        let per_call = |count: usize| count as f64 / f64::from(calls);
        let total = per_call(stats.allocations);
        let server = per_call(SERVER_ALLOCATIONS.load(Ordering::Relaxed));
        let id = format!("{}/32B", protocol.name());
        eprintln!(
            "allocations: echo-call {id}: {total:.1} per call in all: server {server:.1}, client {:.1} (in process)",
            total - server
        );
        group.bench_function(&id, |b| b.iter(|| black_box(call())));
        runtime.block_on(connection.stop());
    }
    group.finish();
}

criterion_group!(benches, echo);
criterion_main!(benches);
