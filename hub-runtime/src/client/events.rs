//! What a [`HubConnection`](super::HubConnection) is doing and what
//! happened to it: [`HubConnectionState`] and [`HubConnectionEvent`].

use crate::HubError;

/// The state of a [`HubConnection`](super::HubConnection), as the official clients name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubConnectionState {
    /// Not connected; `start()` may be called.
    Disconnected,
    /// `start()` is negotiating, connecting or handshaking.
    Connecting,
    /// Connected: `invoke` and `send` work.
    Connected,
    /// The connection was lost and automatic reconnect is trying again.
    Reconnecting,
    /// `stop()` was called and the connection is closing.
    Disconnecting,
}

/// Something that happened to a [`HubConnection`](super::HubConnection),
/// delivered to every receiver of
/// [`HubConnection::events`](super::HubConnection::events).
#[derive(Debug, Clone)]
pub enum HubConnectionEvent {
    /// The connection was lost and automatic reconnect starts; `error` is
    /// why it was lost (`None` for a clean close by the server).
    Reconnecting {
        /// Why the connection was lost.
        error: Option<HubError>,
    },
    /// Automatic reconnect succeeded with a brand-new connection.
    Reconnected {
        /// The new connection's id (`None` when negotiation is skipped).
        connection_id: Option<String>,
    },
    /// The connection is closed for good (after `stop()`, a server Close
    /// without `allowReconnect`, a loss without automatic reconnect, or
    /// once reconnect gave up). `error` is why, `None` for a clean stop.
    Closed {
        /// What closed it.
        reason: ClosedReason,
        /// The error it closed with: the server's Close error (kind
        /// [`Remote`](crate::HubErrorKind::Remote)), the transport's
        /// failure with its WebSocket close code and reason, the server
        /// timeout, or the last reconnect attempt's error; `None` for a
        /// clean close.
        error: Option<HubError>,
    },
}

/// What closed a [`HubConnection`](super::HubConnection) for good, on
/// [`HubConnectionEvent::Closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClosedReason {
    /// `stop()` was called (or the last handle dropped).
    Stopped,
    /// The server closed the connection: a Close message (with
    /// `allowReconnect: false`, or without automatic reconnect) or a
    /// normal end of the transport.
    ServerClosed,
    /// The transport failed or the server timed out, and automatic
    /// reconnect was off or its policy declined to try.
    Lost,
    /// Automatic reconnect tried and its policy gave up.
    ReconnectFailed,
}
