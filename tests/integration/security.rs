//! Security checks as tests (issue 6): no secret in any output, hostile UPNs cannot change a
//! Graph query, report cells cannot run as formulas, files are private, plain http only to
//! loopback. Each test drives the real binary against the emulator, at `-vv` where it can.

use std::process::{Command, Output};

use hardmatch::emulator::Config;

use crate::util::{fast, generated, run, sample, stderr, stdout, Dir, Graph, TOKEN};

// ---------------------------------------------------------------------------------------
// Secrets

/// A value no output could contain by chance: a tag and 24 letters drawn from an alphabet
/// without hex digits (so no GUID or request id can hold a piece of it).
fn recognisable(tag: &str) -> String {
    const LETTERS: &[u8] = b"ghjkmnpqrstvwxyzGHJKMNPQRSTVWXYZ";
    let mut value = String::from(tag);
    for _ in 0..2 {
        let mut bits = uuid::Uuid::new_v4().as_u128();
        for _ in 0..12 {
            value.push(LETTERS[(bits & 31) as usize] as char);
            bits >>= 10;
        }
    }
    value
}

/// Any ten characters in a row of a secret are long enough to matter.
const PIECE: usize = 10;

#[track_caller]
fn assert_absent(secrets: &[String], place: &str, text: &str) {
    for secret in secrets {
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(PIECE) {
            let piece: String = window.iter().collect();
            assert!(
                !text.contains(&piece),
                "{place} holds {piece:?}, a piece of a secret:\n{text}"
            );
        }
    }
}

/// What one or more runs left behind: each run's stdout and stderr, and every file in the
/// directory, with XLSX workbooks unzipped into their XML parts.
fn everything_written(dir: &Dir, outputs: &[(String, Output)]) -> Vec<(String, String)> {
    let mut places = Vec::new();
    for (label, out) in outputs {
        places.push((format!("{label}: stdout"), stdout(out)));
        places.push((format!("{label}: stderr"), stderr(out)));
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        if name.ends_with(".xlsx") {
            for (part, xml) in unzip(&bytes) {
                places.push((format!("{name}/{part}"), xml));
            }
        } else {
            places.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    places
}

fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("an XLSX");
    (0..archive.len())
        .map(|i| {
            let mut part = archive.by_index(i).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut part, &mut text).unwrap();
            (part.name().to_string(), text)
        })
        .collect()
}

/// Runs every command that talks to Graph, each writing its own files: a snapshot, a plan as
/// JSON (read by lookups) and as XLSX (read in bulk), an apply of the JSON plan, a rollback
/// of its journal, and a clear.
fn every_command(command: impl Fn(&[&str]) -> Command) -> Vec<(String, Output)> {
    let steps: [&[&str]; 6] = [
        &["snapshot", "-o", "tenant-copy.json"],
        &["plan", "export.csv", "-o", "plan.json", "--read", "lookup"],
        &["plan", "export.csv", "-o", "plan.xlsx", "--read", "bulk"],
        &["apply", "plan.json", "-o", "applied.xlsx", "--yes"],
        &[
            "rollback",
            "applied.xlsx.journal",
            "-o",
            "rolled-back.json",
            "--yes",
        ],
        &["clear", "export.csv", "-o", "cleared.csv", "--yes"],
    ];
    steps
        .iter()
        .map(|args| {
            let out = run(&mut command(args));
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{args:?} failed: {}",
                stderr(&out)
            );
            (args.join(" "), out)
        })
        .collect()
}

#[track_caller]
fn assert_logged_verbosely(outputs: &[(String, Output)]) {
    for (label, out) in outputs {
        let err = stderr(out);
        assert!(
            err.contains(" INFO ") && err.contains(" DEBUG ") && err.contains("GET /v1.0/"),
            "{label} logged at -vv:\n{err}"
        );
    }
}

