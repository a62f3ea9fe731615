use hub_runtime::authorization::{AuthorizationRequest, SyncPolicy};
use hub_runtime::{authorize, hub, hub_client};

#[hub_client]
pub trait IChat {
    async fn receive(&self, message: String);
}

pub struct RoomOwner;

impl SyncPolicy for RoomOwner {
    fn check(&self, request: &AuthorizationRequest<'_>) -> bool {
        request.identity.is_authenticated()
    }
}

pub struct ChatHub;

#[hub(client = IChat)]
impl ChatHub {
    #[authorize(policy = RoomOwnr)]
    async fn rename_room(&self, name: String) {
        let _ = name;
    }
}

fn main() {}
