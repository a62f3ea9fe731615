//! [`IntoArguments`]: what `invoke`, `send` and `stream` accept as
//! arguments, including upload streams made by [`upload`] and
//! [`try_upload`].

use std::fmt::Display;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::hub::Arguments;
use crate::protocol::{HubProtocol, Payload};
use crate::{HubError, HubErrorKind};

/// The arguments of a hub method call.
///
/// Implemented for:
///
/// - `()` — no arguments;
/// - tuples of up to 12 [`IntoArgument`]s: any [`Serialize`] value,
///   borrowed or owned — `("hello",)`, `(1, 2)`, `(&name, &message)` — or
///   an [`Upload`] — `(upload(numbers),)`;
/// - `Vec<Payload>` and [`Arguments`] — arguments already turned into
///   [`Payload`]s (what generated typed proxies pass);
/// - [`CallArguments`], built by hand.
///
/// Values are serialized eagerly, in the connection's protocol, when the
/// call is made, so borrowed values work and a serialization error is
/// reported by the call itself. Upload streams are serialized item by item
/// as they are sent.
pub trait IntoArguments {
    /// Encodes the arguments for `protocol` (the connection's protocol).
    fn into_call_arguments(self, protocol: HubProtocol) -> Result<CallArguments, HubError>;
}

/// One argument of a call: a [`Serialize`] value or an [`Upload`].
pub trait IntoArgument {
    /// Appends this argument to `arguments`, encoded for `protocol`.
    fn append_to(
        self,
        arguments: &mut CallArguments,
        protocol: HubProtocol,
    ) -> Result<(), HubError>;
}

impl<T: Serialize> IntoArgument for T {
    fn append_to(
        self,
        arguments: &mut CallArguments,
        protocol: HubProtocol,
    ) -> Result<(), HubError> {
        arguments.push_payload(encode_argument(protocol, &self)?);
        Ok(())
    }
}

impl IntoArgument for Upload {
    fn append_to(
        self,
        arguments: &mut CallArguments,
        _protocol: HubProtocol,
    ) -> Result<(), HubError> {
        arguments.push_upload(self);
        Ok(())
    }
}

/// Encoded call arguments: the values that go in the message's
/// `arguments`, and the upload streams that become its `streamIds`.
///
/// As in the official JavaScript client, upload streams are taken out of
/// the argument list: a call `("a", upload(s), "b")` sends
/// `"arguments":["a","b"]` and one stream id. The server binds streams to
/// its stream parameters in order.
#[derive(Default)]
pub struct CallArguments {
    pub(crate) payloads: Vec<Payload>,
    pub(crate) uploads: Vec<Upload>,
}

impl std::fmt::Debug for CallArguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallArguments")
            .field("payloads", &self.payloads)
            .field("uploads", &self.uploads.len())
            .finish()
    }
}

impl CallArguments {
    /// No arguments.
    pub fn new() -> Self {
        CallArguments::default()
    }

    /// Appends an encoded value (it must be in the connection's protocol).
    pub fn push_payload(&mut self, payload: Payload) {
        self.payloads.push(payload);
    }

    /// Appends an upload stream.
    pub fn push_upload(&mut self, upload: Upload) {
        self.uploads.push(upload);
    }

    /// The encoded values, in order.
    pub fn payloads(&self) -> &[Payload] {
        &self.payloads
    }

    /// How many upload streams the call carries.
    pub fn upload_count(&self) -> usize {
        self.uploads.len()
    }
}

/// Turns a protocol into the encoded items of an upload: `Ok(payload)` per
/// item, then possibly one `Err(text)` that fails the stream.
type UploadItems =
    Box<dyn FnOnce(HubProtocol) -> BoxStream<'static, Result<Payload, String>> + Send>;

