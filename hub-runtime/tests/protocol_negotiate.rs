//! Negotiate: query parsing on the server, every response shape, and the
//! client's reading of responses.

// Tests may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

use hub_runtime::protocol::TransferFormat;
use hub_runtime::protocol::negotiate::{
    AvailableTransport, MAX_NEGOTIATE_VERSION, NegotiateConnection, NegotiateError,
    NegotiateRedirect, NegotiateRequest, NegotiateResponse, TransportType,
};

fn query(q: &str) -> Result<NegotiateRequest, NegotiateError> {
    NegotiateRequest::from_query(q)
}

fn request(version: u32, stateful: bool) -> NegotiateRequest {
    NegotiateRequest {
        negotiate_version: version,
        use_stateful_reconnect: stateful,
    }
}

fn all_transports() -> Vec<AvailableTransport> {
    TransportType::ALL
        .into_iter()
        .map(AvailableTransport::new)
        .collect()
}

#[test]
fn query_versions() {
    assert_eq!(query(""), Ok(request(0, false)));
    assert_eq!(query("negotiateVersion=1"), Ok(request(1, false)));
    assert_eq!(query("negotiateVersion=0"), Ok(request(0, false)));
    // Clamped to the server's maximum.
    assert_eq!(query("negotiateVersion=7"), Ok(request(1, false)));
    assert_eq!(
        query("negotiateVersion=2147483647"),
        Ok(request(MAX_NEGOTIATE_VERSION, false))
    );
    // Keys are case-insensitive; other parameters are ignored.
    assert_eq!(
        query("_=123&NEGOTIATEVERSION=1&id=x&access_token=t"),
        Ok(request(1, false))
    );
    // int.TryParse allows surrounding whitespace and a sign.
    assert_eq!(query("negotiateVersion=%201%20"), Ok(request(1, false)));
    assert_eq!(query("negotiateVersion=+1"), Ok(request(1, false)));
    assert_eq!(query("negotiateVersion=%2B1"), Ok(request(1, false)));
}

#[test]
fn query_version_errors() {
    for q in [
        "negotiateVersion=abc",
        "negotiateVersion=",
        "negotiateVersion",
        "negotiateVersion=1.0",
        "negotiateVersion=2147483648",
        "negotiateVersion=1&negotiateVersion=1",
        "negotiateVersion=1%00",
    ] {
        assert_eq!(query(q), Err(NegotiateError::NonIntegerVersion), "{q}");
    }
    assert_eq!(
        NegotiateError::NonIntegerVersion.to_string(),
        "The client requested a non-integer protocol version."
    );
    let negative = query("negotiateVersion=-1").unwrap_err();
    assert_eq!(negative, NegotiateError::UnsupportedVersion(-1));
    assert_eq!(
        negative.to_string(),
        "The client requested version '-1', but the server does not support this version."
    );
}

#[test]
fn minimum_version() {
    assert_eq!(request(0, false).check_minimum_version(0), Ok(()));
    assert_eq!(request(1, false).check_minimum_version(1), Ok(()));
    let refused = request(0, false).check_minimum_version(1).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "The client requested version '0', but the server does not support this version."
    );
    assert_eq!(
        refused.response().to_json_string(),
        r#"{"error":"The client requested version '0', but the server does not support this version."}"#
    );
}

#[test]
fn query_stateful_reconnect() {
    assert_eq!(
        query("negotiateVersion=1&useStatefulReconnect=true"),
        Ok(request(1, true))
    );
    assert_eq!(
        query("useStatefulReconnect=TRUE&negotiateVersion=1"),
        Ok(request(1, true))
    );
    assert_eq!(query("UseStatefulReconnect=True"), Ok(request(0, true)));
    for q in [
        "useStatefulReconnect=false",
        "useStatefulReconnect=1",
        "useStatefulReconnect=",
        "useStatefulReconnect=true&useStatefulReconnect=true",
        "useStatefulReconnectX=true",
    ] {
        assert_eq!(query(q), Ok(request(0, false)), "{q}");
    }
    assert_eq!(query("useStatefulReconnect=%74rue"), Ok(request(0, true)));
}

#[test]
fn query_percent_decoding_of_keys_and_bad_escapes() {
    assert_eq!(query("negotiate%56ersion=1"), Ok(request(1, false)));
    // A malformed escape is kept literally, which is not an integer.
    assert_eq!(
        query("negotiateVersion=1%zz"),
        Err(NegotiateError::NonIntegerVersion)
    );
    assert_eq!(query("x=%&negotiateVersion=1&&"), Ok(request(1, false)));
}

