//! Certificate sign-in (hardmatch's own assertion, sent by azure_identity's
//! ClientAssertionCredential) against the emulator's HTTPS token endpoint, which checks it as
//! Entra does: PEM and PKCS#12 files from the test's writers and from OpenSSL, with and without
//! passwords, and the files and passwords that must be refused with a clear message.

use std::path::Path;
use std::process::Output;

use hardmatch::emulator::Config;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain,
};
use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;

use crate::util::{fast, generated, report_rows, run, stderr, Dir, Graph};

/// An app's RSA key and a self-signed certificate for it, as `New-SelfSignedCertificate`
/// makes, in the files an admin would hand to AZURE_CLIENT_CERTIFICATE_PATH. Made with rcgen
/// (aws-lc-rs) and the pure-Rust PKCS#8 and PKCS#12 writers: the test needs no OpenSSL.
pub(crate) struct AppCertificate {
    key: rcgen::KeyPair,
    certificate: rcgen::Certificate,
}

impl AppCertificate {
    pub(crate) fn new() -> AppCertificate {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["hardmatch-app".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        AppCertificate { key, certificate }
    }

    /// The certificate alone (PEM): what the app registration holds.
    pub(crate) fn certificate_pem(&self) -> Vec<u8> {
        self.certificate.pem().into_bytes()
    }

    /// The key in PKCS#8 PEM, unencrypted.
    pub(crate) fn key_pem(&self) -> Vec<u8> {
        self.key.serialize_pem().into_bytes()
    }

    /// The key in PKCS#8 PEM, encrypted with `password` as `openssl pkcs8 -topk8` does
    /// (PBES2: PBKDF2-SHA256, AES-256-CBC).
    pub(crate) fn encrypted_key_pem(&self, password: &str) -> Vec<u8> {
        let der = self.key.serialize_der();
        let params =
            pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(2048, &[7; 16], [9; 16]).unwrap();
        pkcs8::PrivateKeyInfoRef::try_from(der.as_slice())
            .unwrap()
            .encrypt_with_params(params, password)
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    /// The certificate and its key (`pem`) in one PEM file.
    pub(crate) fn pem_with(&self, key_pem: Vec<u8>) -> Vec<u8> {
        let mut pem = self.certificate_pem();
        pem.extend(key_pem);
        pem
    }

    /// Certificate and key in a PKCS#12 file, as Export-PfxCertificate writes it.
    fn pfx(&self, password: &str, encryption: EncryptionAlgorithm) -> Vec<u8> {
        let chain = PrivateKeyChain::new(
            b"hardmatch-app".to_vec(),
            PrivateKey::from_der(&self.key.serialize_der()).unwrap(),
            [Certificate::from_der(self.certificate.der()).unwrap()],
        );
        let mut store = KeyStore::new();
        store.add_entry("hardmatch-app", KeyStoreEntry::PrivateKeyChain(chain));
        store
            .writer(password)
            .encryption_algorithm(encryption)
            .write()
            .unwrap()
    }
}

/// A graph that knows `app-1` by `registered` (a certificate, PEM), and an apply signed in
/// through the certificate file at `path`.
fn apply_with_certificate(
    registered: &[u8],
    path: &Path,
    password: Option<&str>,
) -> (Graph, Dir, Output) {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 5);
    let tls = dir.join("emulator.pem");
    let config = Config {
        client_certificates: vec![("app-1".into(), registered.to_vec())],
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
    let app = AppCertificate::new();
    let holder = Dir::new();
    let path = holder.write("app.pem", app.pem_with(app.key_pem()));
    // No --auth: AZURE_CLIENT_CERTIFICATE_PATH alone picks the certificate credential.
    let (graph, dir, out) = apply_with_certificate(&app.certificate_pem(), &path, None);
    assert_all_stamped(&graph, &dir, &out);
}

#[test]
fn an_encrypted_key_and_a_pfx_sign_in_with_their_password() {
    let app = AppCertificate::new();
    let holder = Dir::new();
    let pem_path = holder.write("app.pem", app.pem_with(app.encrypted_key_pem("pem-pass")));
    let (graph, dir, out) =
        apply_with_certificate(&app.certificate_pem(), &pem_path, Some("pem-pass"));
    assert_all_stamped(&graph, &dir, &out);

    let pfx = app.pfx("pfx-pass", EncryptionAlgorithm::PbeWithHmacSha256AndAes256);
    let pfx_path = holder.write("app.pfx", pfx);
    let (graph, dir, out) =
        apply_with_certificate(&app.certificate_pem(), &pfx_path, Some("pfx-pass"));
    assert_all_stamped(&graph, &dir, &out);
}

#[test]
fn a_pfx_without_a_password_and_a_triple_des_pfx_sign_in() {
    let app = AppCertificate::new();
    let holder = Dir::new();
    // No password at all: the empty one, as `openssl pkcs12 -passout pass:` writes it.
    let open = app.pfx("", EncryptionAlgorithm::PbeWithHmacSha256AndAes256);
    let path = holder.write("open.pfx", open);
    let (graph, dir, out) = apply_with_certificate(&app.certificate_pem(), &path, None);
    assert_all_stamped(&graph, &dir, &out);
    // Windows Server 2016 and older export TripleDES-SHA1 only.
    let legacy = app.pfx(
        "pfx-pass",
        EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
    );
    let path = holder.write("legacy.pfx", legacy);
    let (graph, dir, out) = apply_with_certificate(&app.certificate_pem(), &path, Some("pfx-pass"));
    assert_all_stamped(&graph, &dir, &out);
}

#[test]
fn a_wrong_password_is_named_and_nothing_is_written() {
    let app = AppCertificate::new();
    let holder = Dir::new();
    let pfx = app.pfx("pfx-pass", EncryptionAlgorithm::PbeWithHmacSha256AndAes256);
    let pem = app.pem_with(app.encrypted_key_pem("pem-pass"));
    for (name, file) in [("app.pfx", pfx), ("app.pem", pem)] {
        let path = holder.write(name, file);
        let (graph, _dir, out) =
            apply_with_certificate(&app.certificate_pem(), &path, Some("not-it"));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(name) && err.contains("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
            "{err}"
        );
        assert!(
            !err.contains("not-it"),
            "the password never reaches an error"
        );
        assert_eq!(graph.stats().tokens_issued, 0);
    }
}

#[test]
fn a_certificate_the_app_does_not_have_is_refused_by_name_and_nothing_is_written() {
    let registered = AppCertificate::new();
    let other = AppCertificate::new();
    let holder = Dir::new();
    let key_pem = other.key_pem();
    let path = holder.write("app.pem", other.pem_with(key_pem.clone()));
    let (graph, _dir, out) = apply_with_certificate(&registered.certificate_pem(), &path, None);
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
    let app = AppCertificate::new();
    let holder = Dir::new();
    let path = holder.write("app.pem", app.certificate_pem());
    let (_, _, out) = apply_with_certificate(&app.certificate_pem(), &path, None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("app.pem") && err.contains("no usable PEM private key"),
        "{err}"
    );
}

#[test]
fn a_key_that_belongs_to_none_of_the_certificates_says_so() {
    let app = AppCertificate::new();
    let stranger = AppCertificate::new();
    let holder = Dir::new();
    let path = holder.write("app.pem", app.pem_with(stranger.key_pem()));
    let (graph, _, out) = apply_with_certificate(&app.certificate_pem(), &path, None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("app.pem") && err.contains("no certificate in the file holds the private key"),
        "{err}"
    );
    assert_eq!(graph.stats().tokens_issued, 0);
}

/// A certificate file OpenSSL wrote (tests/fixtures/certificate/README.md).
fn openssl_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/certificate")
        .join(name)
}

#[test]
fn certificate_files_openssl_wrote_sign_in() {
    let registered = std::fs::read(openssl_fixture("app.crt")).unwrap();
    for (file, password) in [
        ("pkcs1.pem", None),
        ("pkcs8-encrypted.pem", Some("fixture-pass")),
        ("aes.pfx", Some("fixture-pass")),
        ("legacy.pfx", Some("fixture-pass")),
        ("no-password.pfx", None),
    ] {
        let (graph, dir, out) =
            apply_with_certificate(&registered, &openssl_fixture(file), password);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        assert_all_stamped(&graph, &dir, &out);
    }
}

#[test]
fn a_key_in_openssls_traditional_encryption_is_refused_with_how_to_convert_it() {
    let registered = std::fs::read(openssl_fixture("app.crt")).unwrap();
    let path = openssl_fixture("traditional-encrypted.pem");
    let (graph, _, out) = apply_with_certificate(&registered, &path, Some("fixture-pass"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("traditional-encrypted.pem") && err.contains("openssl pkcs8 -topk8"),
        "{err}"
    );
    assert_eq!(graph.stats().tokens_issued, 0);
}
