//! The MessagePack hub protocol (placeholder, being written).
use super::{EncodeError, HubMessage, ProtocolError};
use bytes::BytesMut;
/// Incremental MessagePack decoder.
#[derive(Debug)]
pub struct MessagePackDecoder { max_message_size: Option<usize> }
impl MessagePackDecoder {
    /// New decoder.
    pub fn new(max_message_size: Option<usize>) -> Self { MessagePackDecoder { max_message_size } }
    /// Decode one.
    pub fn decode(&mut self, _buffer: &mut BytesMut) -> Result<Option<HubMessage>, ProtocolError> { let _ = self.max_message_size; Err(ProtocolError::InvalidMessage("not yet")) }
}
/// Encode.
pub fn encode(_message: &HubMessage, _out: &mut BytesMut) -> Result<(), EncodeError> { Err(EncodeError::InvalidMessage("not yet")) }
