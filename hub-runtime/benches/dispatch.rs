//! One echo call end to end, in process: the Rust client's proxy call,
//! the in-memory transport, the server's decode, dispatch and Completion,
//! and the client's decode of the answer. Prints the heap allocations one
//! call takes (both sides together, counted by an instrumented global
//! allocator on a single-threaded runtime) before criterion's timing.
//!
//! ```text
//! cargo bench -p hub-runtime --bench dispatch
//! ```

use std::alloc::System;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hub_runtime::protocol::HubProtocol;
use hub_runtime::server::HubServer;
use hub_runtime::{hub, hub_client, hub_server};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

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
        let region = Region::new(GLOBAL);
        for _ in 0..calls {
            black_box(call());
        }
        let stats = region.change();
        let id = format!("{}/32B", protocol.name());
        eprintln!(
            "allocations: echo-call {id}: {:.1} per call (client and server, in process)",
            stats.allocations as f64 / f64::from(calls)
        );
        group.bench_function(&id, |b| b.iter(|| black_box(call())));
        runtime.block_on(connection.stop());
    }
    group.finish();
}

criterion_group!(benches, echo);
criterion_main!(benches);
