//! The axum-app example: the `axum-app` binary's REST routes and hub share
//! their state, and its tower layers (CORS, compression) apply, over real
//! sockets; the hub alone in memory.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};

use common::{next, started};
use hub_examples::axum_app::{ITodoClient, ITodoHubProxy, Todo, Todos, app};
use hub_runtime::client::HubConnection;
use tokio::sync::mpsc;

struct Added(mpsc::UnboundedSender<Todo>);

impl ITodoClient for Added {
    async fn todo_added(&self, todo: Todo) {
        let _ = self.0.send(todo);
    }
}

/// One HTTP/1.1 request on a fresh connection; the whole response as text
/// (headers and body; a gzip body is not decoded).
fn http(base_url: &str, request: &str) -> String {
    let address = base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(request.replace("HOST", address).as_bytes())
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn rest_and_hub_share_state_under_tower_layers() {
    let server = hub_tests::ServerProcess::start(env!("CARGO_BIN_EXE_axum-app"), &[]);
    let base = server.base_url().to_owned();
    let (sender, mut added) = mpsc::unbounded_channel();
    let connection = started(
        HubConnection::builder(format!("{base}/hubs/todos"))
            .handlers(Added(sender).into_handlers()),
    )
    .await;

    // A REST POST reaches the hub's clients…
    let title = "buy milk, bread and a very long list of other things";
    let body = format!("{{\"title\":\"{title}\"}}");
    let base_for_post = base.clone();
    let response = tokio::task::spawn_blocking(move || {
        http(
            &base_for_post,
            &format!(
                "POST /api/todos HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let todo = next(&mut added).await;
    assert_eq!(todo.title, title);
    // …and the hub reads the list REST wrote.
    assert_eq!(
        connection.hub::<ITodoHubProxy>().list().await.unwrap(),
        vec![todo]
    );

    let base_for_get = base.clone();
    let (get, preflight) = tokio::task::spawn_blocking(move || {
        (
            http(
                &base_for_get,
                "GET /api/todos HTTP/1.1\r\nHost: HOST\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
            ),
            http(
                &base_for_get,
                "OPTIONS /hubs/todos/negotiate HTTP/1.1\r\nHost: HOST\r\nOrigin: http://example.test\r\n\
                 Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
            ),
        )
    })
    .await
    .unwrap();
    // Compression applies to REST answers…
    assert!(
        get.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{get}"
    );
    // …and CORS to the hub's negotiate too.
    assert!(
        preflight
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{preflight}"
    );

    connection.stop().await;
    assert!(server.terminate(), "axum-app exits with 0 on SIGTERM");
}

#[tokio::test]
async fn the_hub_lists_what_the_app_added_in_memory() {
    let todos = Todos::default();
    let (_router, hub) = app(todos.clone());
    todos.add("water the plants".to_owned());
    let connection = started(hub.test_client()).await;
    let listed = connection.hub::<ITodoHubProxy>().list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].title, "water the plants");
    connection.stop().await;
}