#[test]
fn a_client_secret_and_the_tokens_it_buys_appear_nowhere_at_the_most_verbose_level() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 6);
    let secret = recognisable("ClientSecret");
    let cert = dir.join("emulator.pem");
    let graph = Graph::start(
        tenant,
        Config {
            clients: vec![("app-1".into(), secret.clone())],
            tls_cert_out: Some(cert.clone()),
            ..fast()
        },
    );
    let url = graph.url().to_string();
    let outputs = every_command(|args| {
        let mut cmd = dir.hardmatch();
        cmd.args(args)
            .args(["-vv", "--auth", "secret", "--graph-url", &url])
            .args(["--login-url", &url, "--ca-cert"])
            .arg(&cert)
            .env("AZURE_TENANT_ID", "generated")
            .env("AZURE_CLIENT_ID", "app-1")
            .env("AZURE_CLIENT_SECRET", &secret)
            .env_remove("HARDMATCH_ACCESS_TOKEN");
        cmd
    });
    assert_logged_verbosely(&outputs);
    assert!(
        outputs
            .iter()
            .all(|(_, out)| stderr(out).contains("sign-in:")),
        "-vv shows the sign-in steps"
    );
    let mut secrets = vec![secret];
    secrets.extend(graph.running.emulator.issued_tokens());
    assert!(secrets.len() >= 7, "every run signed in: {}", secrets.len());
    for (place, text) in everything_written(&dir, &outputs) {
        assert_absent(&secrets, &place, &text);
    }
}

#[test]
fn a_bearer_token_from_the_environment_appears_nowhere_at_the_most_verbose_level() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 6);
    let token = recognisable("BearerToken");
    let graph = Graph::start(
        tenant,
        Config {
            access_token: Some(token.clone()),
            ..fast()
        },
    );
    let outputs = every_command(|args| {
        let mut cmd = graph.hardmatch(&dir, args);
        cmd.arg("-vv").env("HARDMATCH_ACCESS_TOKEN", &token);
        cmd
    });
    assert_logged_verbosely(&outputs);
    for (place, text) in everything_written(&dir, &outputs) {
        assert_absent(std::slice::from_ref(&token), &place, &text);
    }
}

#[test]
fn a_wrong_secret_or_a_refused_token_leaves_no_trace_in_the_error() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 3);
    let right = recognisable("RightSecret");
    let wrong = recognisable("WrongSecret");
    let refused = recognisable("RefusedToken");
    let cert = dir.join("emulator.pem");
    let graph = Graph::start(
        tenant,
        Config {
            clients: vec![("app-1".into(), right.clone())],
            tls_cert_out: Some(cert.clone()),
            ..fast()
        },
    );
    let url = graph.url().to_string();
    let mut outputs = Vec::new();
    for args in [
        &["plan", "export.csv", "-o", "plan.csv"][..],
        &["apply", "export.csv", "-o", "applied.csv", "--yes"],
        &["snapshot", "-o", "tenant-copy.json"],
    ] {
        let out = run(dir
            .hardmatch()
            .args(args)
            .args(["-vv", "--auth", "secret", "--graph-url", &url])
            .args(["--login-url", &url, "--ca-cert"])
            .arg(&cert)
            .env("AZURE_TENANT_ID", "generated")
            .env("AZURE_CLIENT_ID", "app-1")
            .env("AZURE_CLIENT_SECRET", &wrong)
            .env_remove("HARDMATCH_ACCESS_TOKEN"));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("AADSTS7000215"), "{}", stderr(&out));
        outputs.push((format!("wrong secret: {args:?}"), out));

        let out = run(graph
            .hardmatch(&dir, args)
            .args(["-vv", "--ca-cert"])
            .arg(&cert)
            .env("HARDMATCH_ACCESS_TOKEN", &refused));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("InvalidAuthenticationToken"),
            "{}",
            stderr(&out)
        );
        outputs.push((format!("refused token: {args:?}"), out));
    }
    assert_eq!(graph.stats().writes_total, 0);
    for (place, text) in everything_written(&dir, &outputs) {
        assert_absent(
            &[right.clone(), wrong.clone(), refused.clone()],
            &place,
            &text,
        );
    }
}

/// A word that looks like a real credential: a JWT, an Entra client secret (`xxx8Q~...`), or
/// 30 or more token characters mixing upper case, lower case and digits.
fn real_looking_secret(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "~._-+/=".contains(c)))
        .find(|word| {
            let mixed = word.chars().any(|c| c.is_ascii_uppercase())
                && word.chars().any(|c| c.is_ascii_lowercase())
                && word.chars().any(|c| c.is_ascii_digit());
            word.starts_with("eyJ") || word.contains("Q~") || (word.len() >= 30 && mixed)
        })
}

