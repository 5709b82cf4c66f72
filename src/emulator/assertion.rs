//! Client assertions: certificate sign-in, checked as Entra checks it. The assertion is a JWT
//! whose `x5t` header names a certificate registered for the app (base64 of its SHA-1
//! thumbprint), signed RS256 with that certificate's key, with `iss` and `sub` the client id,
//! `aud` the token endpoint, and the clock inside `nbf`..`exp` (docs/graph.md, Sign-in).

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

/// The assertion type a certificate sign-in must name.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far the caller's clock may be off, as Entra allows.
const CLOCK_SKEW_SECS: i64 = 300;

/// Why Entra refuses an assertion: its AADSTS code and text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: u32,
    pub(crate) text: String,
}

fn reject(code: u32, text: impl Into<String>) -> Rejection {
    Rejection {
        code,
        text: text.into(),
    }
}

/// Checks `assertion` from `client_id` against the app's registered certificates (PEM).
/// `token_url` is the endpoint the request reached; `now` is Unix seconds.
pub(crate) fn check(
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
        .filter_map(|pem| pem::parse(pem).ok())
        .map(pem::Pem::into_contents)
        .find(|der| digest(&SHA1_FOR_LEGACY_USE_ONLY, der).as_ref() == thumbprint.as_slice())
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
    let verified = x509_parser::parse_x509_certificate(&certificate).is_ok_and(|(_, parsed)| {
        UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            &parsed.public_key().subject_public_key.data,
        )
        .verify(signed.as_bytes(), &signature)
        .is_ok()
    });
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
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

    const URL: &str = "https://127.0.0.1:1/contoso.onmicrosoft.com/oauth2/v2.0/token";

    fn key_and_certificate() -> (RsaKeyPair, Vec<u8>) {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["hardmatch test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let signer = RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
        (signer, certificate.pem().into_bytes())
    }

    fn assertion(key: &RsaKeyPair, pem: &[u8], claims: Value) -> String {
        let thumbprint = digest(
            &SHA1_FOR_LEGACY_USE_ONLY,
            pem::parse(pem).unwrap().contents(),
        );
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": STANDARD.encode(thumbprint)});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
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
