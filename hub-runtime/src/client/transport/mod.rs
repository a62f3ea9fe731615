//! The client's transports over one frame type ([`frame::Frame`]):
//! WebSockets, Server-Sent Events and Long Polling, the negotiate request,
//! and the fallback policy that picks one ([`fallback`]).

pub(crate) mod fallback;
pub(crate) mod frame;
mod http;
mod long_polling;
pub(crate) mod negotiate;
mod sse;
mod websocket;
