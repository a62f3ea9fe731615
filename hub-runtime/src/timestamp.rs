//! [`Timestamp`]: a UTC instant that crosses the wire the way .NET
//! `DateTime` and JavaScript `Date` values do.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A point in time, in UTC, with nanosecond precision.
///
/// Its serde form depends on the format, so that the same hub method
/// parameter works with both hub protocols and with every client:
///
/// - **JSON** (any human-readable format): an RFC 3339 string in UTC, such
///   as `"2024-01-01T00:00:00.123Z"`, which is what .NET sends for a UTC
///   `DateTime` and what JavaScript's `new Date(s)` parses. On input any
///   offset is accepted, with any number of fractional digits, as well as a
///   .NET `DateTime` written without an offset (`2024-01-01T12:00:00.1234567`),
///   which is taken as UTC.
/// - **MessagePack**: the timestamp extension type −1, in its smallest form
///   (timestamp 32, 64 or 96), as the JS client and MessagePack-CSharp write
///   dates. On input all three forms are accepted, and strings as above.
///
/// The range is that of [`OffsetDateTime`]: years −9999 to 9999.
///
/// ```
/// use hub_runtime::Timestamp;
///
/// let t: Timestamp = "2024-01-01T01:00:00.5+01:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2024-01-01T00:00:00.500Z");
/// assert_eq!(t.unix_millis(), 1_704_067_200_500);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(
    /// Always at offset UTC, so that the derived comparisons and hash agree
    /// with instant equality.
    OffsetDateTime,
);

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// The MessagePack extension type of timestamps.
const EXT_TYPE: i8 = -1;

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    /// The earliest representable instant, -9999-01-01T00:00:00Z.
    pub const MIN: Timestamp = Timestamp(PrimitiveDateTime::MIN.assume_utc());

    /// The latest representable instant, 9999-12-31T23:59:59.999999999Z.
    pub const MAX: Timestamp = Timestamp(PrimitiveDateTime::MAX.assume_utc());

    /// The current time.
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// The instant `nanos` nanoseconds after the Unix epoch (before it when
    /// negative), or `None` outside the supported range.
    pub fn from_unix_nanos(nanos: i128) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .map(Timestamp)
    }

    /// Nanoseconds since the Unix epoch (negative before it).
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// The instant `millis` milliseconds after the Unix epoch, as a
    /// JavaScript `Date` holds it, or `None` outside the supported range.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        Self::from_unix_nanos(i128::from(millis) * 1_000_000)
    }

    /// Milliseconds since the Unix epoch, rounded towards the past (as
    /// JavaScript's `Date.getTime()` counts them).
    pub fn unix_millis(self) -> i64 {
        // |nanos| < 2^69, so the quotient fits in an i64 (< 2^49).
        i64::try_from(self.unix_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }

    /// The instant `seconds` whole seconds after the Unix epoch plus
    /// `nanos` nanoseconds (`nanos` below one billion), or `None` when out
    /// of range. This is the decomposition of the MessagePack timestamp
    /// extension.
    pub fn from_unix_seconds(seconds: i64, nanos: u32) -> Option<Self> {
        if i128::from(nanos) >= NANOS_PER_SECOND {
            return None;
        }
        Self::from_unix_nanos(i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos))
    }

    /// Whole seconds since the Unix epoch, rounded towards the past, so that
    /// [`Timestamp::subsec_nanos`] is never negative.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The nanoseconds past [`Timestamp::unix_seconds`], below one billion.
    pub fn subsec_nanos(self) -> u32 {
        self.0.nanosecond()
    }

    /// The instant as an [`OffsetDateTime`] at offset UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    /// Parses an RFC 3339 date-time with any offset and any number of
    /// fractional digits, or one without an offset (as .NET writes a
    /// `DateTime` of unspecified kind), which is taken as UTC.
    pub fn parse(text: &str) -> Result<Self, time::error::Parse> {
        match OffsetDateTime::parse(text, &Rfc3339) {
            Ok(parsed) => Ok(parsed.into()),
            Err(error) => {
                // Only a string that stops where the offset should begin is
                // worth a second try; keep the first error otherwise.
                let mut with_offset = String::with_capacity(text.len() + 1);
                with_offset.push_str(text);
                with_offset.push('Z');
                OffsetDateTime::parse(&with_offset, &Rfc3339)
                    .map(Timestamp::from)
                    .map_err(|_| error)
            }
        }
    }

    /// The payload of the MessagePack timestamp extension: 4, 8 or 12 bytes.
    fn ext_data(self) -> ([u8; 12], usize) {
        let seconds = self.unix_seconds();
        let nanos = self.subsec_nanos();
        let mut data = [0; 12];
        if seconds >> 34 == 0 {
            if nanos == 0 {
                if let Ok(seconds) = u32::try_from(seconds) {
                    data[..4].copy_from_slice(&seconds.to_be_bytes());
                    return (data, 4);
                }
            }
            // 0 <= seconds < 2^34 here, so the cast is lossless.
            let packed = (u64::from(nanos) << 34) | seconds as u64;
            data[..8].copy_from_slice(&packed.to_be_bytes());
            return (data, 8);
        }
        data[..4].copy_from_slice(&nanos.to_be_bytes());
        data[4..].copy_from_slice(&seconds.to_be_bytes());
        (data, 12)
    }

    /// Reads the payload of a MessagePack timestamp extension.
    fn from_ext_data(data: &[u8]) -> Result<Self, &'static str> {
        let (seconds, nanos) = match *data {
            [a, b, c, d] => (i64::from(u32::from_be_bytes([a, b, c, d])), 0),
            [a, b, c, d, e, f, g, h] => {
                let packed = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                // The upper 30 bits and the lower 34 bits both fit.
                ((packed & ((1 << 34) - 1)) as i64, (packed >> 34) as u32)
            }
            [a, b, c, d, ref rest @ ..] if rest.len() == 8 => {
                let mut seconds = [0; 8];
                seconds.copy_from_slice(rest);
                (
                    i64::from_be_bytes(seconds),
                    u32::from_be_bytes([a, b, c, d]),
                )
            }
            _ => return Err("a timestamp extension of 4, 8 or 12 bytes"),
        };
        if i128::from(nanos) >= NANOS_PER_SECOND {
            return Err("a timestamp extension with nanoseconds below one billion");
        }
        Self::from_unix_seconds(seconds, nanos)
            .ok_or("a timestamp between the years -9999 and 9999")
    }
}

