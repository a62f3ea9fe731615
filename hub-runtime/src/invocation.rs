//! What one invocation of a hub (or client) method carries and how it
//! fails: its still-encoded [`Arguments`] and the [`InvocationError`].
//!
//! Below [`crate::hub`] and [`crate::authorization`], which both use them:
//! a policy sees the arguments of the call it judges, and a hub method binds
//! them. Public as `hub_runtime::hub::{Arguments, InvocationError}`.

use serde::de::DeserializeOwned;

use crate::error::HubError;
use crate::protocol::Payload;

/// The arguments of one invocation, still encoded.
#[derive(Debug, Clone, Default)]
pub struct Arguments {
    payloads: Vec<Payload>,
}

impl Arguments {
    /// Arguments from decoded payloads.
    pub fn new(payloads: Vec<Payload>) -> Self {
        Arguments { payloads }
    }

    /// How many arguments arrived.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Whether no argument arrived.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// Deserializes argument `index` into `T`.
    pub fn bind<T: DeserializeOwned>(&self, index: usize) -> Result<T, InvocationError> {
        let payload = self
            .payloads
            .get(index)
            .ok_or(InvocationError::ArgumentCount {
                provided: self.payloads.len(),
                expected: index + 1,
            })?;
        payload
            .deserialize()
            .map_err(|error| InvocationError::ArgumentBinding {
                index,
                message: error.to_string(),
            })
    }

    /// The payloads.
    pub fn into_payloads(self) -> Vec<Payload> {
        self.payloads
    }
}

/// Why an invocation failed. The runtime turns it into the Completion error
/// text the .NET server would send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvocationError {
    /// No hub method of that name.
    UnknownMethod,
    /// The number of arguments does not match the method.
    ArgumentCount {
        /// How many arrived.
        provided: usize,
        /// How many the method takes.
        expected: usize,
    },
    /// An argument could not be deserialized into its parameter's type.
    ArgumentBinding {
        /// Which argument.
        index: usize,
        /// The deserializer's message.
        message: String,
    },
    /// The result could not be serialized.
    Result(String),
    /// The hub method returned an error.
    Hub(HubError),
    /// A streaming method's stream failed part-way (or its connection went
    /// away while it was sending).
    Stream(HubError),
    /// The invocation carries another number of upload streams than the
    /// method takes.
    UploadStreamCount {
        /// How many `streamIds` arrived.
        provided: usize,
        /// How many `UploadStream` parameters the method has.
        expected: usize,
    },
    /// An upload stream id of the invocation is used by a stream that is
    /// still open (or twice in the invocation).
    UploadStreamInUse(String),
    /// The caller does not pass the method's `#[authorize]`.
    Unauthorized,
    /// A hub filter stopped the invocation with this error (its message
    /// reaches the client, as a `HubException`'s).
    Blocked(HubError),
}

impl InvocationError {
    /// A filter's refusal: the method does not run, the client gets
    /// `message`.
    pub fn blocked(message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        InvocationError::Blocked(HubError::new(message))
    }
}

impl From<HubError> for InvocationError {
    fn from(error: HubError) -> Self {
        InvocationError::Hub(error)
    }
}
