//! The worker and the app in process: a Rust client registered with the
//! `IClock` handlers receives the worker's ticks over a real socket, can ask
//! for the time, and the worker stops when told to.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use clock_demo::{ClockHub, HUB_PATH, IClock, IClockHubProxy, app, worker};
use hub_runtime::Timestamp;
use hub_runtime::client::HubConnection;
use hub_runtime::server::HubServer;
use tokio::sync::{mpsc, oneshot};

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(30);

struct Clock {
    shown: mpsc::UnboundedSender<Timestamp>,
}

impl IClock for Clock {
    async fn show_time(&self, now: Timestamp) {
        let _ = self.shown.send(now);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_ticks_reach_a_typed_client_and_stop_on_request() {
    let hub = HubServer::new(ClockHub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app(&hub)).into_future());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let ticking = tokio::spawn(worker(hub.context(), async move {
        let _ = stop_rx.await;
    }));

    let (shown_tx, mut shown) = mpsc::unbounded_channel();
    let connection = HubConnection::builder(format!("http://{address}{HUB_PATH}"))
        .handlers(Clock { shown: shown_tx }.into_handlers())
        .build()
        .unwrap();
    connection.start().await.unwrap();

    let mut times = Vec::new();
    while times.len() < 2 {
        let time = tokio::time::timeout(PATIENCE, shown.recv())
            .await
            .expect("the worker ticks")
            .unwrap();
        times.push(time);
    }
    assert!(times[1] > times[0], "{times:?}");

    let hub_proxy = connection.hub::<IClockHubProxy>();
    let asked: Timestamp = hub_proxy.get_time().await.unwrap();
    assert!(asked >= times[0]);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(PATIENCE, ticking)
        .await
        .expect("the worker stops when told to")
        .unwrap();
    // A tick sent just before the worker stopped may still be on its way.
    // The client runs its handlers in the order the messages arrived, so
    // once an answer sent after the last tick is back, every tick is at
    // least in the client's hands: drain them, then: silence.
    hub_proxy.get_time().await.unwrap();
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), shown.recv()).await {}
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), shown.recv())
            .await
            .is_err(),
        "no tick after the worker stopped"
    );

    connection.stop().await;
    hub.shutdown().await;
    server.abort();
}
