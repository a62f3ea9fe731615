//! A small, non-recursive MessagePack reader over a byte slice.
//!
//! It reads just what the hub protocol's envelope needs (integers, strings,
//! booleans, nil, array and map headers) and finds the extent of any other
//! value without looking inside it, so that arguments, items and results can
//! be handed on as zero-copy slices of the message. Nothing here allocates
//! or recurses based on a length or a nesting depth written by the peer.

use std::ops::Range;

/// Why a read failed, before the caller adds which field it was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadError {
    /// The value runs past the end of the message.
    Truncated,
    /// The value is of another type than the one asked for.
    WrongType,
    /// A string is not valid UTF-8.
    InvalidUtf8,
    /// The marker `0xc1`, which the format reserves and never uses.
    ReservedMarker,
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// How deeply arrays and maps may nest inside one value.
///
/// Values are delimited here without recursion, but whoever deserializes a
/// payload later recurses once per level; in a debug build
/// `serde_json::Value` needs about 3.5 KB of stack per level. 128 is
/// `serde_json`'s own recursion limit, so the JSON and MessagePack protocols
/// accept the same values.
pub(super) const MAX_DEPTH: usize = 128;

/// A MessagePack integer of any width and sign.
pub(super) type Int = i128;

/// A cursor over one message body.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// How many bytes have been consumed.
    #[cfg(test)]
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        let byte = self.peek().ok_or(ReadError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ReadError> {
        if len > self.remaining() {
            return Err(ReadError::Truncated);
        }
        let bytes = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, ReadError> {
        self.take_array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        self.take_array().map(u32::from_be_bytes)
    }

    fn u32_len(&mut self) -> Result<usize, ReadError> {
        // A u32 always fits: the crate only targets 32- and 64-bit platforms
        // (a length that does not fit would fail the bounds check anyway).
        self.u32().map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Reads the marker of the next value, leaving the cursor unchanged when
    /// it is not accepted by `accept`, so that a type error reports nothing
    /// consumed.
    fn marker_if(&mut self, accept: impl Fn(u8) -> bool) -> Result<u8, ReadError> {
        let marker = self.peek().ok_or(ReadError::Truncated)?;
        if !accept(marker) {
            return Err(ReadError::WrongType);
        }
        self.pos += 1;
        Ok(marker)
    }

    /// Whether the next value is nil; consumes it if so.
    pub(super) fn try_nil(&mut self) -> bool {
        if self.peek() == Some(0xc0) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An integer of any width (positive or negative fixint, uint 8–64,
    /// int 8–64).
    pub(super) fn int(&mut self) -> Result<Int, ReadError> {
        let marker = self.marker_if(|m| matches!(m, 0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3))?;
        Ok(match marker {
            0x00..=0x7f => Int::from(marker),
            0xe0..=0xff => Int::from(marker as i8),
            0xcc => Int::from(self.byte()?),
            0xcd => Int::from(self.u16()?),
            0xce => Int::from(self.u32()?),
            0xcf => Int::from(u64::from_be_bytes(self.take_array()?)),
            0xd0 => Int::from(i8::from_be_bytes(self.take_array()?)),
            0xd1 => Int::from(i16::from_be_bytes(self.take_array()?)),
            0xd2 => Int::from(i32::from_be_bytes(self.take_array()?)),
            _ => Int::from(i64::from_be_bytes(self.take_array()?)),
        })
    }

    /// A boolean.
    pub(super) fn bool(&mut self) -> Result<bool, ReadError> {
        self.marker_if(|m| m == 0xc2 || m == 0xc3)
            .map(|m| m == 0xc3)
    }

    /// A string (fixstr, str 8/16/32), borrowed from the message.
    pub(super) fn str(&mut self) -> Result<&'a str, ReadError> {
        let marker = self.marker_if(|m| matches!(m, 0xa0..=0xbf | 0xd9..=0xdb))?;
        let len = match marker {
            0xd9 => usize::from(self.byte()?),
            0xda => usize::from(self.u16()?),
            0xdb => self.u32_len()?,
            _ => usize::from(marker & 0x1f),
        };
        std::str::from_utf8(self.take(len)?).map_err(|_| ReadError::InvalidUtf8)
    }

    /// A string, or `None` for nil.
    pub(super) fn nullable_str(&mut self) -> Result<Option<&'a str>, ReadError> {
        if self.try_nil() {
            Ok(None)
        } else {
            self.str().map(Some)
        }
    }

    /// The element count of an array header. The elements are not read.
    pub(super) fn array_len(&mut self) -> Result<usize, ReadError> {
        let marker = self.marker_if(|m| matches!(m, 0x90..=0x9f | 0xdc | 0xdd))?;
        match marker {
            0xdc => self.u16().map(usize::from),
            0xdd => self.u32_len(),
            _ => Ok(usize::from(marker & 0x0f)),
        }
    }

    /// The pair count of a map header. The pairs are not read.
    pub(super) fn map_len(&mut self) -> Result<usize, ReadError> {
        let marker = self.marker_if(|m| matches!(m, 0x80..=0x8f | 0xde | 0xdf))?;
        match marker {
            0xde => self.u16().map(usize::from),
            0xdf => self.u32_len(),
            _ => Ok(usize::from(marker & 0x0f)),
        }
    }

    /// Skips one complete value of any type and returns the byte range it
    /// occupied.
    ///
    /// Containers are not descended into recursively: a fixed-size stack
    /// holds, for each open array or map, how many values it still owns, and
    /// nesting deeper than [`MAX_DEPTH`] is an error. Every value takes at
    /// least one byte, so once the values still owed outnumber the bytes
    /// left the value is known to be truncated, whatever length a header
    /// claimed.
    pub(super) fn skip_value(&mut self) -> Result<Range<usize>, ReadError> {
        let start = self.pos;
        // open[i]: values still owed by the container at depth i + 1.
        let mut open = [0_u64; MAX_DEPTH];
        let mut depth = 0;
        // Values still owed at the current depth (one: the value itself).
        let mut here: u64 = 1;
        // Values still owed at all depths: `here` plus `open[..depth]`.
        let mut owed: u64 = 1;
        loop {
            while here == 0 {
                if depth == 0 {
                    return Ok(start..self.pos);
                }
                depth -= 1;
                here = open[depth];
            }
            here -= 1;
            owed -= 1;
            let marker = self.byte()?;
            let mut children: u64 = 0;
            let data_len: usize = match marker {
                // fixints, nil, false, true
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                0x80..=0x8f => {
                    children = 2 * u64::from(marker & 0x0f);
                    0
                }
                0x90..=0x9f => {
                    children = u64::from(marker & 0x0f);
                    0
                }
                0xa0..=0xbf => usize::from(marker & 0x1f),
                0xc1 => return Err(ReadError::ReservedMarker),
                // bin 8/16/32, str 8/16/32
                0xc4 | 0xd9 => usize::from(self.byte()?),
                0xc5 | 0xda => usize::from(self.u16()?),
                0xc6 | 0xdb => self.u32_len()?,
                // ext 8/16/32: the length, then a type byte, then the data
                0xc7 => usize::from(self.byte()?).saturating_add(1),
                0xc8 => usize::from(self.u16()?).saturating_add(1),
                0xc9 => self.u32_len()?.saturating_add(1),
                0xca => 4,
                0xcb => 8,
                0xcc | 0xd0 => 1,
                0xcd | 0xd1 => 2,
                0xce | 0xd2 => 4,
                0xcf | 0xd3 => 8,
                // fixext 1/2/4/8/16, each with its type byte
                0xd4 => 2,
                0xd5 => 3,
                0xd6 => 5,
                0xd7 => 9,
                0xd8 => 17,
                0xdc => {
                    children = u64::from(self.u16()?);
                    0
                }
                0xdd => {
                    children = u64::from(self.u32()?);
                    0
                }
                0xde => {
                    children = 2 * u64::from(self.u16()?);
                    0
                }
                0xdf => {
                    children = 2 * u64::from(self.u32()?);
                    0
                }
            };
            self.take(data_len)?;
            if children > 0 {
                // `owed` stays below the bytes left (checked every round),
                // and `children` below 2^33, so the sum cannot overflow.
                owed += children;
                if owed > self.remaining() as u64 {
                    return Err(ReadError::Truncated);
                }
                if depth == MAX_DEPTH {
                    return Err(ReadError::TooDeep);
                }
                open[depth] = here;
                depth += 1;
                here = children;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_integer_width() {
        let cases: &[(&[u8], Int)] = &[
            (&[0x05], 5),
            (&[0xff], -1),
            (&[0xe0], -32),
            (&[0xcc, 0xff], 255),
            (&[0xcd, 0x01, 0x00], 256),
            (&[0xce, 0xff, 0xff, 0xff, 0xff], 4_294_967_295),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Int::from(u64::MAX),
            ),
            (&[0xd0, 0x80], -128),
            (&[0xd1, 0x80, 0x00], -32768),
            (&[0xd2, 0x80, 0, 0, 0], Int::from(i32::MIN)),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Int::from(i64::MIN)),
        ];
        for (bytes, value) in cases {
            let mut reader = Reader::new(bytes);
            assert_eq!(reader.int(), Ok(*value), "{bytes:02x?}");
            assert_eq!(reader.position(), bytes.len());
        }
    }

    #[test]
    fn wrong_type_consumes_nothing() {
        let mut reader = Reader::new(&[0xa1, b'x']);
        assert_eq!(reader.int(), Err(ReadError::WrongType));
        assert_eq!(reader.position(), 0);
        assert_eq!(reader.str(), Ok("x"));
    }

    #[test]
    fn skips_nested_values_and_rejects_impossible_counts() {
        // [{"a": [1, 2.5]}, bin8(2), fixext4]
        let value = [
            0x93, 0x81, 0xa1, b'a', 0x92, 0x01, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xc4, 2, 9, 9, 0xd6,
            0xff, 0, 0, 0, 0,
        ];
        let mut bytes = value.to_vec();
        bytes.push(0x2a);
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.skip_value(), Ok(0..value.len()));
        assert_eq!(reader.int(), Ok(42));

        let mut reader = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(reader.skip_value(), Err(ReadError::Truncated));
        let mut reader = Reader::new(&[0xc1]);
        assert_eq!(reader.skip_value(), Err(ReadError::ReservedMarker));
    }

    #[test]
    fn nesting_is_limited() {
        let nested = |depth: usize| {
            let mut bytes = vec![0x91; depth];
            bytes.push(0x00);
            bytes
        };
        let ok = nested(MAX_DEPTH);
        assert_eq!(Reader::new(&ok).skip_value(), Ok(0..ok.len()));
        let deep = nested(MAX_DEPTH + 1);
        assert_eq!(Reader::new(&deep).skip_value(), Err(ReadError::TooDeep));
        // Empty containers and siblings do not add depth.
        let mut wide = vec![0xdc, 0x03, 0xe8];
        for _ in 0..1000 {
            wide.extend_from_slice(&[0x91, 0x90]);
        }
        assert_eq!(Reader::new(&wide).skip_value(), Ok(0..wide.len()));
    }
}
