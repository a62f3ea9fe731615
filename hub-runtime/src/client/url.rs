//! The hub URL and the URLs derived from it (negotiate, HTTP transports,
//! WebSocket), on the `url` crate.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::{HubError, HubErrorKind};

/// An absolute `http(s)://host[:port]/path?query` hub URL (`ws://` and
/// `wss://` are taken as `http://` and `https://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubUrl {
    /// Always `http` or `https`.
    url: Url,
}

impl HubUrl {
    /// Parses an `http`, `https`, `ws` or `wss` URL.
    pub(crate) fn parse(text: &str) -> Result<Self, HubError> {
        let invalid = |why: &str| {
            HubError::with_kind(
                HubErrorKind::Transport,
                format!("Invalid hub URL '{text}': {why}"),
            )
        };
        let mut url = Url::parse(text).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => {
                invalid("the URL must be absolute (http[s]://host[:port]/path)")
            }
            other => invalid(&other.to_string()),
        })?;
        let http_scheme = match url.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => return Err(invalid(&format!("unsupported scheme '{other}'"))),
        };
        if url.scheme() != http_scheme {
            // `ws` → `http` keeps a special scheme special: always allowed.
            url.set_scheme(http_scheme)
                .map_err(|()| invalid("the scheme cannot be changed"))?;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("user information in the URL is not supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("missing host"));
        }
        url.set_fragment(None);
        Ok(HubUrl { url })
    }

    /// The host, as written (`[::1]` for IPv6), for error messages.
    pub(crate) fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// `true` for `https`.
    pub(crate) fn is_tls(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The negotiate URL: `{path}/negotiate?{query}&negotiateVersion=1`.
    pub(crate) fn negotiate_url(&self, stateful_reconnect: bool) -> Url {
        let mut url = self.url.clone();
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{path}/negotiate"));
        let has_version = url
            .query_pairs()
            .any(|(key, _)| key.eq_ignore_ascii_case("negotiateVersion"));
        if !has_version {
            append_pair(&mut url, "negotiateVersion", "1");
        }
        if stateful_reconnect {
            append_pair(&mut url, "useStatefulReconnect", "true");
        }
        url
    }

    /// The URL of the HTTP transports' requests: `{url}&id={token}`.
    pub(crate) fn transport_url(&self, id: Option<&str>) -> Url {
        let mut url = self.url.clone();
        if let Some(id) = id {
            append_pair(&mut url, "id", id);
        }
        url
    }

    /// The WebSocket URL: `ws[s]://{authority}{path}?{query}&id={id}&access_token={token}`.
    pub(crate) fn websocket_url(&self, id: Option<&str>, access_token: Option<&str>) -> Url {
        let mut url = self.transport_url(id);
        if let Some(token) = access_token {
            append_pair(&mut url, "access_token", token);
        }
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        // `http` → `ws` is between special schemes: always allowed.
        let _ = url.set_scheme(scheme);
        url
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.url.fmt(f)
    }
}

/// Characters left alone when a query value is encoded: what JavaScript's
/// `encodeURIComponent` leaves alone (a space is `%20`, as the official
/// clients send it, not the form encoding's `+`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Appends `key=value` to the query, keeping what is there byte for byte
/// (`query_pairs_mut` would re-encode the user's query).
pub(crate) fn append_pair(url: &mut Url, key: &str, value: &str) {
    let pair = format!("{key}={}", utf8_percent_encode(value, QUERY_VALUE));
    let query = match url.query() {
        Some(query) if !query.is_empty() => format!("{query}&{pair}"),
        _ => pair,
    };
    url.set_query(Some(&query));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives() {
        let url = HubUrl::parse("http://localhost:5000/hubs/test").expect("valid");
        assert_eq!(url.host(), "localhost");
        assert_eq!(
            url.negotiate_url(false).as_str(),
            "http://localhost:5000/hubs/test/negotiate?negotiateVersion=1"
        );
        assert_eq!(
            url.websocket_url(Some("abc_-"), Some("a b/c")).as_str(),
            "ws://localhost:5000/hubs/test?id=abc_-&access_token=a%20b%2Fc"
        );
    }

    #[test]
    fn keeps_user_query_and_trailing_slash() {
        let url = HubUrl::parse("http://h/hub/?x=1&NegotiateVersion=1").expect("valid");
        assert_eq!(
            url.negotiate_url(false).as_str(),
            "http://h/hub/negotiate?x=1&NegotiateVersion=1"
        );
        assert_eq!(
            url.websocket_url(None, None).as_str(),
            "ws://h/hub/?x=1&NegotiateVersion=1"
        );
    }

    #[test]
    fn tls_schemes() {
        let url = HubUrl::parse("https://h:8443/hub").expect("valid");
        assert!(url.is_tls());
        assert_eq!(
            url.websocket_url(Some("i"), None).as_str(),
            "wss://h:8443/hub?id=i"
        );
        let url = HubUrl::parse("wss://h/hub").expect("valid");
        assert_eq!(url.to_string(), "https://h/hub");
    }

    #[test]
    fn refuses_relative_and_other_schemes() {
        assert!(HubUrl::parse("/hub").is_err());
        assert!(HubUrl::parse("ftp://h/hub").is_err());
        assert!(HubUrl::parse("http://user:pw@h/hub").is_err());
    }

    #[test]
    fn ipv6() {
        let url = HubUrl::parse("http://[::1]:8080/hub").expect("valid");
        assert_eq!(url.host(), "[::1]");
    }
}
