//! Security checks as tests (issue 6): no secret in any output, hostile UPNs cannot change a
//! Graph query, report cells cannot run as formulas, files are private, plain http only to
//! loopback. Each test drives the real binary against the emulator, at `-vv` where it can.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use hardmatch::anchor;
use hardmatch::emulator::odata::{self, Filter, Property};
use hardmatch::emulator::Config;
use hardmatch::report::{from_excel_safe, ID_COLUMNS};
use hardmatch::tenant::{Domain, Tenant, User};

use crate::util::{fast, generated, report_rows, run, sample, stderr, stdout, Dir, Graph, TOKEN};

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
            bits >>= 5;
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
    let outputs = every_command(|args| {
        let mut cmd = graph.hardmatch_with_secret(&dir, args, &secret);
        cmd.arg("-vv");
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
fn a_certificate_key_its_password_and_the_tokens_it_buys_appear_nowhere_at_the_most_verbose_level()
{
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 6);
    let app = crate::sign_in::AppCertificate::new();
    let password = recognisable("KeyPassword");
    let encrypted_key = app.encrypted_key_pem(&password);
    // Kept outside the run's directory: every file in there is searched for the key.
    let holder = Dir::new();
    let key_file = holder.write("app.pem", app.pem_with(encrypted_key.clone()));
    let tls = dir.join("emulator.pem");
    let graph = Graph::start(
        tenant,
        Config {
            client_certificates: vec![("app-1".into(), app.certificate_pem())],
            tls_cert_out: Some(tls.clone()),
            ..fast()
        },
    );
    let url = graph.url().to_string();
    let outputs = every_command(|args| {
        let mut cmd = dir.hardmatch();
        cmd.args(args)
            .args(["-vv", "--auth", "certificate", "--graph-url", &url])
            .args(["--login-url", &url, "--ca-cert"])
            .arg(&tls)
            .env("AZURE_TENANT_ID", "generated")
            .env("AZURE_CLIENT_ID", "app-1")
            .env("AZURE_CLIENT_CERTIFICATE_PATH", &key_file)
            .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", &password)
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("HARDMATCH_ACCESS_TOKEN");
        cmd
    });
    assert_logged_verbosely(&outputs);
    // The key in both its forms: the encrypted PEM lines in the file, and the plain key's
    // lines (what a log of decoded material would show). The first line of each is left out:
    // every RSA key's DER starts the same way.
    let lines_after_the_first = |pem: Vec<u8>| -> Vec<String> {
        let text = String::from_utf8(pem).unwrap();
        text.lines()
            .filter(|line| !line.starts_with("-----"))
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    let mut secrets = vec![password];
    secrets.extend(lines_after_the_first(encrypted_key));
    secrets.extend(lines_after_the_first(app.key_pem()));
    let tokens = graph.running.emulator.issued_tokens();
    assert!(tokens.len() >= 6, "every run signed in: {}", tokens.len());
    secrets.extend(tokens);
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
    let mut outputs = Vec::new();
    for args in [
        &["plan", "export.csv", "-o", "plan.csv"][..],
        &["apply", "export.csv", "-o", "applied.csv", "--yes"],
        &["snapshot", "-o", "tenant-copy.json"],
    ] {
        let out = run(graph.hardmatch_with_secret(&dir, args, &wrong).arg("-vv"));
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
// Hostile UPNs

/// Users the hostile rows must find, each exactly.
const HOSTILE: [&str; 11] = [
    "kate.o'brien@contoso.com",
    "kate.o''brien@contoso.com",
    "$svc@contoso.com",
    "partner_fabrikam.com#EXT#@contoso.onmicrosoft.com",
    "100%pure@contoso.com",
    "pct%27quote@contoso.com",
    "r&d@contoso.com",
    "a+b@contoso.com",
    "a/b@contoso.com",
    "what?@contoso.com",
    "(paren)@contoso.com",
];

/// Users a widened, half-decoded or look-alike-folded query would find instead. No row
/// names them.
const DECOYS: [&str; 10] = [
    "admin@contoso.com",
    "pct'quote@contoso.com",
    "a b@contoso.com",
    "r@contoso.com",
    "what@contoso.com",
    "alice@contoso.com",
    "bob@contoso.com",
    "kate@contoso.com",
    "kate.o@contoso.com",
    "paren@contoso.com",
];

/// Rows that must find nobody: injections, and look-alikes of the decoys (a Cyrillic `а`, a
/// fullwidth `＠`, the Kelvin sign `K`).
const NOBODY: [&str; 6] = [
    "x' or userPrincipalName eq 'admin@contoso.com",
    "admin@contoso.com') or (userPrincipalName ne '",
    "\u{430}lice@contoso.com",
    "bob\u{ff20}contoso.com",
    "\u{212a}ate@contoso.com",
    "r&d@contoso.com' or '1' eq '1",
];

fn long_upn() -> String {
    format!("{}@contoso.com", "l".repeat(1000))
}

fn user_id(i: usize) -> String {
    uuid::Uuid::from_u128(0xBBBB_0000_0000_4000_8000_0000_0000_0000 + i as u128).to_string()
}

/// The tenant (targets, then decoys) and the export (targets, then rows that find nobody).
fn hostile_tenant(dir: &Dir) -> (Tenant, HashMap<String, String>) {
    let mut targets: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    targets.push(long_upn());
    let everyone: Vec<String> = targets
        .iter()
        .cloned()
        .chain(DECOYS.iter().map(|s| s.to_string()))
        .collect();
    let users = everyone
        .iter()
        .enumerate()
        .map(|(i, upn)| User {
            id: user_id(i),
            user_principal_name: upn.clone(),
            ..User::default()
        })
        .collect();
    let mut export = csv::Writer::from_path(dir.join("export.csv")).unwrap();
    export
        .write_record(["UserPrincipalName", "ObjectGUID"])
        .unwrap();
    let rows = targets.iter().map(String::as_str).chain(NOBODY);
    for (i, upn) in rows.enumerate() {
        let guid = uuid::Uuid::from_u128(0xCCCC_0000_0000_4000_8000_0000_0000_0000 + i as u128);
        export.write_record([upn, &guid.to_string()]).unwrap();
    }
    export.flush().unwrap();
    let expected = targets
        .iter()
        .enumerate()
        .map(|(i, upn)| (upn.clone(), user_id(i)))
        .collect();
    let tenant = Tenant {
        tenant_id: "hostile".into(),
        domains: ["contoso.com", "contoso.onmicrosoft.com"]
            .map(|d| Domain {
                id: d.into(),
                ..Domain::default()
            })
            .into(),
        users,
        ..Tenant::default()
    };
    (tenant, expected)
}

/// Each target row found exactly its user, every other row nobody.
#[track_caller]
fn assert_exact_matches(report: &Path, expected: &HashMap<String, String>) {
    let rows = report_rows(report);
    assert_eq!(rows.len(), expected.len() + NOBODY.len());
    for row in &rows {
        let upn = from_excel_safe(&row["upn"]);
        let found = from_excel_safe(&row["cloud_user_id"]);
        match expected.get(upn) {
            Some(id) => assert_eq!(
                (found, row["outcome"].as_str()),
                (id.as_str(), "would-stamp"),
                "{upn:?} must find exactly its own user"
            ),
            None => assert_eq!(
                (found, row["outcome"].as_str()),
                ("", "target-not-found"),
                "{upn:?} must find nobody"
            ),
        }
    }
}

/// Every `$filter` the emulator received: the raw query has exactly the three options
/// hardmatch sends, each value percent-encoded down to RFC 3986's unreserved characters, and
/// the filter parses to one `in (...)` whose values are the rows' UPNs, verbatim.
fn filters_received(graph: &Graph) -> Vec<Filter> {
    let mut filters = Vec::new();
    // The lookups of users by UPN (beta's lookups by id come from Graph's own answers).
    for line in graph
        .stats()
        .request_log
        .iter()
        .filter(|l| l.starts_with("GET /v1.0/users?"))
    {
        let Some((_, query)) = line.split_once('?') else {
            continue;
        };
        if !query.contains("$filter=") {
            continue;
        }
        let mut keys = BTreeSet::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').expect("key=value");
            keys.insert(key);
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{key} is not percent-encoded: {value}"
            );
        }
        assert_eq!(
            keys,
            BTreeSet::from(["$filter", "$select", "$top"]),
            "a UPN added a query option: {line}"
        );
        let (_, filter) = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "$filter")
            .unwrap();
        filters.push(odata::parse(&filter).unwrap_or_else(|e| panic!("{filter}: {e}")));
    }
    filters
}

fn hostile_plan(strategy: &str) {
    let dir = Dir::new();
    let (tenant, expected) = hostile_tenant(&dir);
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["plan", "export.csv", "-o", "plan.csv", "-v"])
        // A guest's #EXT# UPN is among them: found, and planned as a member.
        .args(["--read", strategy, "--allow-guests"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_exact_matches(&dir.join("plan.csv"), &expected);

    let filters = filters_received(&graph);
    if strategy == "bulk" {
        assert!(filters.is_empty(), "a bulk read sends no UPN: {filters:?}");
        return;
    }
    let mut asked = BTreeSet::new();
    for filter in filters {
        match filter {
            Filter::In(Property::UserPrincipalName, values) => asked.extend(values),
            Filter::In(Property::OnPremisesImmutableId, _) => {}
            other => panic!("a filter hardmatch never sends: {other:?}"),
        }
    }
    let rows: BTreeSet<String> = expected
        .keys()
        .cloned()
        .chain(NOBODY.iter().map(|s| s.to_string()))
        .collect();
    assert_eq!(
        asked, rows,
        "each row's UPN asked for verbatim, nothing else"
    );
    // -v shows each literal with its OData escaping, and no non-ASCII byte unescaped.
    let err = stderr(&out);
    assert!(err.contains("'kate.o''brien@contoso.com'"), "{err}");
    assert!(err.contains("'kate.o''''brien@contoso.com'"), "{err}");
    assert!(err.contains("%E2%84%AAate@contoso.com"), "{err}");

    // Apply writes exactly the targets, each once.
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "apply",
            "export.csv",
            "-o",
            "r.csv",
            "--yes",
            "-q",
            "--read",
            "lookup",
            "--allow-guests",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let written: BTreeSet<String> = graph.stats().writes_applied.into_keys().collect();
    let wanted: BTreeSet<String> = expected.values().cloned().collect();
    assert_eq!(written, wanted);
}

#[test]
fn hostile_upns_find_exactly_their_user_when_the_tenant_is_read_in_bulk() {
    hostile_plan("bulk");
}

#[test]
fn hostile_upns_find_exactly_their_user_and_cannot_widen_a_lookup_filter() {
    hostile_plan("lookup");
}

// ---------------------------------------------------------------------------------------
// Report cells

/// Anchors the tenant holds before the run (a custom string anchor can be anything), which
/// the report shows as previous values and rollback must put back exactly.
const FORMULA_ANCHORS: [&str; 7] = [
    "=HYPERLINK(\"http://x\")",
    "+AbC/dEf=",
    "-2+3",
    "@SUM(1)",
    "\t=1",
    " =1+1",
    "'=quoted",
];

/// UPNs that start like formulas.
const FORMULA_UPNS: [&str; 7] = [
    "=1+1@contoso.com",
    "+plus@contoso.com",
    "-x@contoso.com",
    "@at@contoso.com",
    "plain1@contoso.com",
    "plain2@contoso.com",
    "plain3@contoso.com",
];

/// A cell Excel or LibreOffice could evaluate: its first character, or its first after
/// leading blanks (an import that trims spaces), starts a formula.
fn could_run(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\n', '\0'])
        || cell.trim_start().starts_with(['=', '+', '-', '@'])
}

#[test]
// Longer than 80 lines on purpose: one scenario against one emulator, each step checked in turn
fn report_cells_cannot_run_as_formulas_and_round_trip_through_rollback() {
    let dir = Dir::new();
    let users: Vec<User> = FORMULA_UPNS
        .iter()
        .zip(FORMULA_ANCHORS)
        .enumerate()
        .map(|(i, (upn, anchor))| User {
            id: user_id(i),
            user_principal_name: upn.to_string(),
            on_premises_immutable_id: Some(anchor.to_string()),
            ..User::default()
        })
        .collect();
    let tenant = Tenant {
        tenant_id: "formulas".into(),
        domains: vec![Domain {
            id: "contoso.com".into(),
            ..Domain::default()
        }],
        users,
        ..Tenant::default()
    };
    // The first GUID's ImmutableId starts with `+` (its first byte is 0xF8).
    let mut export = String::from("UserPrincipalName,ObjectGUID\n");
    for (i, upn) in FORMULA_UPNS.iter().enumerate() {
        let data1 = 0xF8 + ((i as u128) << 8);
        let guid = uuid::Uuid::from_u128(data1 << 96 | 0x4000_8000_0000_0000_0001);
        export.push_str(&format!("{upn},{guid}\n"));
    }
    dir.write("export.csv", export);
    let graph = Graph::start(tenant.clone(), fast());

    let out = run(&mut graph.hardmatch(
        &dir,
        &["plan", "export.csv", "--overwrite", "-o", "plan.xlsx"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "apply",
            "export.csv",
            "--overwrite",
            "--yes",
            "-o",
            "report.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // CSV: no cell can run, except a well-formed anchor or GUID in an id column, which is
    // written exactly (issue 17); every escaped cell reads back exactly.
    let rows = report_rows(&dir.join("report.csv"));
    for row in &rows {
        for (column, cell) in row {
            let exact = ID_COLUMNS.contains(&column.as_str()) && anchor::is_well_formed(cell);
            assert!(
                exact || !could_run(cell),
                "{column}: {cell:?} could run as a formula"
            );
        }
    }
    let mut escaped = 0;
    for (row, (upn, anchor)) in rows.iter().zip(FORMULA_UPNS.iter().zip(FORMULA_ANCHORS)) {
        assert_eq!(from_excel_safe(&row["upn"]), *upn);
        assert_eq!(from_excel_safe(&row["previous_immutable_id"]), anchor);
        assert_eq!(row["outcome"], "stamped");
        escaped += usize::from(row["upn"].starts_with('\''));
    }
    assert_eq!(escaped, 4, "the four formula-like UPNs carry an apostrophe");
    assert!(rows[0]["immutable_id"].starts_with('+'), "{:?}", rows[0]);
    assert!(
        anchor::is_well_formed(&rows[0]["immutable_id"]),
        "{:?}",
        rows[0]
    );

    // XLSX: strings are strings, never formulas, and carry no apostrophe.
    let bytes = std::fs::read(dir.join("plan.xlsx")).unwrap();
    let parts = unzip(&bytes);
    let shared = &parts
        .iter()
        .find(|(name, _)| name == "xl/sharedStrings.xml")
        .expect("shared strings")
        .1;
    for (name, xml) in &parts {
        if name.starts_with("xl/worksheets/") {
            assert!(
                !xml.contains("<f>") && !xml.contains("<f "),
                "{name}: {xml}"
            );
        }
    }
    for upn in &FORMULA_UPNS[..4] {
        assert!(
            shared.contains(&format!("<t>{upn}</t>")),
            "{upn} in {shared}"
        );
    }

    // Rollback from the CSV report puts back every previous value exactly.
    let out = run(&mut graph.hardmatch(
        &dir,
        &["rollback", "report.csv", "--yes", "-o", "rollback.csv"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (upn, anchor) in FORMULA_UPNS.iter().zip(FORMULA_ANCHORS) {
        assert_eq!(graph.anchor_of(upn).as_deref(), Some(anchor), "{upn}");
    }
}

// ---------------------------------------------------------------------------------------
// File modes

#[track_caller]
fn assert_private(path: &Path) {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "{} is {:o}",
        path.display(),
        mode & 0o777
    );
}

#[test]
fn reports_journals_plans_and_snapshots_are_readable_by_their_owner_only() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 4);
    let graph = Graph::start(tenant, fast());
    // Files that exist already, readable by everyone, are tightened before anything is
    // written into them.
    for name in ["ids.csv", "plan.xlsx", "tenant.json", "applied.csv"] {
        dir.write(name, "old, public content");
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let runs: [&[&str]; 7] = [
        &["ids", "export.csv", "-o", "ids.csv"],
        &["plan", "export.csv", "-o", "plan.csv"],
        &["plan", "export.csv", "-o", "plan.xlsx"],
        &["plan", "export.csv", "-o", "plan.json"],
        &["snapshot", "-o", "tenant.json"],
        &[
            "apply",
            "export.csv",
            "-o",
            "applied.csv",
            "--yes",
            "--max-writes",
            "2",
        ],
        &["apply", "export.csv", "-o", "applied.csv", "--yes"],
    ];
    for (i, args) in runs.iter().enumerate() {
        let mut cmd = if args[0] == "ids" {
            let mut cmd = dir.hardmatch();
            cmd.args(*args);
            cmd
        } else {
            graph.hardmatch(&dir, args)
        };
        if i == runs.len() - 1 {
            // Resume the canary's journal, which someone made readable to all meanwhile.
            std::fs::set_permissions(
                dir.join("applied.csv.journal"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            cmd.args(["--resume", "applied.csv.journal"]);
        }
        let out = run(&mut cmd);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for name in [
        "ids.csv",
        "plan.csv",
        "plan.xlsx",
        "plan.json",
        "tenant.json",
        "applied.csv",
        "applied.csv.journal",
    ] {
        assert_private(&dir.join(name));
    }
    let rows = report_rows(&dir.join("applied.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"), "{rows:?}");

    // `-o -` writes to stdout; its journal, in the working directory, is private too.
    let out = run(&mut graph.hardmatch(&dir, &["clear", "export.csv", "-o", "-", "--yes"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("hardmatch-"))
        .expect("a journal for the stdout report");
    assert_private(&journal);
}

#[test]
fn a_report_path_that_is_a_link_to_a_file_or_belongs_to_someone_else_is_refused() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 2);
    let graph = Graph::start(tenant, fast());
    let victim = dir.write("victim.txt", "precious");
    std::os::unix::fs::symlink(&victim, dir.join("plan.csv")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("tenant.json")).unwrap();
    for args in [
        &["plan", "export.csv", "-o", "plan.csv"][..],
        &["snapshot", "-o", "tenant.json"],
    ] {
        let out = run(&mut graph.hardmatch(&dir, args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

    // A link to a device is how `-o /dev/stdout` works: still allowed.
    let out = run(&mut graph.hardmatch(&dir, &["plan", "export.csv", "-o", "/dev/stdout"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("row,source,"), "{}", stdout(&out));

    // A file owned by another user (testable only as root): never written into.
    let theirs = dir.write("theirs.csv", "theirs");
    if std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).is_ok() {
        let out = run(&mut graph.hardmatch(&dir, &["plan", "export.csv", "-o", "theirs.csv"]));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("belongs to"), "{}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "theirs");
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
fn a_password_in_a_url_on_the_command_line_never_reaches_a_report() {
    let dir = Dir::new();
    let url = "https://admin:hunter2pass@graph.example.com";
    let out = run(dir
        .hardmatch()
        .args(["plan"])
        .arg(sample("csvde.csv"))
        .arg("--snapshot")
        .arg(sample("tenant.json"))
        .args(["-o", "offline.xlsx", "--graph-url", url]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for (place, text) in everything_written(&dir, &[("offline plan".into(), out)]) {
        assert!(!text.contains("hunter2pass"), "{place}: {text}");
        if place.ends_with("sharedStrings.xml") {
            assert!(
                text.contains("https://&lt;user info left out&gt;@graph.example.com"),
                "{text}"
            );
        }
    }
}

#[test]
fn a_graph_whose_certificate_is_not_trusted_is_refused_at_once_and_says_why() {
    let dir = Dir::new();
    let graph = Graph::sample_with(Config {
        tls_cert_out: Some(dir.join("emulator.pem")),
        ..fast()
    });
    let started = std::time::Instant::now();
    let export = sample("csvde.csv");
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "plan",
            export.to_str().unwrap(),
            "-o",
            "p.csv",
            "--read",
            "bulk",
        ],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    assert!(
        started.elapsed().as_secs() < 10,
        "not retried: {:?}",
        started.elapsed()
    );
    assert_eq!(graph.stats().request_log.len(), 0);
}

#[test]
fn plain_http_to_loopback_never_goes_through_a_proxy() {
    let dir = Dir::new();
    let graph = Graph::sample();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let export = sample("csvde.csv");
    let export = export.to_str().unwrap();
    let live = graph.hardmatch(&dir, &["plan", export, "-o", "live.csv"]);
    let mut rehearsal = dir.hardmatch();
    rehearsal
        .args(["plan", export, "-o", "rehearsal.csv", "--emulate"])
        .arg(sample("tenant.json"));
    for mut cmd in [live, rehearsal] {
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            cmd.env(name, &proxy_url);
        }
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
    assert!(
        proxy.accept().is_err(),
        "a request carrying the token went to the proxy"
    );
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