#[test]
fn help_shows_no_secret_even_when_the_environment_holds_them() {
    let dir = Dir::new();
    let secrets: Vec<String> = ["AzureSecret", "HmToken", "EmulatorSecret", "EmulatorToken"]
        .map(recognisable)
        .into();
    assert_eq!(real_looking_secret("eyJhbGciOi.x"), Some("eyJhbGciOi.x"));
    assert!(real_looking_secret("abc8Q~defghijklmnopqrstuvwxyz0123456789AB").is_some());
    for command in [
        "", "convert", "ids", "plan", "apply", "clear", "rollback", "snapshot", "emulator",
    ] {
        let out = run(dir
            .hardmatch()
            .args(command.split_whitespace())
            .arg("--help")
            .env("AZURE_CLIENT_SECRET", &secrets[0])
            .env("HARDMATCH_ACCESS_TOKEN", &secrets[1])
            .env("HARDMATCH_EMULATOR_CLIENT_SECRET", &secrets[2])
            .env("HARDMATCH_EMULATOR_ACCESS_TOKEN", &secrets[3]));
        assert_eq!(out.status.code(), Some(0), "{command} --help");
        let help = stdout(&out);
        assert_absent(&secrets, &format!("{command} --help"), &help);
        assert_eq!(
            real_looking_secret(&help),
            None,
            "{command} --help:\n{help}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Plain http

#[test]
fn plain_http_to_a_graph_or_sign_in_host_that_is_not_loopback_is_refused_by_every_command() {
    let dir = Dir::new();
    dir.write("r.journal", "");
    let export = sample("csvde.csv");
    let export = export.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["plan", export, "-o", "p.csv"],
        &["apply", export, "-o", "a.csv", "--yes"],
        &["clear", export, "-o", "c.csv", "--yes"],
        &["rollback", "r.journal", "-o", "r.csv", "--yes"],
        &["snapshot", "-o", "t.json"],
    ];
    for url in [
        "http://graph.example.com",
        "HTTP://GRAPH.EXAMPLE.COM",
        "http://127.0.0.1.evil.com",
        "http://localhost.evil.com",
        "http://127.0.0.1@evil.com",
        "http://admin:hunter2@127.0.0.1:9",
        "https://admin:hunter2@graph.microsoft.com",
        "ftp://127.0.0.1",
    ] {
        for args in commands {
            let out = run(dir
                .hardmatch()
                .args(args)
                .args(["--graph-url", url])
                .env("HARDMATCH_ACCESS_TOKEN", TOKEN));
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?} {url}: {err}");
            assert!(
                err.contains("--graph-url") && err.contains("refusing"),
                "{url}: {err}"
            );
            assert!(!err.contains("hunter2") && !err.contains(TOKEN), "{err}");
        }
    }
    for url in [
        "http://login.example.com",
        "http://127.0.0.1.evil.com",
        "https://admin:hunter2@login.example.com",
    ] {
        let out = run(dir
            .hardmatch()
            .args(["plan", export, "-o", "p.csv", "--auth", "secret"])
            .args(["--login-url", url])
            .env("AZURE_TENANT_ID", "t")
            .env("AZURE_CLIENT_ID", "c")
            .env("AZURE_CLIENT_SECRET", "emulator-only-secret")
            .env_remove("HARDMATCH_ACCESS_TOKEN"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("--login-url") && err.contains("refusing"),
            "{url}: {err}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains("emulator-only-secret"),
            "{err}"
        );
    }
}

#[test]
fn loopback_in_any_spelling_is_plain_http_that_works() {
    let dir = Dir::new();
    let graph = Graph::sample();
    let port = graph.url().rsplit(':').next().unwrap().to_string();
    for host in [
        "HTTP://127.0.0.1",
        "http://0x7f.1",
        "http://2130706433",
        "http://127.1",
    ] {
        let url = format!("{host}:{port}");
        let out = run(dir
            .hardmatch()
            .args(["plan"])
            .arg(sample("csvde.csv"))
            .args(["-o", "p.csv", "-v", "--graph-url", &url])
            .env("HARDMATCH_ACCESS_TOKEN", TOKEN));
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("Graph at http://127.0.0.1:{port}")),
            "{url} is read as 127.0.0.1: {}",
            stderr(&out)
        );
    }
}
