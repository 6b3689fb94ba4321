//! The TLS client settings every encrypted output shares (syslog over TLS per RFC 5425, HTTPS
//! collectors): one rustls configuration with the ring provider, TLS 1.2 and 1.3 only.
//!
//! Trust comes from a PEM CA bundle when the operator names one, else from the system store.
//! A client certificate makes it mutual TLS. Turning verification off is possible only through
//! an option whose name says so (`insecure_skip_verify`); the caller must log that loudly,
//! because an unverified link may hand masked alerts to anyone on the path.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS client configuration could not be built. Every variant is the operator's to fix
/// (a path, a file's content, the system trust store); none is the peer's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A certificate or key file could not be read.
    #[error("cannot read {what} {}: {source}; check the path and that nigehban may read it", path.display())]
    Read {
        /// Which file this was (`CA bundle`, `client certificate`, `client key`).
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has no usable PEM certificate, or a PEM block is malformed.
    #[error("{what} {} holds no readable PEM certificate ({reason}); expected one or more `-----BEGIN CERTIFICATE-----` blocks", path.display())]
    NoCertificate {
        /// Which file this was.
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// A certificate in the CA bundle is not a usable trust anchor.
    #[error("CA bundle {} has a certificate rustls cannot use as a trust anchor: {reason}; pass the CA's own certificate in PEM", path.display())]
    BadCa {
        /// The path as given.
        path: PathBuf,
        /// What webpki said.
        reason: String,
    },
    /// The key file holds no PKCS#8, PKCS#1 or SEC1 private key.
    #[error("client key {} holds no readable PEM private key ({reason}); expected `-----BEGIN PRIVATE KEY-----` (PKCS#8), RSA or EC key", path.display())]
    NoPrivateKey {
        /// The path as given.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// The client certificate and key do not belong together, or the key type is unsupported.
    #[error("client certificate {} and key {} cannot be used together: {reason}; pass the key that matches the certificate", cert.display(), key.display())]
    ClientAuth {
        /// Certificate path.
        cert: PathBuf,
        /// Key path.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// No CA file was given and the system trust store yielded no certificate.
    #[error("no CA bundle given and no trusted certificate found in the system store ({reason}); install ca-certificates or pass a CA bundle file")]
    NoSystemRoots {
        /// What the loader said.
        reason: String,
    },
}

/// Builds the client configuration for one output.
///
/// - `ca`: PEM bundle of the CAs that may sign the receiver's certificate; `None` uses the system
///   trust store (the OpenSSL locations, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).
/// - `client_cert`: `(certificate chain PEM, private key PEM)` for mutual TLS.
/// - `insecure_skip_verify`: accept any server certificate and name. Signatures in the handshake
///   are still checked, so the peer proves it holds the key of the certificate it shows, but
///   nothing proves who that peer is. The caller must log a warning naming the option.
///
/// The server name is checked by rustls against the name the caller connects with.
pub fn client_config(
    ca: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
    insecure_skip_verify: bool,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3");
    let builder = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer { provider }))
    } else {
        builder.with_root_certificates(match ca {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        })
    };
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs("client certificate", cert)?;
            let key_der = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsConfigError::ClientAuth {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(Arc::new(config))
}

/// Finds the rustls error behind a connection failure, if there is one, looking through
/// `source()` chains and inside `std::io::Error` (where rustls handshake errors usually travel).
pub fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // io::Error::source() skips the wrapped error itself, so look at it explicitly.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(r) = rustls_error(inner) {
                return Some(r);
            }
        }
        cur = e.source();
    }
    None
}

