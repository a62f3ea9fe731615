//! [`HubOptions`]: the server's tunables, with ASP.NET Core's defaults.

use std::time::Duration;

use crate::protocol::HubProtocol;

/// How a hub server behaves. The defaults are ASP.NET Core's where ASP.NET
/// Core has the setting; override fields with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// use hub_runtime::server::HubOptions;
///
/// let options = HubOptions {
///     keep_alive_interval: Duration::from_secs(10),
///     enable_detailed_errors: true,
///     ..HubOptions::default()
/// };
/// assert_eq!(options.client_timeout_interval, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Send a Ping when the server has sent nothing for this long (default
    /// 15 s, as ASP.NET Core). Keep it well below the clients' server
    /// timeout (30 s in the JS client).
    pub keep_alive_interval: Duration,

    /// Close a connection whose client has sent nothing for this long
    /// (default 30 s). Armed only once the client has sent its first
    /// message after the handshake — the official clients ping right away,
    /// old ones never do and are never timed out — and reset by every
    /// message. The client gets a Close with
    /// `"Connection closed with an error."` and `allowReconnect: true`.
    /// It is also the time the body of a Server-Sent Events or Long Polling
    /// POST has to arrive whole (408 otherwise): a body trickled in byte by
    /// byte does not hold its request for ever.
    pub client_timeout_interval: Duration,

    /// How long a client has to send its handshake request (default 15 s).
    /// On expiry it gets `{"error":"Handshake was canceled."}`.
    pub handshake_timeout: Duration,

    /// The largest message (one record) a client may send, in bytes;
    /// `None` for no limit (default `Some(32768)`). A larger message is a
    /// protocol error: the connection is closed with
    /// `"Connection closed with an error."` and `allowReconnect: true`.
    pub maximum_receive_message_size: Option<usize>,

    /// Append the underlying error to the texts clients receive (default
    /// `false`). Messages of [`HubError`](crate::HubError)s returned by hub
    /// methods always reach the client, this setting or not.
    pub enable_detailed_errors: bool,

    /// How many invocations of one client run at the same time (default 1:
    /// one after the other, in arrival order, as ASP.NET Core).
    ///
    /// Invocations beyond the limit wait, in arrival order. A hub method
    /// awaiting a client result gives its slot back while it waits, so the
    /// connection keeps reading (Completions, Pings) and no limit can
    /// deadlock against the answer.
    pub maximum_parallel_invocations_per_client: usize,

    /// How many invocations of one client may wait for a slot (default 32).
    ///
    /// Backpressure: while this many wait, the server stops reading from
    /// that client (its transport buffers fill and the client's sends slow
    /// down) until a running invocation finishes. The client timeout does
    /// not run during that pause.
    pub maximum_queued_invocations_per_client: usize,

    /// The bound of each connection's outbound queue, in queued writes
    /// (records, or pre-encoded broadcast messages) (default 1024).
    ///
    /// Slow-consumer policy: sending to other clients never waits for a
    /// client. Broadcasts, group and single-client messages are pushed with
    /// `try_send`; a connection whose queue is full (or holds
    /// [`maximum_outbound_buffer_size`](Self::maximum_outbound_buffer_size)
    /// bytes) — a client that has stopped reading, or reads far slower than
    /// it is sent to — is closed at once (a best-effort Close with
    /// `"Connection closed with an error."` and `allowReconnect: true`, a
    /// WebSocket close code 1008, then the socket is dropped). Other clients
    /// and the sender are never slowed down by it. The answers to a
    /// connection's own invocations are the exception: they wait for room,
    /// and the connection's read loop stops reading while its queue is a
    /// quarter from full or above
    /// [`application_max_buffer_size`](Self::application_max_buffer_size),
    /// so a client that sends faster than it reads is slowed down, not
    /// closed (except under stateful reconnect, whose writer may wait for
    /// an Ack that only a reading loop sees). The writer drains the
    /// queue as fast as the socket accepts, coalescing queued messages into
    /// few frames, so the bound is only reached by a client that is really
    /// behind.
    pub outbound_queue_capacity: usize,

    /// The bytes queued for one connection above which the server applies
    /// backpressure to that connection (default 65 536, ASP.NET Core's
    /// `ApplicationMaxBufferSize` of 65 KB): its read loop stops reading —
    /// and answers to its own invocations wait — until the writer has
    /// drained the queue. A client that sends faster than it reads is slowed
    /// down, never closed for it.
    pub application_max_buffer_size: usize,

    /// The most bytes queued for one connection (default 1 MiB; ASP.NET
    /// Core has no such bound: there a slow client slows its senders down).
    /// A broadcast, group or single-client message that would queue more
    /// closes the connection as a slow consumer (see
    /// [`outbound_queue_capacity`](Self::outbound_queue_capacity)); a single
    /// message always fits an empty queue, whatever its size. With the
    /// message count bound, a slow consumer of 1 MiB messages pins about
    /// 2 MiB, not a gigabyte.
    pub maximum_outbound_buffer_size: usize,

    /// The bytes of written frames a Server-Sent Events response, or a
    /// Long Polling connection between two polls, buffers before the
    /// connection's writer waits for the client to take them (default
    /// 65 536, ASP.NET Core's `TransportMaxBufferSize` of 64 KB). One frame
    /// larger than this still fits an empty buffer. While the writer waits,
    /// the outbound queue fills, and a client that does not read (or
    /// poll) is closed by the slow-consumer policy
    /// ([`maximum_outbound_buffer_size`](Self::maximum_outbound_buffer_size)):
    /// its Close message is the last thing it receives.
    pub transport_max_buffer_size: usize,

    /// How long a client result (`invoke` on a single client) waits for
    /// the client's answer before failing with
    /// [`HubErrorKind::Timeout`](crate::HubErrorKind::Timeout) (default
    /// `Some(30 s)`). `None` waits until the connection closes, as ASP.NET
    /// Core does; a dead client is then found by the client timeout.
    pub client_result_timeout: Option<Duration>,

    /// How many items each stream buffers (default 10, ASP.NET Core's
    /// `StreamBufferCapacity`).
    ///
    /// Upload streams (client to server): the items a hub method has not
    /// taken yet. Once every upload stream of a connection is full and a
    /// lookahead of as many items again is used up, the server stops
    /// reading from that client until the hub method takes items.
    /// Server-to-client streams: the items queued for the client and not
    /// yet written to its socket; a streaming method that produces faster
    /// waits, so a slow client slows its own stream down and nothing else.
    pub stream_buffer_capacity: usize,

    /// The hub protocols clients may choose in the handshake (default JSON
    /// and MessagePack). Asking for another one fails the handshake with
    /// `The protocol '…' is not supported.`
    pub supported_protocols: Vec<HubProtocol>,

    /// A write to a transport that takes longer than this closes the
    /// connection (default 10 s, ASP.NET Core's `TransportSendTimeout`).
    pub transport_send_timeout: Duration,

    /// How long a negotiated connection may wait for its transport request
    /// before its id is forgotten (default 15 s, ASP.NET Core's
    /// `DisconnectTimeout`).
    pub disconnect_timeout: Duration,

    /// How long in-flight invocations may run on after their connection
    /// started closing (on shutdown, client close, errors), and how long
    /// [`HubServer::shutdown`](super::HubServer::shutdown) waits for
    /// connections to end (default 5 s). Invocations still running after it
    /// are cancelled. Server-to-client streams do not run on: a shutdown
    /// stops them at once, each with a Completion error.
    pub shutdown_timeout: Duration,

    /// The transports clients may use (default all three, as ASP.NET
    /// Core). Negotiate lists only these; a request for another one gets
    /// 404 `{Transport} transport not supported by this end point type`.
    pub transports: HttpTransports,

    /// How long a Long Polling poll waits for data before it returns empty
    /// (default 90 s, ASP.NET Core's `PollTimeout`; keep it below the
    /// clients' 100 s poll limit).
    pub long_polling_poll_timeout: Duration,

    /// Whether clients may turn stateful reconnect on (default `false`, as
    /// ASP.NET Core's `AllowStatefulReconnects`). With it, a WebSocket that
    /// drops without a Close frame keeps its connection for
    /// [`disconnect_timeout`](Self::disconnect_timeout): a client that comes
    /// back with the same connection token resumes, and both sides replay
    /// what the other has not acknowledged.
    pub allow_stateful_reconnects: bool,

    /// The most bytes of unacknowledged messages a stateful-reconnect
    /// connection buffers for replay (default 100 000, ASP.NET Core's
    /// `StatefulReconnectBufferSize`). Beyond it, writes to that connection
    /// wait for the client's Ack.
    pub stateful_reconnect_buffer_size: usize,
    /// Close a connection when its identity's expiry
    /// ([`Identity::with_expiry`](crate::Identity::with_expiry)) passes,
    /// so that an expired or revoked token does not live on in an open
    /// connection (ASP.NET Core's `CloseOnAuthenticationExpiration`).
    /// Default: `false`.
    pub close_on_authentication_expiration: bool,

    /// The browser origins (`https://app.example.com`) whose pages may use
    /// the hub; `None` (the default) allows every origin. A request whose
    /// `Origin` header is not in the list — negotiate, the WebSocket
    /// upgrade, Server-Sent Events, Long Polling, their POSTs and DELETEs —
    /// is refused with 403 before anything else happens; requests without
    /// `Origin` (non-browser clients) are served. ASP.NET Core leaves this
    /// to its CORS policy and `WebSocketOptions.AllowedOrigins`; CORS does
    /// not protect WebSockets, which is why the hub checks the upgrade
    /// itself (cross-site WebSocket hijacking of cookie-authenticated hubs).
    pub allowed_origins: Option<Vec<String>>,

    /// The most connections the hub runs at once; `None` (the default, as
    /// Kestrel's `MaxConcurrentConnections`) for no limit. Beyond it,
    /// negotiate and transport requests that would start a connection get
    /// 503 and the server logs a warning (at most once a second).
    pub maximum_connections: Option<usize>,

    /// The most negotiated connections waiting for their transport request
    /// (each for at most [`disconnect_timeout`](Self::disconnect_timeout));
    /// beyond it negotiate answers 503 and the server logs a warning
    /// (default `Some(10_000)`; ASP.NET Core has no such bound).
    pub maximum_pending_negotiations: Option<usize>,
}

