//! A hub connection opened by hand over Server-Sent Events or Long Polling
//! that stops taking what the server sends, and a typed sender that floods
//! it: the shape of the send-buffer tests (`transport_buffer_bytes`), which
//! check that what the server holds for such a client is bounded in bytes.

use hub_runtime::client::{HubConnection, Transports};

use crate::conformance::{ConformanceConnection, within};
use crate::raw_http;

const RS: char = '\u{1e}';

/// A connection negotiated on the conformance hub at `host`
/// (`127.0.0.1:PORT`) with raw HTTP: no client library runs it, so it reads
/// only when the test says so.
pub struct RawConnection {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The connection token (`?id=` of the transport requests).
    pub token: String,
    /// The connection id (what `SendToConnection` takes).
    pub connection_id: String,
}

impl RawConnection {
    /// Negotiates (version 1) on `/hubs/test` at `host`.
    ///
    /// # Panics
    /// When negotiate does not answer 200 with a token and an id.
    pub async fn negotiate(host: &str) -> RawConnection {
        let (status, body) = raw_http(
            host,
            &format!(
                "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, 200, "negotiate answers 200: {body}");
        let negotiated: serde_json::Value =
            serde_json::from_str(&body).expect("negotiate answers JSON");
        let field = |name: &str| {
            negotiated[name]
                .as_str()
                .unwrap_or_else(|| panic!("negotiate answers a {name}: {body}"))
                .to_owned()
        };
        RawConnection {
            host: host.to_owned(),
            token: field("connectionToken"),
            connection_id: field("connectionId"),
        }
    }

    /// The request line and headers of a GET on the transport (no body;
    /// `extra` headers end with `\r\n`).
    pub fn get_request(&self, extra: &str) -> String {
        format!(
            "GET /hubs/test?id={} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            self.token, self.host
        )
    }

    /// One Long Polling poll (the first one starts the connection): the
    /// status and the body.
    pub async fn poll(&self) -> (u16, String) {
        raw_http(&self.host, &self.get_request("")).await
    }

    /// POSTs the JSON hub handshake on the transport.
    ///
    /// # Panics
    /// When the POST is not accepted.
    pub async fn post_json_handshake(&self) {
        let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
        let (status, body) = raw_http(
            &self.host,
            &format!(
                "POST /hubs/test?id={} HTTP/1.1\r\nHost: {}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{handshake}",
                self.token,
                self.host,
                handshake.len()
            ),
        )
        .await;
        assert_eq!(status, 200, "the handshake POST is accepted: {body}");
    }

    /// Sends `count` messages of `size` bytes to this connection with a
    /// typed `SendToConnection` from a Rust client over WebSockets, each
    /// answered before the next, so that they queue up on the server.
    ///
    /// # Panics
    /// When the sender cannot connect or a call fails.
    pub async fn flood(&self, count: usize, size: usize) {
        let builder = HubConnection::builder(format!("http://{}/hubs/test", self.host)).transports(
            Transports {
                server_sent_events: false,
                long_polling: false,
                ..Transports::ALL
            },
        );
        let sender = ConformanceConnection::new(builder, "flooder").expect("a sender");
        sender.start().await.expect("the sender connects");
        let blob = "z".repeat(size);
        for _ in 0..count {
            within(
                "SendToConnection",
                sender
                    .hub
                    .send_to_connection(self.connection_id.clone(), blob.clone()),
            )
            .await
            .expect("SendToConnection succeeds");
        }
        sender.stop().await;
    }
}

/// How many `Receive` invocations `text` holds.
pub fn receive_count(text: &str) -> usize {
    text.matches("\"target\":\"Receive\"").count()
}