/// A client-to-server stream argument, made by [`upload`] or
/// [`try_upload`].
///
/// When the call is made, the stream gets an id from the connection's
/// invocation-id counter (before the invocation's own id, as in the
/// JavaScript client) and is listed in the message's `streamIds`. A task
/// then sends each item as a StreamItem (type 2) with that id, and a
/// Completion (type 3) when the stream ends — with `error` when it ends
/// with an error, or when an item fails to serialize.
///
/// Sending is paced by the socket: at most 16 items per upload are queued
/// for the writer at a time, so a fast producer waits for the network
/// instead of filling memory.
///
/// The upload stops early, without a Completion, when the connection
/// closes or when the server answers the invocation. When the caller stops
/// waiting (the `invoke` future or the [`HubStream`](super::HubStream) is
/// dropped) the upload ends with a Completion carrying the error
/// `"The invocation was canceled by the client."`, so the server's stream
/// parameter ends. Uploads of a [`send`](super::HubConnection::send) run
/// until their stream ends or the connection closes.
#[must_use = "an upload stream does nothing unless passed to invoke, send or stream"]
pub struct Upload {
    items: UploadItems,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").finish_non_exhaustive()
    }
}

impl Upload {
    /// The encoded items for `protocol`.
    pub(crate) fn into_items(
        self,
        protocol: HubProtocol,
    ) -> BoxStream<'static, Result<Payload, String>> {
        (self.items)(protocol)
    }
}

/// An upload stream sending every item of `stream`, then a Completion.
///
/// ```no_run
/// use futures_util::stream;
/// use hub_runtime::client::{HubConnection, upload};
///
/// # async fn run(connection: HubConnection) -> Result<(), hub_runtime::HubError> {
/// // The conformance hub's `Sum(numbers: stream of int) -> int`.
/// let sum: i64 = connection.invoke("Sum", (upload(stream::iter([1, 2, 3])),)).await?;
/// assert_eq!(sum, 6);
/// # Ok(())
/// # }
/// ```
pub fn upload<S>(stream: S) -> Upload
where
    S: Stream + Send + 'static,
    S::Item: Serialize,
{
    Upload {
        items: Box::new(move |protocol| {
            stream.map(move |item| encode_item(protocol, &item)).boxed()
        }),
    }
}

/// An upload stream of fallible items: `Ok` items are sent; the first
/// `Err(e)` ends the upload with a Completion whose `error` is
/// `e.to_string()` (what the JavaScript client sends for a failed
/// observable), and the rest of `stream` is not read.
pub fn try_upload<S, T, E>(stream: S) -> Upload
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: Display,
{
    Upload {
        items: Box::new(move |protocol| {
            stream
                .map(move |item| match item {
                    Ok(item) => encode_item(protocol, &item),
                    Err(error) => Err(error.to_string()),
                })
                .boxed()
        }),
    }
}

fn encode_item<T: Serialize + ?Sized>(protocol: HubProtocol, item: &T) -> Result<Payload, String> {
    encode_argument(protocol, item).map_err(|error| {
        format!(
            "The client could not serialize a stream item: {}",
            error.message()
        )
    })
}

/// Serializes one value into a [`Payload`] in `protocol`'s encoding.
///
/// JSON values are written with `serde_json`; MessagePack values with
/// `rmp-serde`, structs as maps keyed by field name (what .NET's
/// contractless resolver and the JS client expect).
pub fn encode_argument<T>(protocol: HubProtocol, value: &T) -> Result<Payload, HubError>
where
    T: Serialize + ?Sized,
{
    let error = |e: String| {
        HubError::with_kind(
            HubErrorKind::Serialization,
            format!("failed to serialize an argument: {e}"),
        )
    };
    match protocol {
        HubProtocol::Json => serde_json::to_vec(value)
            .map(|bytes| Payload::from_json_bytes(Bytes::from(bytes)))
            .map_err(|e| error(e.to_string())),
        HubProtocol::MessagePack => {
            let mut bytes = Vec::new();
            let mut serializer = rmp_serde::Serializer::new(&mut bytes).with_struct_map();
            value
                .serialize(&mut serializer)
                .map_err(|e| error(e.to_string()))?;
            Ok(Payload::from_msgpack_bytes(Bytes::from(bytes)))
        }
    }
}