#[test]
fn request_to_query() {
    assert_eq!(request(1, false).to_query(), "negotiateVersion=1");
    assert_eq!(
        request(1, true).to_query(),
        "negotiateVersion=1&useStatefulReconnect=true"
    );
    assert_eq!(query(&request(1, true).to_query()), Ok(request(1, true)));
}

#[test]
fn version_1_response_exact_bytes() {
    let response = NegotiateResponse::Connection(NegotiateConnection {
        negotiate_version: 1,
        connection_id: "807809a5".into(),
        connection_token: Some("05265228".into()),
        available_transports: all_transports(),
        use_stateful_reconnect: false,
    });
    let expected = concat!(
        r#"{"negotiateVersion":1,"connectionId":"807809a5","connectionToken":"05265228","#,
        r#""availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},"#,
        r#"{"transport":"ServerSentEvents","transferFormats":["Text"]},"#,
        r#"{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#
    );
    assert_eq!(response.to_json_string(), expected);
    assert_eq!(response.to_vec(), expected.as_bytes());
    assert_eq!(
        NegotiateResponse::from_slice(expected.as_bytes()),
        Ok(response)
    );
}

#[test]
fn stateful_and_version_0_responses() {
    let stateful = NegotiateResponse::Connection(NegotiateConnection {
        negotiate_version: 1,
        connection_id: "a".into(),
        connection_token: Some("b".into()),
        available_transports: vec![AvailableTransport::new(TransportType::WebSockets)],
        use_stateful_reconnect: true,
    });
    assert_eq!(
        stateful.to_json_string(),
        r#"{"useStatefulReconnect":true,"negotiateVersion":1,"connectionId":"a","connectionToken":"b","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#
    );
    // Version 0 has no token, even if one is set.
    let version_0 = NegotiateResponse::Connection(NegotiateConnection {
        negotiate_version: 0,
        connection_id: "a".into(),
        connection_token: Some("secret".into()),
        available_transports: vec![],
        use_stateful_reconnect: false,
    });
    assert_eq!(
        version_0.to_json_string(),
        r#"{"negotiateVersion":0,"connectionId":"a","availableTransports":[]}"#
    );
    let NegotiateResponse::Connection(decoded) =
        NegotiateResponse::from_slice(version_0.to_json_string().as_bytes()).unwrap()
    else {
        panic!("expected a connection");
    };
    assert_eq!(decoded.connection_token, None);
    assert_eq!(decoded.token(), "a");
}

