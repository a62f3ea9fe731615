//! What may cross the wire: [`ToWire`] (serialized) and [`FromWire`]
//! (deserialized), the bounds the runtime and the generated code put on
//! arguments, results and stream items. Each says, through
//! `#[diagnostic::on_unimplemented]`, what to derive when a type lacks it,
//! instead of serde's list of every type that has it.
//!
//! Low in the crate (it imports nothing of it) so that the hub's traits and
//! the macros' runtime API (`__private`) both use it.

/// A type that can be sent: what the generated code requires of what it
/// serializes, so that a type without `Serialize` gets this message rather
/// than serde's list of every type that has it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent to the other side: it does not implement `serde::Serialize` (or is not `Send + Sync + 'static`)",
    label = "sent over the wire, so serialized with serde",
    note = "add `#[derive(serde::Serialize)]` to `{Self}` (arguments, results and stream items of hub methods and client methods go through serde)"
)]
pub trait ToWire: serde::Serialize + Send + Sync + 'static {}

impl<T: serde::Serialize + Send + Sync + 'static> ToWire for T {}

/// A type that can be received: what the generated code requires of what it
/// deserializes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be received from the other side: it does not implement `serde::Deserialize`",
    label = "received over the wire, so deserialized with serde",
    note = "add `#[derive(serde::Deserialize)]` to `{Self}` (arguments, results and stream items of hub methods and client methods go through serde)"
)]
pub trait FromWire: serde::de::DeserializeOwned {}

impl<T: serde::de::DeserializeOwned> FromWire for T {}