impl IntoArguments for () {
    fn into_call_arguments(self, _protocol: HubProtocol) -> Result<CallArguments, HubError> {
        Ok(CallArguments::new())
    }
}

impl IntoArguments for Vec<Payload> {
    fn into_call_arguments(self, _protocol: HubProtocol) -> Result<CallArguments, HubError> {
        Ok(CallArguments {
            payloads: self,
            uploads: Vec::new(),
        })
    }
}

impl IntoArguments for Arguments {
    fn into_call_arguments(self, protocol: HubProtocol) -> Result<CallArguments, HubError> {
        self.into_payloads().into_call_arguments(protocol)
    }
}

/// The arguments of a typed proxy call (`#[hub_server]`): values and
/// upload streams, already in [`Payload`]s.
impl IntoArguments for crate::proxy::ProxyArguments {
    fn into_call_arguments(self, _protocol: HubProtocol) -> Result<CallArguments, HubError> {
        let (payloads, uploads) = self.into_parts();
        Ok(CallArguments {
            payloads,
            uploads: uploads
                .into_iter()
                .map(|items| Upload {
                    items: Box::new(move |_protocol| items.map(Ok).boxed()),
                })
                .collect(),
        })
    }
}

impl IntoArguments for CallArguments {
    fn into_call_arguments(self, _protocol: HubProtocol) -> Result<CallArguments, HubError> {
        Ok(self)
    }
}

macro_rules! tuple_arguments {
    ($($name:ident),+) => {
        impl<$($name: IntoArgument),+> IntoArguments for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_call_arguments(self, protocol: HubProtocol) -> Result<CallArguments, HubError> {
                let ($($name,)+) = self;
                let mut arguments = CallArguments::new();
                $($name.append_to(&mut arguments, protocol)?;)+
                Ok(arguments)
            }
        }
    };
}

tuple_arguments!(A);
tuple_arguments!(A, B);
tuple_arguments!(A, B, C);
tuple_arguments!(A, B, C, D);
tuple_arguments!(A, B, C, D, E);
tuple_arguments!(A, B, C, D, E, F);
tuple_arguments!(A, B, C, D, E, F, G);
tuple_arguments!(A, B, C, D, E, F, G, H);
tuple_arguments!(A, B, C, D, E, F, G, H, I);
tuple_arguments!(A, B, C, D, E, F, G, H, I, J);
tuple_arguments!(A, B, C, D, E, F, G, H, I, J, K);
tuple_arguments!(A, B, C, D, E, F, G, H, I, J, K, L);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_encode_in_order() {
        let name = String::from("ann");
        let arguments = (&name, 2_i32, [1, 2])
            .into_call_arguments(HubProtocol::Json)
            .expect("serializable");
        let values: Vec<_> = arguments
            .payloads()
            .iter()
            .map(|p| p.to_json_value().expect("json"))
            .collect();
        assert_eq!(
            values,
            vec![
                serde_json::json!("ann"),
                2.into(),
                serde_json::json!([1, 2])
            ]
        );
        assert_eq!(arguments.upload_count(), 0);
        let empty = ().into_call_arguments(HubProtocol::Json).expect("empty");
        assert!(empty.payloads().is_empty());
    }

    #[test]
    fn messagepack_payloads() {
        let arguments = ("x",)
            .into_call_arguments(HubProtocol::MessagePack)
            .expect("ok");
        assert_eq!(
            arguments.payloads()[0]
                .as_msgpack_bytes()
                .map(|b| b.to_vec()),
            Some(vec![0xa1, b'x'])
        );
    }

    #[test]
    fn uploads_are_taken_out_of_the_arguments() {
        let arguments = ("a", upload(futures_util::stream::iter([1, 2])), "b")
            .into_call_arguments(HubProtocol::Json)
            .expect("ok");
        let values: Vec<_> = arguments
            .payloads()
            .iter()
            .map(|p| p.to_json_value().expect("json"))
            .collect();
        assert_eq!(values, vec![serde_json::json!("a"), serde_json::json!("b")]);
        assert_eq!(arguments.upload_count(), 1);
    }
}
