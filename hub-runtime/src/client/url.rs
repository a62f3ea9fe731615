//! The hub URL and the URLs derived from it (negotiate, WebSocket).

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{HubError, HubErrorKind};

/// Characters left alone when a query value is encoded: what JavaScript's
/// `encodeURIComponent` leaves alone.
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

/// A parsed `http://host:port/path?query` hub URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubUrl {
    /// `host` or `host:port`, as written.
    authority: String,
    /// The host name or address, without brackets for IPv6.
    host: String,
    port: u16,
    /// The path, starting with `/`.
    path: String,
    /// The query without `?`, possibly empty.
    query: String,
}

impl HubUrl {
    /// Parses an `http://` or `ws://` URL. `https`/`wss` are refused: this
    /// client has no TLS.
    pub(crate) fn parse(url: &str) -> Result<Self, HubError> {
        let invalid = |why: &str| {
            HubError::with_kind(
                HubErrorKind::Transport,
                format!("Invalid hub URL '{url}': {why}"),
            )
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let default_port = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") | Some("ws") => 80,
            Some("https") | Some("wss") => {
                return Err(invalid(
                    "TLS (https/wss) is not supported by this client; use http:// or ws://",
                ));
            }
            Some(other) => return Err(invalid(&format!("unsupported scheme '{other}'"))),
            None => {
                return Err(invalid(
                    "the URL must be absolute (http://host[:port]/path)",
                ));
            }
        };
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information in the URL is not supported"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let path = match uri.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        Ok(HubUrl {
            authority: authority.as_str().to_owned(),
            host,
            port: authority.port_u16().unwrap_or(default_port),
            path,
            query: uri.query().unwrap_or("").to_owned(),
        })
    }

    /// The host to connect to.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port to connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header value.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// The negotiate request's path and query:
    /// `{path}/negotiate?{query}&negotiateVersion=1`.
    pub(crate) fn negotiate_path_and_query(&self) -> String {
        let mut out = self.path.clone();
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push_str("negotiate");
        let mut query = self.query.clone();
        let has_version = query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|key| key.eq_ignore_ascii_case("negotiateVersion"))
        });
        if !has_version {
            append_pair(&mut query, "negotiateVersion", "1");
        }
        out.push('?');
        out.push_str(&query);
        out
    }

    /// The WebSocket URL: `ws://{authority}{path}?{query}&id={token}&access_token={token}`.
    pub(crate) fn websocket_url(&self, id: Option<&str>, access_token: Option<&str>) -> String {
        let mut query = self.query.clone();
        if let Some(id) = id {
            append_pair(&mut query, "id", id);
        }
        if let Some(token) = access_token {
            append_pair(&mut query, "access_token", token);
        }
        let mut out = format!("ws://{}{}", self.authority, self.path);
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query);
        }
        out
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        Ok(())
    }
}

/// Appends `key=value` (value percent-encoded) to a query string.
fn append_pair(query: &mut String, key: &str, value: &str) {
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(key);
    query.push('=');
    query.extend(utf8_percent_encode(value, QUERY_VALUE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives() {
        let url = HubUrl::parse("http://localhost:5000/hubs/test").expect("valid");
        assert_eq!(url.host(), "localhost");
        assert_eq!(url.port(), 5000);
        assert_eq!(
            url.negotiate_path_and_query(),
            "/hubs/test/negotiate?negotiateVersion=1"
        );
        assert_eq!(
            url.websocket_url(Some("abc_-"), Some("a b/c")),
            "ws://localhost:5000/hubs/test?id=abc_-&access_token=a%20b%2Fc"
        );
    }

    #[test]
    fn keeps_user_query_and_trailing_slash() {
        let url = HubUrl::parse("http://h/hub/?x=1&NegotiateVersion=1").expect("valid");
        assert_eq!(url.port(), 80);
        assert_eq!(
            url.negotiate_path_and_query(),
            "/hub/negotiate?x=1&NegotiateVersion=1"
        );
        assert_eq!(
            url.websocket_url(None, None),
            "ws://h/hub/?x=1&NegotiateVersion=1"
        );
    }

    #[test]
    fn refuses_tls_and_relative() {
        assert!(HubUrl::parse("https://h/hub").is_err());
        assert!(HubUrl::parse("/hub").is_err());
        assert!(HubUrl::parse("ftp://h/hub").is_err());
    }

    #[test]
    fn ipv6() {
        let url = HubUrl::parse("http://[::1]:8080/hub").expect("valid");
        assert_eq!(url.host(), "::1");
        assert_eq!(url.authority(), "[::1]:8080");
    }
}
