//! `crate = path` names the runtime when it is reached through another
//! path (here a re-export).

mod reexport {
    pub use hub_runtime as rt;
}

#[reexport::rt::hub_client(crate = crate::reexport::rt)]
pub trait INotify {
    async fn notify(&self, text: String);
}

pub struct NotifyHub;

#[reexport::rt::hub(client = INotify, crate = crate::reexport::rt)]
impl NotifyHub {
    async fn echo(&self, text: String) -> String {
        text
    }
}

fn main() {
    use reexport::rt::Hub as _;
    assert_eq!(NotifyHub::METHODS[0].name, "Echo");
}
