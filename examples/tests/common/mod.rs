//! What the example tests share: a typed client of a hub in memory or by
//! URL, and waiting for something to arrive.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use hub_runtime::client::{HubConnection, HubConnectionBuilder};

/// How long anything may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Builds and starts a connection.
pub async fn started(builder: HubConnectionBuilder) -> HubConnection {
    let connection = builder.build().unwrap();
    tokio::time::timeout(PATIENCE, connection.start())
        .await
        .expect("the connection starts in time")
        .unwrap();
    connection
}

/// The next item of `receiver`, within [`PATIENCE`].
pub async fn next<T>(receiver: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(PATIENCE, receiver.recv())
        .await
        .expect("it arrives in time")
        .expect("the channel is open")
}
