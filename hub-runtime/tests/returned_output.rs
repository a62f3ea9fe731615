//! The conversion of hub method return values picks `Result<T, HubError>`
//! apart from plain values, also behind an alias.
#![allow(clippy::unwrap_used)]
use hub_runtime::HubError;
use hub_runtime::hub::{
    IntoOutputFromResult as _, IntoOutputFromValue as _, InvocationError, MethodOutput, Returned,
};

type Alias<T> = Result<T, HubError>;

fn value(output: Result<MethodOutput, InvocationError>) -> serde_json::Value {
    match output {
        Ok(MethodOutput::Value(payload)) => payload.to_json_value().unwrap(),
        Ok(other) => panic!("unexpected output {other:?}"),
        Err(error) => panic!("unexpected error {error:?}"),
    }
}

#[test]
fn plain_values_result_values_and_errors() {
    assert_eq!(
        value(Returned::new(5_i32).into_output()),
        serde_json::json!(5)
    );
    assert_eq!(
        value(Returned::new(()).into_output()),
        serde_json::Value::Null
    );
    let ok: Result<String, HubError> = Ok("x".into());
    assert_eq!(
        value(Returned::new(ok).into_output()),
        serde_json::json!("x")
    );
    let err: Alias<u8> = Err(HubError::new("nope"));
    assert_eq!(
        Returned::new(err).into_output().unwrap_err(),
        InvocationError::Hub(HubError::new("nope"))
    );
}
