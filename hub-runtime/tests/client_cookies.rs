//! The client's HTTP stack against this crate's server: cookies set by
//! negotiate come back on every transport request (the WebSocket upgrade,
//! Server-Sent Events, Long Polling's polls and POSTs), and the access
//! token provider is asked again for each of those requests.

#![cfg(all(feature = "client", feature = "server"))]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hub_runtime::client::{HubConnection, TransportType, Transports};
use hub_runtime::server::HubServer;
use tokio::net::TcpListener;

use server_support::TestHub;

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    cookie: Option<String>,
    authorization: Option<String>,
}

/// The hub behind a layer that records every request and sets an
/// affinity cookie, as a load balancer does, on negotiate responses.
async fn serve() -> (String, Arc<Mutex<Vec<Seen>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hub = HubServer::new(TestHub::default());
    let record = seen.clone();
    let app =
        axum::Router::new()
            .nest("/hubs/test", hub.router())
            .layer(axum::middleware::from_fn(
                move |request: Request, next: Next| {
                    let record = record.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let seen = {
                            let header = |name: &str| {
                                request
                                    .headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            Seen {
                                method: request.method().to_string(),
                                path: path.clone(),
                                cookie: header("cookie"),
                                authorization: header("authorization"),
                            }
                        };
                        record.lock().unwrap().push(seen);
                        let mut response: Response = next.run(request).await;
                        if path.ends_with("/negotiate") {
                            response.headers_mut().append(
                                "set-cookie",
                                "affinity=node-7; Path=/; HttpOnly".parse().unwrap(),
                            );
                        }
                        response
                    }
                },
            ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hubs/test"), seen, task)
}

async fn cookies_and_tokens_on(transport: TransportType) {
    let (url, seen, task) = serve().await;
    let only = Transports {
        web_sockets: transport == TransportType::WebSockets,
        server_sent_events: transport == TransportType::ServerSentEvents,
        long_polling: transport == TransportType::LongPolling,
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let connection = HubConnection::builder(url)
        .transports(only)
        .access_token_factory(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { Some(format!("token-{n}")) }
        })
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), connection.start())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connection.transport(), Some(transport));
    for text in ["one", "two"] {
        let echoed: String = connection.invoke("Echo", (text,)).await.unwrap();
        assert_eq!(echoed, text);
    }
    connection.stop().await;
    task.abort();

    let seen = seen.lock().unwrap().clone();
    let (negotiates, transport_requests): (Vec<_>, Vec<_>) =
        seen.iter().partition(|s| s.path.ends_with("/negotiate"));
    assert_eq!(negotiates.len(), 1, "{seen:#?}");
    assert_eq!(
        negotiates[0].cookie, None,
        "no cookie before negotiate set one"
    );
    assert!(!transport_requests.is_empty());
    for request in &transport_requests {
        assert_eq!(
            request.cookie.as_deref(),
            Some("affinity=node-7"),
            "the affinity cookie on {} {}: {seen:#?}",
            request.method,
            request.path
        );
        assert!(
            request
                .authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer token-")),
            "a token on {} {}",
            request.method,
            request.path
        );
    }
    // The provider was asked for negotiate and for every transport request
    // (the WebSocket asks once for its upgrade).
    let asked = calls.load(Ordering::SeqCst);
    assert!(
        asked > transport_requests.len(),
        "asked {asked} times for {} transport requests",
        transport_requests.len()
    );
    if transport == TransportType::LongPolling {
        let tokens: std::collections::HashSet<_> = transport_requests
            .iter()
            .filter_map(|r| r.authorization.clone())
            .collect();
        assert!(tokens.len() > 1, "a fresh token per request: {tokens:?}");
    }
}

#[tokio::test]
async fn negotiate_cookies_reach_the_websocket_upgrade() {
    cookies_and_tokens_on(TransportType::WebSockets).await;
}

#[tokio::test]
async fn negotiate_cookies_reach_server_sent_events() {
    cookies_and_tokens_on(TransportType::ServerSentEvents).await;
}

#[tokio::test]
async fn negotiate_cookies_reach_long_polling() {
    cookies_and_tokens_on(TransportType::LongPolling).await;
}
