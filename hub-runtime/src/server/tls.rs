//! Serving hubs over https and wss (feature `server-tls`).
//!
//! [`serve_tls`] is [`serve_with_shutdown`](super::serve_with_shutdown)
//! with a TLS handshake ([tokio-rustls](https://docs.rs/tokio-rustls), with
//! rustls' default provider, aws-lc-rs) in front of each connection: the
//! same router, header-read timeout and graceful drain, every endpoint —
//! negotiate, the WebSocket upgrade, Server-Sent Events and Long Polling —
//! over the same TLS port. Plain HTTP to that port is not served: the
//! handshake fails and the connection is closed.
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! use hub_runtime::server::ServeOptions;
//! use hub_runtime::server::tls::{load_pem_files, serve_tls};
//!
//! let config = load_pem_files("cert.pem", "key.pem")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5001").await?;
//! // https://127.0.0.1:5001, wss://127.0.0.1:5001
//! serve_tls(listener, app, ServeOptions::default(), config, hub_runtime::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Each handshake runs in its connection's own task (a slow client holds
//! up no other) and must finish within [`TLS_HANDSHAKE_TIMEOUT`]. An
//! application that needs more (HTTP/2, certificate reloading, client
//! certificates) can hand its own `rustls::ServerConfig` to
//! [`serve_tls`], or serve the router with a crate such as `axum-server`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use super::ServeOptions;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client may take to complete the TLS handshake with
/// [`serve_tls`] before it is disconnected.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`load_pem_files`] could not make a TLS server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file cannot be read, or is not PEM.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{0}: no certificate (a PEM `CERTIFICATE` block) in the file")]
    NoCertificate(PathBuf),
    /// The key file holds no private key block (`PRIVATE KEY`,
    /// `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
    #[error("{0}: no private key (a PEM `PRIVATE KEY` block) in the file")]
    NoPrivateKey(PathBuf),
    /// rustls refused the certificate chain and key (for instance, the key
    /// does not belong to the certificate).
    #[error("the certificate and key are not usable together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls server configuration for a PEM certificate chain (the
/// server's certificate first, then its intermediates) and its PEM private
/// key (PKCS#8, PKCS#1 or SEC1), with rustls' aws-lc-rs provider, TLS 1.2
/// and 1.3, and ALPN `http/1.1` (what [`serve_tls`] speaks).
///
/// # Errors
/// When a file cannot be read or parsed, holds no certificate or key, or
/// the key does not match the certificate.
pub fn load_pem_files(
    cert_file: impl AsRef<Path>,
    key_file: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let cert_file = cert_file.as_ref();
    let key_file = key_file.as_ref();
    let file_error = |path: &Path, e: &dyn std::fmt::Display| TlsConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_error(cert_file, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert_file, &e))?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate(cert_file.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsConfigError::NoPrivateKey(key_file.to_owned())
        }
        e => file_error(key_file, &e),
    })?;
    // The provider is named rather than taken from the process default, so
    // that the configuration does not depend on which rustls features other
    // crates of the application turn on.
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS with `config` on `listener` until `shutdown`
/// completes: [`serve_with_shutdown`](super::serve_with_shutdown) (with
/// its `options`: header-read timeout, `TCP_NODELAY`) after a TLS
/// handshake on each connection. A handshake that fails (plain HTTP, an
/// untrusted or mismatched certificate on the client's side) or takes
/// longer than [`TLS_HANDSHAKE_TIMEOUT`] closes that connection only.
///
/// Hub connections are not HTTP requests that a graceful shutdown waits
/// for: let `shutdown` call the hub's `shutdown()` first, as with plain
/// HTTP.
///
/// # Errors
/// As [`serve_with_shutdown`](super::serve_with_shutdown).
pub async fn serve_tls<F>(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    config: Arc<ServerConfig>,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake = move |stream: tokio::net::TcpStream| {
        let accept = acceptor.accept(stream);
        async move {
            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
        }
    };
    super::serve::serve_streams(listener, app, options, handshake, shutdown).await
}
