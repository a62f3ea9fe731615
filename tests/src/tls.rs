//! Throwaway certificates for the TLS tests: a certificate authority made
//! in the test (with `rcgen`), a server certificate it signs for
//! `localhost`, `127.0.0.1` and `::1`, all written as PEM files to a
//! private temporary directory, removed when dropped.
//!
//! Clients are told to trust the CA the way users trust theirs: the Rust
//! client and the Redis connection through `SSL_CERT_FILE`
//! ([`TestCa::ca_cert_file`]), Node through `NODE_EXTRA_CA_CERTS`.
//!
//! ```no_run
//! use hub_tests::tls::TestCa;
//!
//! let ca = TestCa::new();
//! // In an integration test: env!("CARGO_BIN_EXE_conformance-server").
//! let server = ca.start_server("target/debug/conformance-server", &[]);
//! assert!(server.base_url().starts_with("https://127.0.0.1:"));
//! // Trust it: SSL_CERT_FILE=<ca.ca_cert_file()> for Rust, NODE_EXTRA_CA_CERTS for Node.
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::ServerProcess;

/// The names the default server certificate is valid for.
pub const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A throwaway certificate authority with one server certificate, as PEM
/// files in a temporary directory (deleted on drop).
pub struct TestCa {
    dir: tempfile::TempDir,
    ca_cert: Certificate,
    ca_key: KeyPair,
    ca_cert_file: PathBuf,
    server_cert_file: PathBuf,
    server_key_file: PathBuf,
}

impl TestCa {
    /// A new CA and a server certificate for [`LOOPBACK_NAMES`].
    ///
    /// # Panics
    /// When the keys cannot be generated or the files written.
    #[must_use]
    pub fn new() -> TestCa {
        TestCa::for_names(LOOPBACK_NAMES)
    }

    /// A new CA and a server certificate valid for `names` only (DNS names
    /// or IP addresses): with a name that is not the server's, a test sees
    /// the client refuse a host-name mismatch.
    ///
    /// # Panics
    /// When the keys cannot be generated or the files written.
    #[must_use]
    pub fn for_names(names: &[&str]) -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("hub-tests-tls-")
            .tempdir()
            .expect("a temporary directory");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hub-tests throwaway CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let ca_cert_file = dir.path().join("ca.pem");
        std::fs::write(&ca_cert_file, ca_cert.pem()).expect("ca.pem written");
        let ca = TestCa {
            ca_cert_file,
            server_cert_file: dir.path().join("server.pem"),
            server_key_file: dir.path().join("server-key.pem"),
            dir,
            ca_cert,
            ca_key,
        };
        let (cert, key) = ca.issue(names);
        std::fs::write(&ca.server_cert_file, cert).expect("server.pem written");
        std::fs::write(&ca.server_key_file, key).expect("server-key.pem written");
        ca
    }

    /// A new server certificate signed by this CA for `names`, as PEM
    /// `(certificate, private key)`.
    ///
    /// # Panics
    /// When a name is neither a DNS name nor an IP address.
    #[must_use]
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        self.issue_with(names, vec![ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// A certificate signed by this CA for [`LOOPBACK_NAMES`], good for
    /// both ends of a TLS link (server and client authentication), written
    /// to the CA's directory as `peer.pem` and `peer-key.pem`; returns
    /// their paths. The nodes of a TLS Redis Cluster present it to each
    /// other on the cluster bus, which always asks for a client
    /// certificate.
    ///
    /// # Panics
    /// When the files cannot be written.
    #[must_use]
    pub fn peer_cert_files(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue_with(
            LOOPBACK_NAMES,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let cert_file = self.dir.path().join("peer.pem");
        let key_file = self.dir.path().join("peer-key.pem");
        std::fs::write(&cert_file, cert).expect("peer.pem written");
        std::fs::write(&key_file, key).expect("peer-key.pem written");
        (cert_file, key_file)
    }

    fn issue_with(&self, names: &[&str], usages: Vec<ExtendedKeyUsagePurpose>) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("valid subject names");
        params
            .distinguished_name
            .push(DnType::CommonName, "hub-tests server");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = usages;
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("the server certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// The CA certificate (PEM): what `SSL_CERT_FILE` and
    /// `NODE_EXTRA_CA_CERTS` name for clients to trust the server.
    #[must_use]
    pub fn ca_cert_file(&self) -> &Path {
        &self.ca_cert_file
    }

    /// The server certificate (PEM), for `--tls-cert`.
    #[must_use]
    pub fn server_cert_file(&self) -> &Path {
        &self.server_cert_file
    }

    /// The server's private key (PEM), for `--tls-key`.
    #[must_use]
    pub fn server_key_file(&self) -> &Path {
        &self.server_key_file
    }

    /// The temporary directory holding the files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--tls-cert FILE --tls-key FILE` for a server binary.
    ///
    /// # Panics
    /// When the temporary directory's path is not UTF-8.
    #[must_use]
    pub fn server_args(&self) -> [String; 4] {
        let utf8 = |path: &Path| {
            path.to_str()
                .expect("a UTF-8 temporary directory")
                .to_owned()
        };
        [
            "--tls-cert".to_owned(),
            utf8(&self.server_cert_file),
            "--tls-key".to_owned(),
            utf8(&self.server_key_file),
        ]
    }

    /// Starts `binary` (`conformance-server`, `clock-server`) on a free
    /// loopback port over TLS with this CA's server certificate, with `args`
    /// besides; its base URL is `https://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// As [`ServerProcess::start`], or when the server does not print an
    /// `https://` address.
    #[must_use]
    pub fn start_server(&self, binary: &str, args: &[&str]) -> ServerProcess {
        self.start_server_with_env(binary, args, &[])
    }

    /// As [`TestCa::start_server`], with `env` added to the server's
    /// environment (such as `SSL_CERT_FILE` for a `rediss://` backplane).
    ///
    /// # Panics
    /// As [`TestCa::start_server`].
    #[must_use]
    pub fn start_server_with_env(
        &self,
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let tls_args = self.server_args();
        let mut all: Vec<&str> = tls_args.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let server = ServerProcess::start_with_env(binary, &all, env);
        assert!(
            server.base_url().starts_with("https://"),
            "{binary} with --tls-cert prints {}",
            server.base_url()
        );
        server
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A rustls client session to `server_name` that trusts only the CA
/// certificates in the PEM file `ca_file` (drive it over a blocking socket
/// with `rustls::Stream`); `None` when the file or name is unusable. For
/// probes below HTTP: "does the TLS Redis answer PING yet", "does the
/// server close a TLS connection that sends half a request".
#[must_use]
pub fn client_session(ca_file: &Path, server_name: &str) -> Option<rustls::ClientConnection> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).ok()? {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).ok()?;
    rustls::ClientConnection::new(std::sync::Arc::new(config), name).ok()
}
