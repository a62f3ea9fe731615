//! `HubError` keeps the error that caused it: `source()` returns it, while
//! the message stays the text that may travel to the other side.

use std::error::Error as _;

use hub_runtime::protocol::{Payload, PayloadError};
use hub_runtime::proxy::decode_result;
use hub_runtime::{HubError, HubErrorKind};

#[test]
fn a_result_that_does_not_deserialize_keeps_the_serde_error() {
    let error = decode_result::<i64>("Add", &Payload::from_value("seven")).unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Serialization);
    let source = error.source().expect("the cause is kept");
    let payload_error = source
        .downcast_ref::<PayloadError>()
        .expect("the cause is the payload's own error");
    assert!(
        error.message().contains(&payload_error.to_string()),
        "the message still says why: {error}"
    );
}

#[test]
fn a_hub_error_has_no_source_and_compares_by_kind_and_message() {
    let plain = HubError::new("the room is full");
    assert!(plain.source().is_none());
    let caused = HubError::new("the room is full").with_source(std::fmt::Error);
    assert!(caused.source().is_some());
    assert_eq!(plain, caused);
    // A clone shares the cause.
    assert!(caused.clone().source().unwrap().is::<std::fmt::Error>());
}