/// Which transports a hub serves.
///
/// ```
/// use hub_runtime::server::{HttpTransports, HubOptions};
///
/// // Behind a proxy that blocks WebSockets: Server-Sent Events and Long Polling only.
/// let options = HubOptions {
///     transports: HttpTransports { web_sockets: false, ..HttpTransports::ALL },
///     ..HubOptions::default()
/// };
/// assert!(options.transports.long_polling);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTransports {
    /// WebSockets (full duplex; text and binary).
    pub web_sockets: bool,
    /// Server-Sent Events plus POSTs (text only: JSON).
    pub server_sent_events: bool,
    /// Long Polling plus POSTs (text and binary).
    pub long_polling: bool,
}

impl HttpTransports {
    /// Every transport.
    pub const ALL: HttpTransports = HttpTransports {
        web_sockets: true,
        server_sent_events: true,
        long_polling: true,
    };
}

impl Default for HttpTransports {
    fn default() -> Self {
        HttpTransports::ALL
    }
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            keep_alive_interval: Duration::from_secs(15),
            client_timeout_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            maximum_receive_message_size: Some(32 * 1024),
            enable_detailed_errors: false,
            maximum_parallel_invocations_per_client: 1,
            maximum_queued_invocations_per_client: 32,
            outbound_queue_capacity: 1024,
            application_max_buffer_size: 65_536,
            maximum_outbound_buffer_size: 1024 * 1024,
            transport_max_buffer_size: 65_536,
            client_result_timeout: Some(Duration::from_secs(30)),
            stream_buffer_capacity: 10,
            supported_protocols: HubProtocol::ALL.to_vec(),
            transport_send_timeout: Duration::from_secs(10),
            disconnect_timeout: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(5),
            transports: HttpTransports::ALL,
            long_polling_poll_timeout: Duration::from_secs(90),
            allow_stateful_reconnects: false,
            stateful_reconnect_buffer_size: 100_000,
            close_on_authentication_expiration: false,
            allowed_origins: None,
            maximum_connections: None,
            maximum_pending_negotiations: Some(10_000),
        }
    }
}
