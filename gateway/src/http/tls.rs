//! The main listener over TLS, and the client certificate a connection presented.
//!
//! With `[server.tls]` the gateway serves HTTPS with its own certificate. With `client_ca` it
//! also asks every client for a certificate chaining to that authority, without demanding one
//! (most clients authenticate with signed assertions alone); a connection that presents one is
//! remembered by the certificate's SHA-256, which `/token` and every FHIR request compare with
//! what the client registered (`tls_client_certificate_sha256`, RFC 8705 certificate-bound
//! tokens).

use std::any::Any;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::ServerTls;

/// The SHA-256 (lower-case hex) of the certificate a TLS connection's client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(pub String);

/// The rustls configuration `[server.tls]` describes. Errors name the file, never its content.
pub fn server_config(tls: &ServerTls) -> Result<rustls::ServerConfig, String> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.certificate)
        .and_then(Iterator::collect)
        .map_err(|_| format!("{} is not a PEM certificate chain", tls.certificate.display()))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|_| format!("{} is not a PEM private key", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for authority in
                CertificateDer::pem_file_iter(ca).map_err(|_| format!("cannot read {}", ca.display()))?
            {
                let authority =
                    authority.map_err(|_| format!("{} is not a PEM certificate", ca.display()))?;
                roots
                    .add(authority)
                    .map_err(|_| format!("{} holds a certificate rustls refuses", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client certificate authority {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certificates, key)
        .map_err(|e| format!("{} and {}: {e}", tls.certificate.display(), tls.key.display()))
}

/// Remembers the certificate a new TLS connection's client presented, if any (actix-web's
/// `on_connect`).
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = connection.downcast_ref::<Tls>() else { return };
    if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
        data.insert(ClientCertificate(hex::encode(Sha256::digest(leaf.as_ref()))));
    }
}

/// The certificate `req`'s connection presented, if any.
pub fn certificate_of(req: &HttpRequest) -> Option<String> {
    req.conn_data::<ClientCertificate>().map(|c| c.0.clone())
}