impl fmt::Display for Timestamp {
    /// ISO 8601 in UTC with at least millisecond precision, like
    /// JavaScript's `Date.prototype.toISOString`: `2024-01-01T00:00:00.123Z`.
    /// Finer instants get 6 or 9 fractional digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        let year = t.year();
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}")?;
        } else {
            // The ISO 8601 expanded form, as JavaScript writes such years.
            let sign = if year < 0 { '-' } else { '+' };
            write!(f, "{sign}{:06}", year.unsigned_abs())?;
        }
        write!(
            f,
            "-{:02}-{:02}T{:02}:{:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos % 1_000_000 == 0 {
            write!(f, ".{:03}Z", nanos / 1_000_000)
        } else if nanos % 1_000 == 0 {
            write!(f, ".{:06}Z", nanos / 1_000)
        } else {
            write!(f, ".{nanos:09}Z")
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = time::error::Parse;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(text)
    }
}

impl From<OffsetDateTime> for Timestamp {
    /// The same instant; one that would fall outside the supported range once
    /// moved to UTC saturates to [`Timestamp::MIN`] or [`Timestamp::MAX`].
    fn from(value: OffsetDateTime) -> Self {
        match value.checked_to_offset(UtcOffset::UTC) {
            Some(utc) => Timestamp(utc),
            None if value.offset().is_negative() => Timestamp::MAX,
            None => Timestamp::MIN,
        }
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl From<SystemTime> for Timestamp {
    /// The same instant, saturating to [`Timestamp::MIN`] or
    /// [`Timestamp::MAX`] outside the supported range.
    fn from(value: SystemTime) -> Self {
        let nanos = match value.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => i128::try_from(before.duration().as_nanos())
                .map(|n| -n)
                .unwrap_or(i128::MIN),
        };
        Timestamp::from_unix_nanos(nanos).unwrap_or(if nanos < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }
}

impl From<Timestamp> for SystemTime {
    fn from(value: Timestamp) -> Self {
        value.0.into()
    }
}

/// `(i8, bytes)`: how rmp_serde expects the content of an extension value.
struct Ext<'a>(&'a [u8]);

impl Serialize for Ext<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Data<'a>(&'a [u8]);
        impl Serialize for Data<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&EXT_TYPE)?;
        tuple.serialize_element(&Data(self.0))?;
        tuple.end()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            let (data, len) = self.ext_data();
            serializer
                .serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &Ext(&data[..len]))
        }
    }
}

/// Accepts a date-time string, or (from rmp_serde) an extension value, which
/// arrives as a newtype struct around the sequence `(type, data)`.
struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 date-time string or a MessagePack timestamp extension")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::parse(text)
            .map_err(|error| E::custom(format_args!("invalid date-time {text:?}: {error}")))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<Timestamp, D::Error> {
        inner.deserialize_tuple(2, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Timestamp, A::Error> {
        let kind: i8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        if kind != EXT_TYPE {
            return Err(de::Error::invalid_value(
                de::Unexpected::Signed(kind.into()),
                &"the timestamp extension type -1",
            ));
        }
        let ExtData(data, len) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Timestamp::from_ext_data(&data[..len]).map_err(|expected| {
            de::Error::invalid_value(de::Unexpected::Bytes(&data[..len]), &expected)
        })
    }
}

/// The data of a timestamp extension, at most 12 bytes (longer data is
/// refused before it is copied).
struct ExtData([u8; 12], usize);

impl<'de> Deserialize<'de> for ExtData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;
        impl Visitor<'_> for DataVisitor {
            type Value = ExtData;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the 4, 8 or 12 bytes of a timestamp extension")
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ExtData, E> {
                let mut data = [0; 12];
                data.get_mut(..bytes.len())
                    .ok_or_else(|| E::invalid_length(bytes.len(), &self))?
                    .copy_from_slice(bytes);
                Ok(ExtData(data, bytes.len()))
            }
        }
        deserializer.deserialize_bytes(DataVisitor)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(TimestampVisitor)
        } else {
            // Not `deserialize_newtype_struct`: MessagePack senders may also
            // write dates as strings, and only `deserialize_any` lets the
            // data choose.
            deserializer.deserialize_any(TimestampVisitor)
        }
    }
}
