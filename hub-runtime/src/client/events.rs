//! What a [`HubConnection`](super::HubConnection) is doing and what
//! happened to it: [`HubConnectionState`] and [`HubConnectionEvent`].

use crate::HubError;

/// The state of a [`HubConnection`], as the official clients name them.
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

/// Something that happened to a [`HubConnection`], delivered to every
/// receiver of [`HubConnection::events`].
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
        /// Why the connection closed.
        error: Option<HubError>,
    },
}
