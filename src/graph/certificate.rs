//! Certificate sign-in's client assertion: reads the file AZURE_CLIENT_CERTIFICATE_PATH names
//! (PEM with the certificate and its RSA key, or PKCS#12) and signs the JWT Entra expects
//! (docs/graph.md, Sign-in), which azure_identity's ClientAssertionCredential sends. Signing
//! is aws-lc-rs, the crypto rustls already links; the file formats are read by pure-Rust
//! parsers. No OpenSSL, so the same code builds for Windows.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use azure_core::error::ErrorKind;
use azure_core::http::ClientMethodOptions;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use x509_parser::prelude::{FromDer, X509Certificate};

/// How long an assertion is good for, as azure_identity's own certificate credential signs.
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// Why the certificate file cannot sign: said without its contents.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CertificateError(String);

fn unusable(why: impl Into<String>) -> CertificateError {
    CertificateError(why.into())
}

/// An RSA key and the certificate that holds its public half.
struct SigningKey {
    key: RsaKeyPair,
    /// The certificate's DER, whose SHA-1 names the key to Entra (`x5t`).
    certificate: Vec<u8>,
}

/// What a certificate file holds, decrypted.
struct Contents {
    /// Private keys, PKCS#8 or PKCS#1 DER.
    keys: Vec<Vec<u8>>,
    /// Certificates, DER.
    certificates: Vec<Vec<u8>>,
}

/// Reads the key and its certificate from `path`: PEM (certificates and a PKCS#8 or PKCS#1
/// key, encrypted PKCS#8 with `password`) or PKCS#12 (with `password`, or none).
fn signing_key(path: &Path, password: Option<&str>) -> Result<SigningKey, CertificateError> {
    let bytes = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
    let Contents { keys, certificates } = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        from_pem(&bytes, password)?
    } else {
        from_pkcs12(&bytes, password)?
    };
    let key = keys
        .iter()
        .find_map(|der| {
            RsaKeyPair::from_pkcs8(der)
                .or_else(|_| RsaKeyPair::from_der(der))
                .ok()
        })
        .ok_or_else(|| {
            unusable("the private key is not an RSA key (Entra signs in with RSA keys only)")
        })?;
    let certificate = certificates
        .into_iter()
        .find(|der| public_key_of(der).is_some_and(|public| public == key.public_key().as_ref()))
        .ok_or_else(|| unusable("no certificate in the file holds the private key's public key"))?;
    Ok(SigningKey { key, certificate })
}

/// The RSAPublicKey DER a certificate holds, as aws-lc-rs shows a key pair's public half.
fn public_key_of(certificate: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = X509Certificate::from_der(certificate).ok()?;
    Some(parsed.public_key().subject_public_key.data.to_vec())
}

/// The private keys and certificates of a PEM file.
fn from_pem(bytes: &[u8], password: Option<&str>) -> Result<Contents, CertificateError> {
    let blocks = pem::parse_many(bytes).map_err(|e| unusable(format!("not a PEM file: {e}")))?;
    let certificates: Vec<Vec<u8>> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents().to_vec())
        .collect();
    if certificates.is_empty() {
        return Err(unusable("no PEM certificate in the file"));
    }
    let mut keys = Vec::new();
    for block in &blocks {
        match block.tag() {
            "PRIVATE KEY" => keys.push(block.contents().to_vec()),
            "RSA PRIVATE KEY" if block.headers().get("Proc-Type").is_some() => {
                return Err(unusable(
                    "the key is encrypted in OpenSSL's traditional format, which hardmatch does not read; \
                     convert it to PKCS#8: openssl pkcs8 -topk8 -in old.pem -out new.pem",
                ))
            }
            "RSA PRIVATE KEY" => keys.push(block.contents().to_vec()),
            "ENCRYPTED PRIVATE KEY" => keys.push(decrypt_pkcs8(block.contents(), password)?),
            _ => {}
        }
    }
    if keys.is_empty() {
        return Err(unusable(
            "no usable PEM private key in the file (set AZURE_CLIENT_CERTIFICATE_PASSWORD if it is encrypted)",
        ));
    }
    Ok(Contents { keys, certificates })
}

/// An encrypted PKCS#8 key (PBES2, as OpenSSL writes it), decrypted.
fn decrypt_pkcs8(der: &[u8], password: Option<&str>) -> Result<Vec<u8>, CertificateError> {
    let password = password.ok_or_else(|| {
        unusable("the PEM private key is encrypted: set AZURE_CLIENT_CERTIFICATE_PASSWORD")
    })?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
        .map_err(|e| unusable(format!("the encrypted PEM private key is malformed: {e}")))?;
    let key = encrypted.decrypt(password).map_err(|_| {
        unusable("cannot decrypt the PEM private key: wrong AZURE_CLIENT_CERTIFICATE_PASSWORD, or an encryption other than PBES2")
    })?;
    Ok(key.as_bytes().to_vec())
}

/// The private keys and certificates of a PKCS#12 file. A file without a
/// password is read with the empty one, as `openssl pkcs12 -passout pass:` writes it.
fn from_pkcs12(bytes: &[u8], password: Option<&str>) -> Result<Contents, CertificateError> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password.unwrap_or(""))
        .map_err(|e| match e {
            p12_keystore::error::Error::MacError(_) => unusable(
                "wrong or missing AZURE_CLIENT_CERTIFICATE_PASSWORD: the PKCS#12 file's integrity check fails with it",
            ),
            other => unusable(format!(
                "neither PEM nor a PKCS#12 file hardmatch reads ({other}; a wrong AZURE_CLIENT_CERTIFICATE_PASSWORD can fail this way too)"
            )),
        })?;
    let keys: Vec<Vec<u8>> = archive
        .keys
        .iter()
        .map(|bag| bag.key.as_der().to_vec())
        .collect();
    if keys.is_empty() {
        return Err(unusable("no private key in the PKCS#12 file"));
    }
    let certificates = archive
        .certs
        .iter()
        .map(|bag| bag.cert.as_der().to_vec())
        .collect();
    Ok(Contents { keys, certificates })
}

/// Signs client assertions for one app at one token endpoint. Cloned into each new
/// credential; the key is shared, never copied, and never printed.
#[derive(Clone)]
pub(crate) struct CertificateAssertion {
    key: Arc<RsaKeyPair>,
    /// The JWT header, base64url: RS256 and the certificate's thumbprint.
    header: String,
    client_id: String,
    /// The token endpoint, the assertion's audience.
    audience: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    /// Reads the certificate file at `path` for `client_id`, whose assertions go to
    /// `token_url`. Errors say what is wrong, never what the file holds.
    pub(crate) fn from_file(
        path: &Path,
        password: Option<&str>,
        client_id: String,
        token_url: String,
    ) -> Result<CertificateAssertion, CertificateError> {
        let SigningKey { key, certificate } = signing_key(path, password)?;
        let thumbprint = digest(&SHA1_FOR_LEGACY_USE_ONLY, &certificate);
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": URL_SAFE_NO_PAD.encode(thumbprint.as_ref()),
        });
        Ok(CertificateAssertion {
            key: Arc::new(key),
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            client_id,
            audience: token_url,
        })
    }

    /// The signed JWT, good from `now` (Unix seconds) for five minutes.
    fn sign(&self, now: i64) -> Result<String, CertificateError> {
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signed = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| unusable("the RSA key cannot sign"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[async_trait::async_trait]
impl azure_identity::ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.sign(chrono::Utc::now().timestamp())
            .map_err(|e| azure_core::Error::with_message(ErrorKind::Credential, e.0))
    }
}
