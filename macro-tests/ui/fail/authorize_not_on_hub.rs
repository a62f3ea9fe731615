use hub_runtime::authorize;

pub struct Service;

impl Service {
    // Not a hub method: nothing would check it.
    #[authorize(roles("admin"))]
    pub async fn delete_everything(&self) {}
}

#[authorize]
pub fn helper() {}

fn main() {}
