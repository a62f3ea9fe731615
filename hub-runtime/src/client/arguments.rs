//! [`IntoArguments`]: what `invoke` and `send` accept as arguments.

use bytes::Bytes;
use serde::Serialize;

use crate::hub::Arguments;
use crate::protocol::{HubProtocol, Payload};
use crate::{HubError, HubErrorKind};

/// The arguments of a hub method call.
///
/// Implemented for:
///
/// - `()` — no arguments;
/// - tuples of up to 12 [`Serialize`] values, borrowed or owned —
///   `("hello",)`, `(1, 2)`, `(&name, &message)`;
/// - `Vec<Payload>` and [`Arguments`] — arguments already turned into
///   [`Payload`]s (what generated typed proxies pass).
///
/// Values are serialized eagerly, in the connection's protocol, when the
/// call is made, so borrowed values work and a serialization error is
/// reported by the call itself.
pub trait IntoArguments {
    /// Encodes the arguments for `protocol` (the connection's protocol).
    fn into_payloads(self, protocol: HubProtocol) -> Result<Vec<Payload>, HubError>;
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
    fn into_payloads(self, _protocol: HubProtocol) -> Result<Vec<Payload>, HubError> {
        Ok(Vec::new())
    }
}

impl IntoArguments for Vec<Payload> {
    fn into_payloads(self, _protocol: HubProtocol) -> Result<Vec<Payload>, HubError> {
        Ok(self)
    }
}

impl IntoArguments for Arguments {
    fn into_payloads(self, _protocol: HubProtocol) -> Result<Vec<Payload>, HubError> {
        Ok(self.into_payloads())
    }
}

macro_rules! tuple_arguments {
    ($($name:ident),+) => {
        impl<$($name: Serialize),+> IntoArguments for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_payloads(self, protocol: HubProtocol) -> Result<Vec<Payload>, HubError> {
                let ($($name,)+) = self;
                Ok(vec![$(encode_argument(protocol, &$name)?),+])
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
        let payloads = (&name, 2_i32, [1, 2])
            .into_payloads(HubProtocol::Json)
            .expect("serializable");
        let values: Vec<_> = payloads
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
        assert!(
            ().into_payloads(HubProtocol::Json)
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn messagepack_payloads() {
        let payloads = ("x",).into_payloads(HubProtocol::MessagePack).expect("ok");
        assert_eq!(
            payloads[0].as_msgpack_bytes().map(|b| b.to_vec()),
            Some(vec![0xa1, b'x'])
        );
    }
}