#[test]
fn redirect_and_error_shapes() {
    let redirect = NegotiateResponse::Redirect(NegotiateRedirect {
        url: "https://other/hub".into(),
        access_token: Some("tok".into()),
    });
    assert_eq!(
        redirect.to_json_string(),
        r#"{"url":"https://other/hub","accessToken":"tok"}"#
    );
    assert_eq!(
        NegotiateResponse::from_slice(redirect.to_json_string().as_bytes()),
        Ok(redirect)
    );
    let bare = NegotiateResponse::Redirect(NegotiateRedirect {
        url: "https://x".into(),
        access_token: None,
    });
    assert_eq!(bare.to_json_string(), r#"{"url":"https://x"}"#);
    // A .NET-written redirect carries negotiateVersion and empty transports.
    assert_eq!(
        NegotiateResponse::from_slice(
            br#"{"negotiateVersion":0,"url":"https://x","availableTransports":[]}"#
        ),
        Ok(bare)
    );

    let error = NegotiateResponse::Error("This connection is not allowed.".into());
    assert_eq!(
        error.to_json_string(),
        r#"{"error":"This connection is not allowed."}"#
    );
    assert_eq!(
        NegotiateResponse::from_slice(error.to_json_string().as_bytes()),
        Ok(error)
    );
    // The error wins over everything else, as in the JS client.
    assert_eq!(
        NegotiateResponse::from_slice(br#"{"url":"u","ProtocolVersion":"1.5","error":"e"}"#),
        Ok(NegotiateResponse::Error("e".into()))
    );
}

#[test]
fn client_reading_rules() {
    // Unknown properties and transports are ignored; names are case-sensitive.
    let body =
        br#"{"negotiateVersion":1,"connectionId":"id","connectionToken":"tok","extra":{"a":[1]},
        "availableTransports":[
            {"transport":"webSockets","transferFormats":["Text"]},
            {"transport":"Carrier Pigeon","transferFormats":["Text"]},
            {"transport":"LongPolling","transferFormats":["Text","binary","Binary"],"x":1}
        ],"tokenLifetime":100}"#;
    let NegotiateResponse::Connection(connection) = NegotiateResponse::from_slice(body).unwrap()
    else {
        panic!("expected a connection");
    };
    assert_eq!(
        connection.available_transports,
        vec![AvailableTransport {
            transport: TransportType::LongPolling,
            transfer_formats: vec![TransferFormat::Text, TransferFormat::Binary],
        }]
    );
    assert_eq!(connection.token(), "tok");
    assert_eq!(connection.check_stateful_reconnect(false), Ok(()));

    let stateful = br#"{"useStatefulReconnect":true,"negotiateVersion":1,"connectionId":"i","connectionToken":"t","availableTransports":[]}"#;
    let NegotiateResponse::Connection(connection) =
        NegotiateResponse::from_slice(stateful).unwrap()
    else {
        panic!("expected a connection");
    };
    assert!(connection.use_stateful_reconnect);
    assert_eq!(connection.check_stateful_reconnect(true), Ok(()));
    assert_eq!(
        connection
            .check_stateful_reconnect(false)
            .unwrap_err()
            .to_string(),
        "Client didn't negotiate Stateful Reconnect but the server did."
    );
}

#[test]
fn classic_signalr_server_is_rejected() {
    let body =
        br#"{"Url":"/signalr","ConnectionToken":"x","ConnectionId":"y","ProtocolVersion":"1.5"}"#;
    let error = NegotiateResponse::from_slice(body).unwrap_err();
    assert_eq!(error, NegotiateError::ClassicSignalRServer);
    assert_eq!(
        error.to_string(),
        "Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server. See https://aka.ms/signalr-core-differences for details."
    );
    // Through serde too.
    let through_serde = serde_json::from_slice::<NegotiateResponse>(body).unwrap_err();
    assert!(
        through_serde
            .to_string()
            .contains("Detected a connection attempt to an ASP.NET SignalR Server."),
        "{through_serde}"
    );
    // JS tests truthiness: a falsy ProtocolVersion is ignored.
    assert!(matches!(
        NegotiateResponse::from_slice(
            br#"{"ProtocolVersion":"","negotiateVersion":0,"connectionId":"c","availableTransports":[]}"#
        ),
        Ok(NegotiateResponse::Connection(_))
    ));
}

#[test]
fn missing_and_malformed_responses() {
    assert_eq!(
        NegotiateResponse::from_slice(br#"{"negotiateVersion":1,"availableTransports":[]}"#),
        Err(NegotiateError::MissingField("connectionId"))
    );
    assert_eq!(
        NegotiateResponse::from_slice(
            br#"{"negotiateVersion":1,"connectionId":"c","availableTransports":[]}"#
        ),
        Err(NegotiateError::MissingField("connectionToken"))
    );
    assert_eq!(
        NegotiateResponse::from_slice(br#"{"negotiateVersion":0,"connectionId":"c"}"#),
        Err(NegotiateError::MissingField("availableTransports"))
    );
    for body in [
        &b""[..],
        b"[]",
        b"{",
        b"{\"connectionId\":5,\"availableTransports\":[]}",
        b"{\"connectionId\":\"c\",\"availableTransports\":[{\"transport\":\"WebSockets\"}]}",
    ] {
        assert!(
            matches!(
                NegotiateResponse::from_slice(body),
                Err(NegotiateError::InvalidJson(_))
            ),
            "{body:?}"
        );
    }
}

#[test]
fn transport_names() {
    for transport in TransportType::ALL {
        assert_eq!(TransportType::from_name(transport.name()), Some(transport));
    }
    assert_eq!(TransportType::from_name("websockets"), None);
    assert_eq!(
        TransportType::ServerSentEvents.transfer_formats(),
        &[TransferFormat::Text]
    );
    assert_eq!(
        AvailableTransport::new(TransportType::WebSockets).transfer_formats,
        vec![TransferFormat::Text, TransferFormat::Binary]
    );
}

#[test]
fn serde_round_trip_through_generic_api() {
    let response = NegotiateResponse::Connection(NegotiateConnection {
        negotiate_version: 1,
        connection_id: "i\"d".into(),
        connection_token: Some("t/ok".into()),
        available_transports: all_transports(),
        use_stateful_reconnect: true,
    });
    let value = serde_json::to_value(&response).unwrap();
    assert_eq!(value["connectionId"], "i\"d");
    let back: NegotiateResponse = serde_json::from_value(value).unwrap();
    assert_eq!(back, response);
}
