//! `Timestamp`: construction, text form, and its serde forms in JSON and
//! MessagePack, directly and through `Payload`.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use hub_runtime::Timestamp;
use hub_runtime::protocol::Payload;
use time::macros::datetime;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn to_msgpack(t: Timestamp) -> Vec<u8> {
    let mut out = BytesMut::new();
    Payload::from_value(t).write_msgpack(&mut out).unwrap();
    out.to_vec()
}

fn from_msgpack(bytes: &[u8]) -> Result<Timestamp, String> {
    Payload::from_msgpack_bytes(Bytes::copy_from_slice(bytes))
        .deserialize::<Timestamp>()
        .map_err(|e| e.to_string())
}

fn to_json(t: Timestamp) -> String {
    let mut out = BytesMut::new();
    Payload::from_value(t).write_json(&mut out).unwrap();
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn unix_conversions() {
    let t = Timestamp::from_unix_millis(1_704_067_200_123).unwrap();
    assert_eq!(t.unix_millis(), 1_704_067_200_123);
    assert_eq!(t.unix_nanos(), 1_704_067_200_123_000_000);
    assert_eq!(t.unix_seconds(), 1_704_067_200);
    assert_eq!(t.subsec_nanos(), 123_000_000);
    assert_eq!(
        Timestamp::from_unix_seconds(1_704_067_200, 123_000_000),
        Some(t)
    );
    assert_eq!(Timestamp::from_unix_seconds(0, 1_000_000_000), None);
    assert_eq!(Timestamp::from_unix_nanos(0), Some(Timestamp::UNIX_EPOCH));
    assert_eq!(Timestamp::from_unix_nanos(i128::MAX), None);

    // Before the epoch, seconds round down so that the nanoseconds stay positive.
    let before = Timestamp::from_unix_millis(-1).unwrap();
    assert_eq!(before.unix_seconds(), -1);
    assert_eq!(before.subsec_nanos(), 999_000_000);
    assert_eq!(before.unix_millis(), -1);
    assert_eq!(before.to_string(), "1969-12-31T23:59:59.999Z");
}

#[test]
fn conversions_with_time_and_std() {
    let odt = datetime!(2024-01-01 02:00:00.25 +02:00);
    let t = Timestamp::from(odt);
    assert_eq!(t, ts("2024-01-01T00:00:00.25Z"));
    let back: time::OffsetDateTime = t.into();
    assert_eq!(back, odt);
    assert_eq!(back.offset(), time::UtcOffset::UTC);
    assert_eq!(t.to_offset_date_time(), back);

    let system = SystemTime::UNIX_EPOCH + Duration::from_millis(1_704_067_200_250);
    assert_eq!(Timestamp::from(system), t);
    assert_eq!(SystemTime::from(t), system);
    let before = SystemTime::UNIX_EPOCH - Duration::from_nanos(1);
    assert_eq!(Timestamp::from(before).unix_nanos(), -1);

    // Out of range saturates instead of panicking.
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    assert_eq!(Timestamp::from(far), Timestamp::MAX);
    let edge = datetime!(9999-12-31 23:00 -05:00);
    assert_eq!(Timestamp::from(edge), Timestamp::MAX);

    let now = Timestamp::now();
    let system_now = Timestamp::from(SystemTime::now());
    assert!((system_now.unix_nanos() - now.unix_nanos()).abs() < 60 * 1_000_000_000);
}

#[test]
fn ordering_equality_and_hash_follow_the_instant() {
    let a = ts("2024-01-01T00:00:00Z");
    let b = ts("2024-01-01T01:00:00+01:00");
    let c = ts("2024-01-01T00:00:00.000000001Z");
    assert_eq!(a, b);
    assert!(a < c);
    assert!(Timestamp::MIN < Timestamp::UNIX_EPOCH && Timestamp::UNIX_EPOCH < Timestamp::MAX);
    let set: HashSet<Timestamp> = [a, b, c].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn display_is_iso_8601_utc() {
    assert_eq!(
        ts("2024-01-01T00:00:00Z").to_string(),
        "2024-01-01T00:00:00.000Z"
    );
    assert_eq!(
        ts("2024-01-01T00:00:00.123Z").to_string(),
        "2024-01-01T00:00:00.123Z"
    );
    assert_eq!(
        ts("2024-01-01T00:00:00.123456Z").to_string(),
        "2024-01-01T00:00:00.123456Z"
    );
    assert_eq!(
        ts("2024-01-01T00:00:00.1234567Z").to_string(),
        "2024-01-01T00:00:00.123456700Z"
    );
    assert_eq!(
        ts("2024-06-30T23:59:59.000000001-07:30").to_string(),
        "2024-07-01T07:29:59.000000001Z"
    );
    assert_eq!(Timestamp::MIN.to_string(), "-009999-01-01T00:00:00.000Z");
    assert_eq!(
        format!("{:?}", Timestamp::UNIX_EPOCH),
        "Timestamp(1970-01-01T00:00:00.000Z)"
    );
}

#[test]
fn parses_rfc_3339_and_dotnet_forms() {
    let expected = Timestamp::from_unix_nanos(1_704_110_400_123_456_700).unwrap();
    for text in [
        "2024-01-01T12:00:00.1234567Z",
        "2024-01-01T12:00:00.1234567",
        "2024-01-01T12:00:00.12345670000000Z",
        "2024-01-01T14:00:00.1234567+02:00",
        "2024-01-01T11:00:00.1234567-01:00",
        "2024-01-01t12:00:00.1234567z",
    ] {
        assert_eq!(ts(text), expected, "{text}");
    }
    assert_eq!(ts("2024-01-01T12:00:00").unix_seconds(), 1_704_110_400);
    for bad in [
        "",
        "2024-01-01",
        "2024-13-01T00:00:00Z",
        "yesterday",
        "2024-01-01T00:00:00+25:00",
    ] {
        assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn json_form_is_a_utc_string() {
    let t = ts("2024-01-01T00:00:00.123Z");
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#""2024-01-01T00:00:00.123Z""#
    );
    assert_eq!(to_json(t), r#""2024-01-01T00:00:00.123Z""#);

    let parsed: Timestamp = serde_json::from_str(r#""2024-01-01T02:00:00.123+02:00""#).unwrap();
    assert_eq!(parsed, t);
    let dotnet: Timestamp = serde_json::from_str(r#""2024-01-01T00:00:00.1230000""#).unwrap();
    assert_eq!(dotnet, t);

    let payload = Payload::from_json_bytes(Bytes::from_static(br#""2024-01-01T00:00:00.123Z""#));
    assert_eq!(payload.deserialize::<Timestamp>().unwrap(), t);
    // A value payload is round-tripped through JSON.
    assert_eq!(
        Payload::from_value(t).deserialize::<Timestamp>().unwrap(),
        t
    );

    assert!(serde_json::from_str::<Timestamp>("1704067200").is_err());
    assert!(serde_json::from_str::<Timestamp>(r#""not a date""#).is_err());
}

#[test]
fn msgpack_form_is_the_timestamp_extension() {
    // timestamp 32: whole seconds that fit in 32 bits
    let t = ts("2024-01-01T00:00:00Z");
    assert_eq!(to_msgpack(t), [0xd6, 0xff, 0x65, 0x92, 0x00, 0x80]);
    assert_eq!(
        rmp_serde::to_vec(&t).unwrap(),
        [0xd6, 0xff, 0x65, 0x92, 0x00, 0x80]
    );
    assert_eq!(from_msgpack(&[0xd6, 0xff, 0x65, 0x92, 0x00, 0x80]), Ok(t));

    // timestamp 64: nanoseconds in the upper 30 bits, seconds in the lower 34
    let t = ts("2024-01-01T00:00:00.123Z");
    let packed = (123_000_000_u64 << 34) | 1_704_067_200;
    let mut expected = vec![0xd7, 0xff];
    expected.extend_from_slice(&packed.to_be_bytes());
    assert_eq!(to_msgpack(t), expected);
    assert_eq!(from_msgpack(&expected), Ok(t));

    // timestamp 64 also for whole seconds past 2106 (beyond u32)
    let t = ts("2200-01-01T00:00:00Z");
    let mut expected = vec![0xd7, 0xff];
    expected.extend_from_slice(&(t.unix_seconds() as u64).to_be_bytes());
    assert_eq!(to_msgpack(t), expected);
    assert_eq!(from_msgpack(&expected), Ok(t));

    // timestamp 96: before 1970
    let t = ts("1969-12-31T23:59:59.5Z");
    let mut expected = vec![0xc7, 0x0c, 0xff];
    expected.extend_from_slice(&500_000_000_u32.to_be_bytes());
    expected.extend_from_slice(&(-1_i64).to_be_bytes());
    assert_eq!(to_msgpack(t), expected);
    assert_eq!(from_msgpack(&expected), Ok(t));

    // timestamp 96 for a date beyond 2^34 seconds (year 2514 and later)
    let t = ts("9999-12-31T23:59:59.999999999Z");
    let bytes = to_msgpack(t);
    assert_eq!(&bytes[..3], [0xc7, 0x0c, 0xff]);
    assert_eq!(from_msgpack(&bytes), Ok(t));
}

#[test]
fn msgpack_accepts_strings_and_rejects_other_extensions() {
    let t = ts("2024-01-01T00:00:00.123Z");
    let text = "2024-01-01T00:00:00.123Z";
    let mut bytes = vec![0xa0 | text.len() as u8];
    bytes.extend_from_slice(text.as_bytes());
    assert_eq!(from_msgpack(&bytes), Ok(t));

    // another extension type
    assert!(from_msgpack(&[0xd6, 0x01, 0x65, 0x92, 0x00, 0x80]).is_err());
    // wrong data sizes
    assert!(from_msgpack(&[0xd5, 0xff, 0x00, 0x01]).is_err());
    assert!(from_msgpack(&[0xd8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    // nanoseconds of one billion in a timestamp 64
    let packed = (1_000_000_000_u64 << 34) | 1;
    let mut bytes = vec![0xd7, 0xff];
    bytes.extend_from_slice(&packed.to_be_bytes());
    assert!(from_msgpack(&bytes).is_err());
    // seconds out of range in a timestamp 96
    let mut bytes = vec![0xc7, 0x0c, 0xff, 0, 0, 0, 0];
    bytes.extend_from_slice(&i64::MAX.to_be_bytes());
    assert!(from_msgpack(&bytes).is_err());
    // an integer is not a date
    assert!(from_msgpack(&[0x2a]).is_err());
    // truncated extension
    assert!(from_msgpack(&[0xd6, 0xff, 0x65]).is_err());
}

#[test]
fn round_trips_inside_structs() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Event {
        at: Timestamp,
        name: String,
    }
    let event = Event {
        at: ts("2024-05-06T07:08:09.010Z"),
        name: "tick".into(),
    };
    let mut out = BytesMut::new();
    Payload::from_value(Event {
        at: event.at,
        name: event.name.clone(),
    })
    .write_msgpack(&mut out)
    .unwrap();
    let back: Event = Payload::from_msgpack_bytes(out.freeze())
        .deserialize()
        .unwrap();
    assert_eq!(back, event);

    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(json, r#"{"at":"2024-05-06T07:08:09.010Z","name":"tick"}"#);
    assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
}

#[test]
fn msgpack_round_trip_over_many_instants() {
    let mut nanos: i128 = -62_135_596_800_000_000_000; // year 1
    while nanos < 253_402_300_799_000_000_000 {
        let t = Timestamp::from_unix_nanos(nanos).unwrap();
        assert_eq!(from_msgpack(&to_msgpack(t)), Ok(t), "{t}");
        assert_eq!(ts(&t.to_string()), t);
        nanos += 987_654_321_123_456_789;
    }
}
