use hub_runtime::{authorize, hub, hub_client};

#[hub_client]
pub trait IChat {
    async fn receive(&self, message: String);
}

/// Not a policy: it implements neither `Policy` nor `SyncPolicy`.
pub struct RoomOwner;

pub struct ChatHub;

#[hub(client = IChat)]
impl ChatHub {
    #[authorize(policy = RoomOwner)]
    async fn rename_room(&self, name: String) {
        let _ = name;
    }
}

fn main() {}
