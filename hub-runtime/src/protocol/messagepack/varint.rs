//! The VarInt length prefix of `BinaryMessageFormat`: 7 bits per byte, least
//! significant group first, a set high bit meaning "more bytes follow".

use crate::protocol::ProtocolError;

/// The longest prefix: 5 bytes carry 31 bits, enough for any length up to 2 GB.
pub(super) const MAX_PREFIX_LEN: usize = 5;

/// The largest body length a prefix may announce (the .NET and JS readers
/// refuse anything that needs more than 31 bits).
pub(super) const MAX_BODY_LEN: usize = i32::MAX as usize;

/// Reads the length prefix at the start of `input`.
///
/// Returns `Ok(None)` while the prefix itself is still incomplete, and
/// `Ok(Some((prefix_len, body_len)))` once it has been read whole.
pub(super) fn read(input: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut value: usize = 0;
    for (index, &byte) in input.iter().take(MAX_PREFIX_LEN).enumerate() {
        // The fifth byte may only contribute the 3 bits that keep the value
        // within 31 bits, and may not ask for a sixth byte: both readers
        // of the reference implementations refuse anything else.
        if index == MAX_PREFIX_LEN - 1 && byte > 0x07 {
            return Err(ProtocolError::InvalidLengthPrefix);
        }
        value |= usize::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((index + 1, value)));
        }
    }
    Ok(None)
}

/// Writes `value` as a VarInt into `out`, returning how many bytes it took.
///
/// `value` must be at most [`MAX_BODY_LEN`]; the caller checks.
pub(super) fn write(mut value: usize, out: &mut [u8; MAX_PREFIX_LEN]) -> usize {
    let mut len = 0;
    loop {
        let group = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 || len == MAX_PREFIX_LEN - 1 {
            out[len] = group;
            return len + 1;
        }
        out[len] = group | 0x80;
        len += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_BODY_LEN,
        ] {
            let mut buf = [0; MAX_PREFIX_LEN];
            let len = write(value, &mut buf);
            assert_eq!(read(&buf[..len]).unwrap(), Some((len, value)));
            assert_eq!(read(&buf[..len - 1]).unwrap(), None);
        }
    }
}
