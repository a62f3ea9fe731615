//! The chat hub: rooms are groups, people are users.
//!
//! A connection's identity comes from its bearer token `user-NAME`, or
//! `user-NAME.role-ROLE` with roles (the `Authorization` header or the
//! `access_token` query parameter a browser sends; see [`ChatTokens`]); a
//! connection without a token may read but not post, and only a
//! `moderator` may [`announce`](IChatHub::announce). Clients implement
//! [`IChatClient`]; they call the hub through [`IChatHub`]'s typed proxy
//! (`connection.hub::<IChatHubProxy>()`).

use hub_runtime::server::{Authenticator, HubServer, Unauthorized, bearer_token};
use hub_runtime::{
    CallContext, HubError, Identity, Timestamp, authorize, hub, hub_client, hub_server,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
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
#[hub_client(typescript)]
pub trait IChatClient {
    /// A message was posted to a room this connection joined.
    async fn message_posted(&self, message: ChatMessage);
    /// A private message to this connection's user.
    async fn whispered(&self, message: ChatMessage);
    /// Someone joined a room this connection is in.
    async fn joined(&self, room: String, user: String);
}

/// What chat clients call on the hub.
#[hub_server(typescript)]
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
    /// Posts `text` to everyone in `room` as an announcement from
    /// "NAME (moderator)"; callers without the role `moderator` get an
    /// `unauthorized` error.
    async fn announce(
        &self,
        ctx: &CallContext<Self>,
        room: String,
        text: String,
    ) -> Result<(), HubError>;
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

    // Checked before the method runs: a caller without the role gets
    // `Failed to invoke 'Announce' because user is unauthorized` and its
    // connection stays up.
    #[authorize(roles("moderator"))]
    async fn announce(
        &self,
        ctx: &CallContext<Self>,
        room: String,
        text: String,
    ) -> Result<(), HubError> {
        let message = ChatMessage {
            room: room.clone(),
            from: format!("{} (moderator)", ctx.user_id().unwrap_or_default()),
            text,
            at: Timestamp::now(),
        };
        ctx.clients().group(room).message_posted(message).await
    }
}

/// The chat's tokens: bearer token `user-NAME` is the user `NAME`, and
/// `user-NAME.role-ROLE` (any number of `.role-ROLE`) gives it roles; no
/// token is anonymous; any other token is refused with 401.
///
/// This stands in for real authentication (a signed token checked here):
/// the point is where the identity comes from, not how tokens are issued.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatTokens;

impl ChatTokens {
    /// The identity of `token`; `None` for a malformed one.
    pub fn identity(token: &str) -> Option<Identity> {
        let mut parts = token.split('.');
        let name = parts.next()?.strip_prefix("user-")?;
        if name.is_empty() {
            return None;
        }
        parts.try_fold(Identity::user(name), |identity, claim| {
            let role = claim
                .strip_prefix("role-")
                .filter(|role| !role.is_empty())?;
            Some(identity.with_role(role))
        })
    }
}

impl Authenticator for ChatTokens {
    async fn authenticate(&self, request: &http::request::Parts) -> Result<Identity, Unauthorized> {
        match bearer_token(request) {
            None => Ok(Identity::anonymous()),
            Some(token) => Self::identity(&token).ok_or(Unauthorized),
        }
    }
}

/// The TypeScript module of the chat contract, committed as
/// `examples/web/chat/src/generated/chat.ts` (the page is written against
/// it; `examples/tests/chat_page.rs` checks it is up to date).
///
/// # Errors
/// When two types share a TypeScript name (not in this contract).
pub fn typescript() -> Result<String, hub_runtime::typescript::TypeScriptError> {
    hub_runtime::typescript::TypeScript::new()
        .contract::<IChatHubContract>()
        .contract::<IChatClientContract>()
        .render()
}

/// Where the hub is mounted.
pub const HUB_PATH: &str = "/hubs/chat";

/// The chat hub with its authenticator, [`ChatTokens`].
pub fn server() -> HubServer<ChatHub> {
    HubServer::builder(ChatHub)
        .authenticator(ChatTokens)
        .build()
}

/// The chat page (`examples/web/chat/index.html`).
pub const INDEX_HTML: &str = include_str!("../web/chat/index.html");

/// The page's script, compiled by `tsc -p examples/web/chat` from
/// `web/chat/src/main.ts` (a test checks it is up to date).
pub const APP_SCRIPT: &str = include_str!("../web/chat/dist/main.js");

/// The module generated from the contracts, compiled: `main.js` imports it
/// as `./generated/chat.js`.
pub const CONTRACT_SCRIPT: &str = include_str!("../web/chat/dist/generated/chat.js");

/// The official browser client, `@microsoft/signalr`'s
/// `dist/browser/signalr.min.js`: the copy the clock demo vendors (with its
/// license), checked against the locked npm package by the clock tests.
pub const SIGNALR_SCRIPT: &[u8] = include_bytes!("../../clock-demo/web/vendor/signalr.min.js");

fn javascript(body: impl axum::response::IntoResponse) -> axum::response::Response {
    axum::response::IntoResponse::into_response((
        [(http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    ))
}

/// The web app: the chat page at `/` (`?user=NAME&room=ROOM`), its
/// scripts, and the hub at [`HUB_PATH`].
pub fn app(hub: &HubServer<ChatHub>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(|| async { axum::response::Html(INDEX_HTML) }))
        .route(
            "/lib/signalr.min.js",
            get(|| async { javascript(SIGNALR_SCRIPT) }),
        )
        .route("/app/main.js", get(|| async { javascript(APP_SCRIPT) }))
        .route(
            "/app/generated/chat.js",
            get(|| async { javascript(CONTRACT_SCRIPT) }),
        )
        .nest(HUB_PATH, hub.router())
}