/// True when `err` means the operator must change something (trust, name, client certificate)
/// rather than wait: retrying the same handshake cannot succeed.
pub fn is_config_failure(err: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    match err {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType
        | rustls::Error::PeerIncompatible(_) => true,
        rustls::Error::AlertReceived(a) => matches!(
            a,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
                | A::HandshakeFailure
                | A::ProtocolVersion
                | A::InsufficientSecurity
        ),
        _ => false,
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

// pub(crate): the metrics endpoint loads its certificate chain here too.
pub(crate) fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_file(what, path)?;
    let no_cert = |reason: String| TlsConfigError::NoCertificate {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_cert(e.to_string()))?;
    if certs.is_empty() {
        return Err(no_cert("no certificate block found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read_file("client key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsConfigError::NoPrivateKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("CA bundle", path)? {
        roots.add(cert).map_err(|e| TlsConfigError::BadCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // A store often holds a few certificates webpki rejects (odd encodings); skip those, as
    // browsers do, and fail only when nothing usable is left.
    let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let reason = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "the store is empty".into(),
        };
        return Err(TlsConfigError::NoSystemRoots { reason });
    }
    Ok(roots)
}

/// Accepts every server certificate and name; still checks handshake signatures so the
/// connection is at least encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConnection, ServerConfig, ServerConnection};
    use std::io::Write;

    /// A CA and one leaf it signed, as PEM files in a temp dir.
    struct Pki {
        dir: tempfile::TempDir,
        ca: rcgen::Certificate,
        ca_key: KeyPair,
    }

    impl Pki {
        fn new(name: &str) -> Pki {
            let ca_key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            let ca = p.self_signed(&ca_key).unwrap();
            let pki = Pki {
                dir: tempfile::tempdir().unwrap(),
                ca,
                ca_key,
            };
            pki.write("ca.pem", &pki.ca.pem());
            pki
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.path(name);
            std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
            p
        }

        /// Issues a leaf for `names`; returns (chain DER, key DER) and writes `<stem>.pem`/`<stem>.key`.
        fn leaf(&self, stem: &str, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
            let key = KeyPair::generate().unwrap();
            let p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
            self.write(&format!("{stem}.pem"), &cert.pem());
            self.write(&format!("{stem}.key"), &key.serialize_pem());
            (
                vec![cert.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
        }
    }

    fn server(pki: &Pki, names: &[&str], client_ca: Option<&Pki>) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let b = match client_ca {
            None => b.with_no_client_auth(),
            Some(c) => {
                let mut roots = RootCertStore::empty();
                roots.add(c.ca.der().clone()).unwrap();
                b.with_client_cert_verifier(
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap(),
                )
            }
        };
        let (chain, key) = pki.leaf("server", names);
        Arc::new(b.with_single_cert(chain, key).unwrap())
    }

    /// Runs a handshake in memory; returns the first error either side reports.
    fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>, name: &str) -> Result<(), rustls::Error> {
        let mut c = ClientConnection::new(client, ServerName::try_from(name.to_string()).unwrap())?;
        let mut s = ServerConnection::new(server)?;
        for _ in 0..20 {
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
            buf.clear();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
        }
        panic!("handshake did not finish in 20 rounds");
    }

    #[test]
    fn trusted_ca_and_matching_name_connect() {
        let pki = Pki::new("test CA");
        let cfg = client_config(Some(&pki.path("ca.pem")), None, false).unwrap();
        handshake(cfg, server(&pki, &["localhost"], None), "localhost").unwrap();
    }

    #[test]
    fn tls12_and_tls13_servers_are_both_reached() {
        // rustls has no TLS 1.0/1.1 at all, so "1.2 or newer" reduces to: both remain enabled.
        let pki = Pki::new("test CA");
        let cfg = client_config(Some(&pki.path("ca.pem")), None, false).unwrap();
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let (chain, key) = pki.leaf("server", &["localhost"]);
            let srv = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
            handshake(Arc::clone(&cfg), Arc::new(srv), "localhost").unwrap();
        }
    }

    #[test]
    fn wrong_ca_is_a_config_failure() {
        let pki = Pki::new("real CA");
        let other = Pki::new("other CA");
        let cfg = client_config(Some(&other.path("ca.pem")), None, false).unwrap();
        let err = handshake(cfg, server(&pki, &["localhost"], None), "localhost").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{err}"
        );
        assert!(is_config_failure(&err));
    }

    #[test]
    fn wrong_server_name_is_refused() {
        let pki = Pki::new("test CA");
        let cfg = client_config(Some(&pki.path("ca.pem")), None, false).unwrap();
        let err = handshake(cfg, server(&pki, &["siem.example"], None), "localhost").unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
        assert!(is_config_failure(&err));
    }

    #[test]
    fn insecure_skip_verify_accepts_unknown_ca_and_name() {
        let pki = Pki::new("test CA");
        let cfg = client_config(None, None, true).unwrap();
        handshake(cfg, server(&pki, &["siem.example"], None), "localhost").unwrap();
    }

    #[test]
    fn mutual_tls_presents_the_client_certificate() {
        let server_pki = Pki::new("server CA");
        let client_pki = Pki::new("client CA");
        client_pki.leaf("client", &["nigehban-sensor"]);
        let srv = server(&server_pki, &["localhost"], Some(&client_pki));
        let ca = server_pki.path("ca.pem");
        let with_cert = client_config(
            Some(&ca),
            Some((&client_pki.path("client.pem"), &client_pki.path("client.key"))),
            false,
        )
        .unwrap();
        handshake(with_cert, Arc::clone(&srv), "localhost").unwrap();
        let without = client_config(Some(&ca), None, false).unwrap();
        let err = handshake(without, srv, "localhost").unwrap_err();
        assert!(is_config_failure(&err), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem")), None, false).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TlsConfigError::Read { .. }));
        assert!(
            msg.contains("/nonexistent/ca.pem") && msg.contains("CA bundle"),
            "{msg}"
        );
    }

    #[test]
    fn file_without_certificates_is_refused() {
        let pki = Pki::new("test CA");
        let junk = pki.write("junk.pem", "not a certificate\n");
        let err = client_config(Some(&junk), None, false).unwrap_err();
        assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("junk.pem"));
        // A key file where the CA belongs is no certificate either.
        pki.leaf("leaf", &["localhost"]);
        let err = client_config(Some(&pki.path("leaf.key")), None, false).unwrap_err();
        assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");
    }

    #[test]
    fn client_key_problems_are_named() {
        let pki = Pki::new("test CA");
        pki.leaf("a", &["a"]);
        pki.leaf("b", &["b"]);
        let ca = pki.path("ca.pem");
        let err = client_config(Some(&ca), Some((&pki.path("a.pem"), &pki.path("a.pem"))), false).unwrap_err();
        assert!(matches!(err, TlsConfigError::NoPrivateKey { .. }), "{err}");
        let err = client_config(Some(&ca), Some((&pki.path("a.pem"), &pki.path("b.key"))), false).unwrap_err();
        assert!(matches!(err, TlsConfigError::ClientAuth { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("a.pem") && msg.contains("b.key"), "{msg}");
    }

    #[test]
    fn rustls_error_is_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let found = rustls_error(&io).expect("found through io::Error");
        assert!(is_config_failure(found));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(rustls_error(&plain).is_none());
    }

    #[test]
    fn system_roots_load_when_the_store_exists() {
        // Debian's ca-certificates bundle; without it the store is legitimately empty.
        if !Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
            return;
        }
        let cfg = client_config(None, None, false).unwrap();
        let pki = Pki::new("private CA");
        // A private CA is not in the system store, so the handshake must fail.
        let err = handshake(cfg, server(&pki, &["localhost"], None), "localhost").unwrap_err();
        assert!(is_config_failure(&err), "{err}");
    }
}
