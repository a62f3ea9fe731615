//! `#[authorize]` on a hub and its methods, inherent and `#[hub_server]`
//! trait implementations, with roles and policies (sync and async).

use hub_runtime::authorization::{AuthorizationRequest, Policy, SyncPolicy};
use hub_runtime::server::HubServer;
use hub_runtime::{Hub, authorize, hub, hub_client, hub_server};

#[hub_client]
pub trait IChat {
    async fn receive(&self, message: String);
}

mod policies {
    use super::*;

    pub struct Staff;

    impl SyncPolicy for Staff {
        fn check(&self, request: &AuthorizationRequest<'_>) -> bool {
            request.identity.user_id().is_some_and(|u| u.starts_with("staff_"))
        }
    }

    pub struct Owner(pub String);

    impl Policy for Owner {
        async fn authorize(&self, request: &AuthorizationRequest<'_>) -> bool {
            request.identity.user_id() == Some(self.0.as_str())
        }
    }
}

pub struct ChatHub;

#[hub(client = IChat)]
#[authorize]
impl ChatHub {
    async fn open(&self) {}

    #[authorize(roles("admin", "moderator"))]
    #[authorize(policy = policies::Staff)]
    async fn ban(&self, user: String) {
        let _ = user;
    }

    #[hub_runtime::authorize(policy = crate::policies::Owner, roles("owner"))]
    async fn rename(&self, name: String) {
        let _ = name;
    }
}

#[hub_server]
pub trait IRoomHub {
    async fn enter(&self, room: String);
    async fn close_room(&self, room: String);
}

pub struct RoomHub;

#[hub(client = IChat)]
impl IRoomHub for RoomHub {
    async fn enter(&self, room: String) {
        let _ = room;
    }

    #[authorize(roles("admin"))]
    async fn close_room(&self, room: String) {
        let _ = room;
    }
}

fn main() {
    assert!(<ChatHub as Hub>::AUTHORIZATION.is_some());
    assert!(<ChatHub as Hub>::method_authorization(0).is_none());
    let ban = <ChatHub as Hub>::method_authorization(1).expect("ban is authorized");
    assert_eq!(ban.roles, &[&["admin", "moderator"][..]]);
    assert_eq!(ban.policies.len(), 1);
    assert!(<RoomHub as Hub>::method_authorization(0).is_none());
    assert!(<RoomHub as Hub>::method_authorization(1).is_some());

    // A named policy must be registered.
    let missing = HubServer::builder(ChatHub).try_build().expect_err("policies missing");
    assert!(missing.to_string().contains("policies::Staff"), "{missing}");
    let _server = HubServer::builder(ChatHub)
        .policy(policies::Staff)
        .policy(policies::Owner("ada".into()))
        .build();
    let _rooms = HubServer::new(RoomHub);
}
