//! Certificate sign-in through azure_identity, against the emulator's HTTPS token endpoint:
//! a PEM file and a PKCS#12 file, as AZURE_CLIENT_CERTIFICATE_PATH names them, and a
//! certificate the app does not have.

use std::path::Path;
use std::process::Output;

use hardmatch::emulator::Config;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::X509;

use crate::util::{fast, generated, report_rows, run, stderr, Dir, Graph};

/// An RSA key and a self-signed certificate for it, as `New-SelfSignedCertificate` makes,
/// made by rcgen; as OpenSSL types, which bundle them into the PEM and PKCS#12 files tested.
pub(crate) fn key_and_certificate() -> (PKey<Private>, X509) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hardmatch-app");
    let certificate = params.self_signed(&key).unwrap();
    (
        PKey::private_key_from_pem(key.serialize_pem().as_bytes()).unwrap(),
        X509::from_pem(certificate.pem().as_bytes()).unwrap(),
    )
}

/// A graph that knows `app-1` by `certificate`, and an apply signed in through the certificate
/// file at `path`.
fn apply_with_certificate(
    certificate: &X509,
    path: &Path,
    password: Option<&str>,
) -> (Graph, Dir, Output) {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 5);
    let tls = dir.join("emulator.pem");
    let config = Config {
        client_certificates: vec![("app-1".into(), certificate.to_pem().unwrap())],
        tls_cert_out: Some(tls.clone()),
        ..fast()
    };
    let graph = Graph::start(tenant, config);
    let url = graph.url().to_string();
    let mut command = dir.hardmatch();
    command
        .args([
            "apply",
            "--yes",
            "-q",
            "--graph-url",
            &url,
            "--login-url",
            &url,
        ])
        .arg("--ca-cert")
        .arg(&tls)
        .arg(&export)
        .args(["-o", "r.csv"])
        .env("AZURE_TENANT_ID", "generated")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", path)
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("HARDMATCH_ACCESS_TOKEN");
    match password {
        Some(p) => command.env("AZURE_CLIENT_CERTIFICATE_PASSWORD", p),
        None => command.env_remove("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
    };
    let out = run(&mut command);
    (graph, dir, out)
}

fn assert_all_stamped(graph: &Graph, dir: &Dir, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"), "{rows:?}");
    assert!(graph.stats().tokens_issued >= 1);
}

#[test]
fn a_pem_certificate_and_key_sign_in_without_any_other_setting() {
    let (key, certificate) = key_and_certificate();
    let holder = Dir::new();
    let mut pem = certificate.to_pem().unwrap();
    pem.extend(key.private_key_to_pem_pkcs8().unwrap());
    let path = holder.write("app.pem", pem);
    // No --auth: AZURE_CLIENT_CERTIFICATE_PATH alone picks the certificate credential.
    let (graph, dir, out) = apply_with_certificate(&certificate, &path, None);
    assert_all_stamped(&graph, &dir, &out);
}

#[test]
fn an_encrypted_key_and_a_pfx_sign_in_with_their_password() {
    let (key, certificate) = key_and_certificate();
    let holder = Dir::new();
    let mut pem = certificate.to_pem().unwrap();
    pem.extend(
        key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"pem-pass")
            .unwrap(),
    );
    let pem_path = holder.write("app.pem", pem);
    let (graph, dir, out) = apply_with_certificate(&certificate, &pem_path, Some("pem-pass"));
    assert_all_stamped(&graph, &dir, &out);

    let mut builder = Pkcs12::builder();
    builder.name("hardmatch-app").pkey(&key).cert(&certificate);
    let pfx = builder.build2("pfx-pass").unwrap().to_der().unwrap();
    let pfx_path = holder.write("app.pfx", pfx);
    let (graph, dir, out) = apply_with_certificate(&certificate, &pfx_path, Some("pfx-pass"));
    assert_all_stamped(&graph, &dir, &out);
}

#[test]
fn a_certificate_the_app_does_not_have_is_refused_by_name_and_nothing_is_written() {
    let (_, registered) = key_and_certificate();
    let (key, other) = key_and_certificate();
    let holder = Dir::new();
    let mut pem = other.to_pem().unwrap();
    let key_pem = key.private_key_to_pem_pkcs8().unwrap();
    pem.extend(&key_pem);
    let path = holder.write("app.pem", pem);
    let (graph, _dir, out) = apply_with_certificate(&registered, &path, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("client certificate") && err.contains("AADSTS700027"),
        "{err}"
    );
    let key_text = String::from_utf8(key_pem).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    assert!(!err.contains(key_body), "the key never reaches an error");
    assert_eq!(graph.stats().writes_total, 0);
}

#[test]
fn a_pem_file_without_a_key_says_so() {
    let (_, certificate) = key_and_certificate();
    let holder = Dir::new();
    let path = holder.write("app.pem", certificate.to_pem().unwrap());
    let (_, _, out) = apply_with_certificate(&certificate, &path, None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("app.pem") && err.contains("no usable PEM private key"),
        "{err}"
    );
}
