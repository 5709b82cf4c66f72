//! Client assertions: certificate sign-in, checked as Entra checks it. The assertion is a JWT
//! whose `x5t` header names a certificate registered for the app (base64 of its SHA-1
//! thumbprint), signed RS256 with that certificate's key, with `iss` and `sub` the client id,
//! `aud` the token endpoint, and the clock inside `nbf`..`exp` (graph-facts.md, Sign-in).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use serde_json::Value;

/// The assertion type a certificate sign-in must name.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far the caller's clock may be off, as Entra allows.
const CLOCK_SKEW_SECS: i64 = 300;

/// Why Entra refuses an assertion: its AADSTS code and text.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: u32,
    pub text: String,
}

fn reject(code: u32, text: impl Into<String>) -> Rejection {
    Rejection {
        code,
        text: text.into(),
    }
}

/// Checks `assertion` from `client_id` against the app's registered certificates (PEM).
/// `token_url` is the endpoint the request reached; `now` is Unix seconds.
pub fn check(
    assertion: &str,
    client_id: &str,
    certificates: &[&[u8]],
    token_url: &str,
    now: i64,
) -> Result<(), Rejection> {
    let malformed = || reject(50027, "JWT token is invalid or malformed.");
    let mut parts = assertion.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let json = |part: &str| -> Result<Value, Rejection> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed())?;
        serde_json::from_slice(&bytes).map_err(|_| malformed())
    };
    let (head, claims) = (json(header)?, json(payload)?);
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
    if head["alg"] != "RS256" {
        return Err(malformed());
    }
    let thumbprint = head["x5t"]
        .as_str()
        .and_then(decode_thumbprint)
        .ok_or_else(malformed)?;
    let certificate = certificates
        .iter()
        .filter_map(|pem| X509::from_pem(pem).ok())
        .find(|c| {
            c.digest(MessageDigest::sha1())
                .is_ok_and(|d| d.as_ref() == thumbprint.as_slice())
        })
        .ok_or_else(|| {
            reject(
                700027,
                format!(
                    "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                    hex::encode_upper(&thumbprint)
                ),
            )
        })?;
    let signed = format!("{header}.{payload}");
    let verified = certificate
        .public_key()
        .and_then(|key| {
            let mut verifier = Verifier::new(MessageDigest::sha256(), &key)?;
            verifier.update(signed.as_bytes())?;
            verifier.verify(&signature)
        })
        .unwrap_or(false);
    if !verified {
        return Err(reject(
            700027,
            "Client assertion contains an invalid signature. [Reason - The signature does not verify.]",
        ));
    }
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return Err(reject(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let audience = claims["aud"].as_str().map(|aud| aud.trim_end_matches('/'));
    if audience != Some(token_url) {
        return Err(reject(
            700016,
            format!("The client assertion's audience is not {token_url}."),
        ));
    }
    let exp = claims["exp"].as_i64().ok_or_else(malformed)?;
    let nbf = claims["nbf"].as_i64().unwrap_or(i64::MIN);
    if now > exp + CLOCK_SKEW_SECS || now + CLOCK_SKEW_SECS < nbf {
        return Err(reject(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

/// `x5t` is base64url in the JWT standard; the Azure SDKs send standard base64. Entra takes both.
fn decode_thumbprint(x5t: &str) -> Option<Vec<u8>> {
    let trimmed = x5t.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
        .or_else(|| STANDARD.decode(x5t).ok())
        .filter(|t| t.len() == 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::{PKey, Private};
    use openssl::sign::Signer;

    const URL: &str = "https://127.0.0.1:1/contoso.onmicrosoft.com/oauth2/v2.0/token";

    /// An RSA key (as OpenSSL's type, which signs the assertions) and its self-signed
    /// certificate's PEM, made by rcgen.
    fn key_and_certificate() -> (PKey<Private>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let certificate = rcgen::CertificateParams::default()
            .self_signed(&key)
            .unwrap();
        (
            PKey::private_key_from_pem(key.serialize_pem().as_bytes()).unwrap(),
            certificate.pem().into_bytes(),
        )
    }

    fn assertion(key: &PKey<Private>, pem: &[u8], claims: Value) -> String {
        let thumbprint = X509::from_pem(pem)
            .unwrap()
            .digest(MessageDigest::sha1())
            .unwrap();
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": STANDARD.encode(thumbprint)});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
        signer.update(signed.as_bytes()).unwrap();
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap())
        )
    }

    fn claims(client: &str, aud: &str, exp: i64) -> Value {
        serde_json::json!({"aud": aud, "iss": client, "sub": client, "exp": exp, "nbf": exp - 300, "jti": "1"})
    }

    #[test]
    fn a_signed_assertion_passes_and_every_flaw_is_named() {
        let (key, pem) = key_and_certificate();
        let (other_key, other_pem) = key_and_certificate();
        let now = 1_800_000_000;
        let good = assertion(&key, &pem, claims("app", URL, now + 300));
        assert_eq!(check(&good, "app", &[&pem], URL, now), Ok(()));
        let code = |assertion: &str, client: &str, certs: &[&[u8]], now: i64| {
            check(assertion, client, certs, URL, now).unwrap_err().code
        };
        // Signed by a key whose certificate the app does not have.
        assert_eq!(code(&good, "app", &[&other_pem], now), 700027);
        // A registered thumbprint with another key's signature.
        let forged = assertion(&other_key, &pem, claims("app", URL, now + 300));
        assert_eq!(code(&forged, "app", &[&pem], now), 700027);
        assert_eq!(code(&good, "other-app", &[&pem], now), 700021);
        let elsewhere = assertion(
            &key,
            &pem,
            claims("app", "https://login.example/t", now + 300),
        );
        assert_eq!(code(&elsewhere, "app", &[&pem], now), 700016);
        assert_eq!(code(&good, "app", &[&pem], now + 3600), 700024);
        assert_eq!(code("not.a.jwt", "app", &[&pem], now), 50027);
    }
}
