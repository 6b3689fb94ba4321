//! Test certificates: a throw-away CA per test, leaves it signs, PEM files in a temp dir, and
//! rustls server configurations for receivers the tests start on loopback.
#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// One CA and the files of what it issued.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// A leaf certificate and its key, in memory and as `<stem>.pem` / `<stem>.key`.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Pki {
    /// A new CA named `name`; its certificate is at [`Pki::ca_path`].
    pub fn new(name: &str) -> Pki {
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
        std::fs::write(pki.ca_path(), pki.ca.pem()).unwrap();
        pki
    }

    /// The CA certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// Issues a leaf for `names` (DNS names or IP addresses).
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_path = self.dir.path().join(format!("{stem}.pem"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            cert_path,
            key_path,
        }
    }

    /// A TLS server configuration presenting a leaf for `names`; when `client_ca` is given,
    /// clients must present a certificate that CA signed.
    pub fn server_config(&self, names: &[&str], client_ca: Option<&Pki>) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let b = match client_ca {
            None => b.with_no_client_auth(),
            Some(c) => {
                let mut roots = RootCertStore::empty();
                roots.add(c.ca_der()).unwrap();
                b.with_client_cert_verifier(
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap(),
                )
            }
        };
        let leaf = self.leaf("server", names);
        Arc::new(b.with_single_cert(leaf.chain, leaf.key).unwrap())
    }
}
