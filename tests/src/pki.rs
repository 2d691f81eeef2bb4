//! Test certificates for boroughs behind mutual TLS: a certificate authority, a server
//! certificate for 127.0.0.1 that the simulators present, a TLS configuration that demands a
//! client certificate issued by that authority, and two client certificates for the gateway:
//! one the authority issued, and a stranger's (self-signed), which the borough must refuse.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tideway_adapters::SourceTls;

/// Days the server certificate has left when made.
pub const SERVER_DAYS: i64 = 10;

/// Which client certificate the gateway presents to the mutual-TLS boroughs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificate {
    /// One the boroughs' authority issued.
    Issued,
    /// A self-signed one the boroughs do not know.
    Stranger,
}

/// The authority, the boroughs' TLS configuration, and the gateway's two client identities as
/// files under the test's directory.
pub struct TestPki {
    /// What the simulators serve with (demands a client certificate from the authority).
    pub server: Arc<rustls::ServerConfig>,
    /// The same server certificate and key as PEM files, and the authority's certificate, for
    /// a gateway listening over TLS and checking client certificates against that authority.
    pub gateway_tls: tideway_gateway::config::ServerTls,
    /// The SHA-256 (hex) of the issued client certificate, as a client registers it.
    pub issued_sha256: String,
    issued: SourceTls,
    stranger: SourceTls,
}

impl TestPki {
    /// Makes everything, writing the gateway's PEM files into `dir`.
    pub fn new(dir: &Path) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Tideway test borough CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
        // Ten days left: inside the gateway's default expiry warning.
        server_params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(SERVER_DAYS);
        let server = server_params.signed_by(&server_key, &ca, &ca_key).expect("server cert");

        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der().to_vec())).expect("ca root");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().expect("client verifier");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let server_config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![CertificateDer::from(server.der().to_vec())], key)
            .expect("server TLS config");

        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("pem file");
            path
        };
        let ca_file = write("borough-ca.pem", ca.pem());
        let gateway_tls = tideway_gateway::config::ServerTls {
            certificate: write("server.pem", server.pem()),
            key: write("server.key", server_key.serialize_pem()),
            client_ca: Some(ca_file.clone()),
        };
        let client = |name: &str, issued: bool| {
            let key = KeyPair::generate().expect("client key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
            params.distinguished_name.push(DnType::CommonName, format!("tideway gateway ({name})"));
            let cert = if issued {
                params.signed_by(&key, &ca, &ca_key).expect("client cert")
            } else {
                params.self_signed(&key).expect("stranger cert")
            };
            let sha256 = hex_sha256(cert.der());
            let tls = SourceTls {
                client_certificate: write(&format!("{name}.pem"), cert.pem()),
                client_key: tideway_adapters::ClientKey::File(write(
                    &format!("{name}.key"),
                    key.serialize_pem(),
                )),
                ca_certificate: Some(ca_file.clone()),
            };
            (tls, sha256)
        };
        let (issued, issued_sha256) = client("gateway-client", true);
        let (stranger, _) = client("stranger-client", false);
        Self { server: Arc::new(server_config), gateway_tls, issued_sha256, issued, stranger }
    }

    /// An HTTP client trusting the authority and presenting `which` client certificate (or
    /// none).
    pub fn http_client(&self, which: Option<ClientCertificate>) -> reqwest::Client {
        let read = |p: &Path| std::fs::read(p).expect("pem");
        let ca = self.issued.ca_certificate.as_deref().expect("ca");
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&read(ca)).expect("ca pem"));
        if let Some(which) = which {
            let tls = self.client(which);
            let mut pem = read(&tls.client_certificate);
            pem.extend(read(match &tls.client_key {
                tideway_adapters::ClientKey::File(path) => path,
                other => panic!("test client keys are files, not {other:?}"),
            }));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        builder.build().expect("http client")
    }

    /// The gateway's TLS settings for `which` client certificate.
    pub fn client(&self, which: ClientCertificate) -> SourceTls {
        match which {
            ClientCertificate::Issued => self.issued.clone(),
            ClientCertificate::Stranger => self.stranger.clone(),
        }
    }
}

fn hex_sha256(der: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(der))
}
