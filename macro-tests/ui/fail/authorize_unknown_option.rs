use hub_runtime::{authorize, hub, hub_client};

#[hub_client]
pub trait IChat {
    async fn receive(&self, message: String);
}

pub struct ChatHub;

#[hub(client = IChat)]
impl ChatHub {
    // `role` is not an option: `roles("admin")` is.
    #[authorize(role = "admin")]
    async fn ban(&self, user: String) {
        let _ = user;
    }
}

fn main() {}
