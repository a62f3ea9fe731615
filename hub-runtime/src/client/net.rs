//! The connection's network stack, shared by negotiate and every
//! transport: one pooled `reqwest` client (HTTP/1.1 over rustls, so Long
//! Polling reuses its connections), one cookie jar (also read and filled
//! by the WebSocket upgrade), one TLS configuration and one proxy policy.

use std::error::Error as StdError;
use std::sync::Arc;

use http::HeaderValue;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use reqwest::cookie::{CookieStore as _, Jar};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use url::Url;

use crate::{BoxFuture, HubError, HubErrorKind};

/// Supplies the bearer token, called before every request: negotiate, the
/// WebSocket upgrade, each POST, poll and event-stream request.
pub(crate) type AccessTokenProvider =
    Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// Where the certificates of `https://` servers are checked against.
#[derive(Clone, Default)]
pub(crate) enum Trust {
    /// The platform's roots, or the PEM file named by `SSL_CERT_FILE` (or
    /// the directory `SSL_CERT_DIR`) when set, as OpenSSL reads them.
    #[default]
    Platform,
    /// These roots only.
    Roots(Arc<RootCertStore>),
    /// A complete configuration from the user.
    Config(Arc<rustls::ClientConfig>),
}

/// The network stack of one [`HubConnection`](super::HubConnection).
#[derive(Clone)]
pub(crate) struct Net {
    pub(crate) http: reqwest::Client,
    pub(crate) cookies: Arc<Jar>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    proxy: Arc<Matcher>,
}

fn config_error(message: impl Into<String>) -> HubError {
    HubError::with_kind(HubErrorKind::Transport, message.into())
}

impl Net {
    /// Builds the stack: TLS from `trust`, the proxy from `proxy` (a URL)
    /// or else from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, minus `NO_PROXY`.
    pub(crate) fn new(trust: &Trust, proxy: Option<&str>) -> Result<Self, HubError> {
        let tls = match trust {
            Trust::Config(config) => config.clone(),
            Trust::Roots(roots) => Arc::new(client_config(roots.clone())?),
            Trust::Platform => Arc::new(client_config(Arc::new(platform_roots()))?),
        };
        let cookies = Arc::new(Jar::default());
        let no_proxy = std::env::var("NO_PROXY")
            .or_else(|_| std::env::var("no_proxy"))
            .unwrap_or_default();
        let mut http = reqwest::Client::builder()
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
            .cookie_provider(cookies.clone())
            .tcp_nodelay(true)
            // The hub URL is where the user pointed; HTTP redirects of
            // negotiate are not part of the protocol (it has its own).
            .redirect(reqwest::redirect::Policy::none());
        let matcher = match proxy {
            Some(proxy) => {
                let reqwest_proxy = reqwest::Proxy::all(proxy)
                    .map_err(|e| config_error(format!("Invalid proxy URL '{proxy}': {e}")))?
                    .no_proxy(reqwest::NoProxy::from_string(&no_proxy));
                http = http.proxy(reqwest_proxy);
                Matcher::builder().all(proxy).no(no_proxy).build()
            }
            None => Matcher::from_env(),
        };
        let http = http
            .build()
            .map_err(|e| config_error(format!("Failed to set up the HTTP client: {e}")))?;
        Ok(Net {
            http,
            cookies,
            tls,
            proxy: Arc::new(matcher),
        })
    }

    /// The proxy to tunnel through to reach `url`, if any.
    pub(crate) fn proxy_for(&self, url: &Url) -> Option<Intercept> {
        let uri: http::Uri = url.as_str().parse().ok()?;
        self.proxy.intercept(&uri)
    }

    /// The `Cookie` header for a request to `url` (an `http(s)` URL).
    pub(crate) fn cookie_header(&self, url: &Url) -> Option<HeaderValue> {
        self.cookies.cookies(url)
    }

    /// Keeps the `Set-Cookie`s of a response from `url`.
    pub(crate) fn store_cookies(&self, headers: &http::HeaderMap, url: &Url) {
        let mut set_cookies = headers.get_all(http::header::SET_COOKIE).iter();
        self.cookies.set_cookies(&mut set_cookies, url);
    }
}

/// A rustls client configuration trusting `roots`, with the aws-lc-rs
/// provider (the one provider of the build: see the workspace manifest).
fn client_config(roots: Arc<RootCertStore>) -> Result<rustls::ClientConfig, HubError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("Failed to set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The platform's roots, or those of `SSL_CERT_FILE`/`SSL_CERT_DIR` when
/// set (`rustls-native-certs` reads them as OpenSSL does). Certificates
/// that fail to load are skipped: a server they would have vouched for is
/// then refused with an error naming it.
fn platform_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "some trusted root certificates could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(
            added,
            ignored,
            "some trusted root certificates were not usable"
        );
    }
    roots
}

/// Reads the certificates of a PEM file, for [`Trust::Roots`].
pub(crate) fn pem_roots(pem: &[u8]) -> Result<RootCertStore, HubError> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| config_error(format!("Invalid PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| config_error(format!("Unusable root certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(config_error("The PEM holds no certificate."));
    }
    Ok(roots)
}

/// Why a request to `host` failed, in words: the TLS refusal when there is
/// one ("The TLS certificate of localhost was refused: …"), else the
/// chain of causes.
pub(crate) fn describe_failure(host: &str, error: &(dyn StdError + 'static)) -> String {
    if let Some(tls) = tls_error(error) {
        return match tls {
            rustls::Error::InvalidCertificate(why) => format!(
                "The TLS certificate of {host} was refused: {why:?}. Trust its issuer with \
                 SSL_CERT_FILE or the builder's root certificates."
            ),
            other => format!("The TLS handshake with {host} failed: {other}"),
        };
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = error.source();
    }
    text
}

/// The rustls error somewhere in `error`'s causes (io errors hide theirs
/// behind `get_ref`, not `source`).
fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = tls_error(inner) {
                    return Some(found);
                }
            }
        }
        cause = error.source();
    }
    None
}

/// An error for a failed request to `host`, of kind `Timeout` when it
/// timed out.
pub(crate) fn request_error(context: &str, host: &str, error: &reqwest::Error) -> HubError {
    let kind = if error.is_timeout() {
        HubErrorKind::Timeout
    } else {
        HubErrorKind::Transport
    };
    HubError::with_kind(
        kind,
        format!("{context}: {}", describe_failure(host, error)),
    )
}
