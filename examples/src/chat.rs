//! The chat hub: rooms are groups, people are users.
//!
//! A connection's user comes from its bearer token `user-NAME` (the
//! `Authorization` header or the `access_token` query parameter a browser
//! sends); a connection without a token may read but not post. Clients
//! implement [`IChatClient`]; they call the hub through [`IChatHub`]'s
//! typed proxy (`connection.hub::<IChatHubProxy>()`).

use hub_runtime::server::{HubServer, Unauthorized, bearer_token};
use hub_runtime::{CallContext, HubError, Timestamp, hub, hub_client, hub_server};
use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room it was posted to.
    pub room: String,
    /// Who posted it.
    pub from: String,
    /// What they wrote.
    pub text: String,
    /// When the server received it.
    pub at: Timestamp,
}

/// What the chat hub calls on its clients.
#[hub_client]
pub trait IChatClient {
    /// A message was posted to a room this connection joined.
    async fn message_posted(&self, message: ChatMessage);
    /// A private message to this connection's user.
    async fn whispered(&self, message: ChatMessage);
    /// Someone joined a room this connection is in.
    async fn joined(&self, room: String, user: String);
}

/// What chat clients call on the hub.
#[hub_server]
pub trait IChatHub {
    /// Joins `room`; the room's members are told.
    async fn join(&self, ctx: &CallContext<Self>, room: String) -> Result<(), HubError>;
    /// Leaves `room`.
    async fn leave(&self, ctx: &CallContext<Self>, room: String) -> Result<(), HubError>;
    /// Posts `text` to everyone in `room` (signed-in users only).
    async fn post(
        &self,
        ctx: &CallContext<Self>,
        room: String,
        text: String,
    ) -> Result<(), HubError>;
    /// Sends `text` to every connection of `user` (signed-in users only).
    async fn whisper(
        &self,
        ctx: &CallContext<Self>,
        user: String,
        text: String,
    ) -> Result<(), HubError>;
    /// Who this connection is, if signed in.
    async fn whoami(&self, ctx: &CallContext<Self>) -> Option<String>;
}

/// The chat hub. It keeps no state: rooms are the hub's groups.
#[derive(Debug, Default)]
pub struct ChatHub;

/// The signed-in user, or an error a client sees as a `HubException`.
fn signed_in(ctx: &CallContext<ChatHub>) -> Result<String, HubError> {
    ctx.user_id()
        .map(str::to_owned)
        .ok_or_else(|| HubError::new("Sign in to post: connect with a bearer token user-NAME."))
}

#[hub(client = IChatClient)]
impl IChatHub for ChatHub {
    async fn join(&self, ctx: &CallContext<Self>, room: String) -> Result<(), HubError> {
        ctx.groups().add(ctx.connection_id(), room.as_str()).await?;
        let user = ctx.user_id().unwrap_or("someone").to_owned();
        ctx.clients().group(room.as_str()).joined(room, user).await
    }

    async fn leave(&self, ctx: &CallContext<Self>, room: String) -> Result<(), HubError> {
        ctx.groups().remove(ctx.connection_id(), room).await
    }

    async fn post(
        &self,
        ctx: &CallContext<Self>,
        room: String,
        text: String,
    ) -> Result<(), HubError> {
        let from = signed_in(ctx)?;
        let message = ChatMessage {
            room: room.clone(),
            from,
            text,
            at: Timestamp::now(),
        };
        ctx.clients().group(room).message_posted(message).await
    }

    async fn whisper(
        &self,
        ctx: &CallContext<Self>,
        user: String,
        text: String,
    ) -> Result<(), HubError> {
        let from = signed_in(ctx)?;
        let message = ChatMessage {
            room: String::new(),
            from,
            text,
            at: Timestamp::now(),
        };
        ctx.clients().user(user).whispered(message).await
    }

    async fn whoami(&self, ctx: &CallContext<Self>) -> Option<String> {
        ctx.user_id().map(str::to_owned)
    }
}

/// The user of a request: bearer token `user-NAME` is `NAME`; no token is
/// anonymous; any other token is refused with 401.
///
/// This stands in for real authentication (a signed token checked here):
/// the point is where the user id comes from, not how tokens are issued.
///
/// # Errors
/// [`Unauthorized`] for a token that is not `user-NAME`.
pub fn user_from_token(request: &http::request::Parts) -> Result<Option<String>, Unauthorized> {
    match bearer_token(request) {
        None => Ok(None),
        Some(token) => match token.strip_prefix("user-") {
            Some(name) if !name.is_empty() => Ok(Some(name.to_owned())),
            _ => Err(Unauthorized),
        },
    }
}

/// Where the hub is mounted.
pub const HUB_PATH: &str = "/hubs/chat";

/// The chat hub with its user id provider.
pub fn server() -> HubServer<ChatHub> {
    HubServer::builder(ChatHub)
        .user_id_provider(user_from_token)
        .build()
}

/// The web app: the hub at [`HUB_PATH`].
pub fn app(hub: &HubServer<ChatHub>) -> axum::Router {
    axum::Router::new().nest(HUB_PATH, hub.router())
}
