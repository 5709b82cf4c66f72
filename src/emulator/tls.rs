//! `--tls`: a self-signed certificate for 127.0.0.1 and localhost, generated at start and
//! written to a file, so that HTTPS-only clients (Microsoft's azure_identity) can be tested.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

pub(crate) fn acceptor(cert_out: &Path) -> std::io::Result<TlsAcceptor> {
    let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| other(&e))?;
    std::fs::write(cert_out, certified.cert.pem())?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| other(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
