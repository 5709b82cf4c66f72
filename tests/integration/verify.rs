//! `hardmatch verify` after a sync cycle: each row of an apply judged by the tenant as the
//! cycle left it, read over HTTP from an emulator (or a snapshot) of that tenant.

use std::collections::HashMap;

use hardmatch::tenant::{ProvisioningError, Tenant, User};

use crate::util::{report_rows, run, sample, stderr, Dir, Graph};

/// The user with this UPN.
fn user<'t>(tenant: &'t mut Tenant, upn: &str) -> &'t mut User {
    tenant
        .users
        .iter_mut()
        .find(|u| u.user_principal_name == upn)
        .unwrap_or_else(|| panic!("no user {upn}"))
}

/// The tenant after a sync cycle that went every way a cycle can go: alice matched, bob
/// (whose anchor was already there) blocked by the hardening, jose deleted, kate's anchor changed, dave not synced yet, and a
/// new synced user created for hank (whom the run did not find) with hank's anchor.
fn after_the_cycle(mut tenant: Tenant, hank_anchor: &str) -> Tenant {
    let alice = user(&mut tenant, "alice.adams@contoso.com");
    alice.on_premises_sync_enabled = Some(true);
    alice.on_premises_last_sync_date_time = Some("2026-12-03T10:30:00Z".into());
    user(&mut tenant, "bob.brown@contoso.com").on_premises_provisioning_errors =
        vec![ProvisioningError {
            category: Some("PropertyConflict".into()),
            occurred_date_time: Some("2026-12-03T10:30:00Z".into()),
            property_causing_error: Some("SourceAnchor".into()),
            value: Some("Hard match operation blocked due to security hardening. Review OnPremisesObjectIdentifier mapping.".into()),
        }];
    user(&mut tenant, "kate.o'brien@contoso.com").on_premises_immutable_id =
        Some("BpazOkLGm0iEtljAONPvOQ==".into());
    let jose = tenant
        .users
        .iter()
        .position(|u| u.user_principal_name == "jose.jonsson@contoso.com")
        .unwrap();
    let mut jose = tenant.users.remove(jose);
    jose.deleted_date_time = Some("2026-12-03T10:31:00Z".into());
    tenant.deleted_users.push(jose);
    tenant.users.push(User {
        id: "9d1c0f4e-0000-4000-8000-00000000beef".into(),
        user_principal_name: "hank.hill1234@contoso.onmicrosoft.com".into(),
        on_premises_immutable_id: Some(hank_anchor.into()),
        on_premises_sync_enabled: Some(true),
        ..User::default()
    });
    tenant
}

fn outcomes(rows: &[HashMap<String, String>]) -> HashMap<String, (String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["upn"].clone(),
                (r["outcome"].clone(), r["detail"].clone()),
            )
        })
        .collect()
}

#[test]
fn verify_tells_every_way_the_sync_cycle_went() {
    let dir = Dir::new();
    let graph = Graph::sample();
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--overwrite"])
        .arg(sample("getaduser-ps51.csv"))
        .args(["-o", "report.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let applied = report_rows(&dir.join("report.csv"));
    let hank_anchor = applied
        .iter()
        .find(|r| r["upn"] == "hank.hill@contoso.com")
        .unwrap()["immutable_id"]
        .clone();
    after_the_cycle(graph.tenant(), &hank_anchor)
        .save(&dir.join("after.json"))
        .unwrap();

    // Live, through an emulator of the tenant after the cycle; then offline from the same
    // tenant as a snapshot, and from the apply's journal instead of its report.
    let verify = |source: &str, tenant: &[&str], output: &str| {
        let out = run(dir
            .hardmatch()
            .args(["verify", source, "-o", output])
            .args(tenant));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        report_rows(&dir.join(output))
    };
    let live = verify("report.csv", &["--emulate", "after.json"], "verify.csv");
    assert_eq!(live.len(), applied.len(), "one row per input row");
    let got = outcomes(&live);
    for (upn, expected) in [
        ("alice.adams@contoso.com", "matched"),
        ("bob.brown@contoso.com", "match-blocked"),
        ("dave.dunn@contoso.com", "awaiting-sync"),
        ("jose.jonsson@contoso.com", "target-gone"),
        ("kate.o'brien@contoso.com", "anchor-changed"),
        ("hank.hill@contoso.com", "duplicate-created"),
        ("carol.clark@contoso.com", "not-stamped"),
    ] {
        assert_eq!(got[upn].0, expected, "{upn}: {}", got[upn].1);
    }
    assert!(got["bob.brown@contoso.com"]
        .1
        .contains("security hardening"));
    assert!(got["hank.hill@contoso.com"]
        .1
        .contains("hank.hill1234@contoso.onmicrosoft.com"));
    assert!(got["carol.clark@contoso.com"]
        .1
        .contains("(target-synced: "));

    let offline = verify("report.csv", &["--snapshot", "after.json"], "offline.csv");
    assert_eq!(
        outcomes(&offline),
        got,
        "a snapshot says what the live read says"
    );

    let journal = verify(
        "report.csv.journal",
        &["--emulate", "after.json"],
        "journal.csv",
    );
    let from_journal = outcomes(&journal);
    let written = applied.iter().filter(|r| r["outcome"] == "stamped").count();
    assert_eq!(
        from_journal.len(),
        written,
        "the journal holds the written rows only (bob was already matched)"
    );
    for (upn, (outcome, _)) in &from_journal {
        assert_eq!(outcome, &got[upn].0, "{upn}");
    }
}

#[test]
fn every_stamped_row_matched_exits_0() {
    let dir = Dir::new();
    let graph = Graph::sample();
    run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(sample("getaduser-ps51.csv"))
        .args(["-o", "report.json"]));
    let applied: Vec<hardmatch::report::Record> = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(dir.join("report.json")).unwrap(),
        )
        .unwrap()["rows"]
            .clone(),
    )
    .unwrap();
    let mut tenant = graph.tenant();
    for record in applied.iter().filter(|r| {
        matches!(
            r.outcome,
            Some(
                hardmatch::outcome::Outcome::Stamped | hardmatch::outcome::Outcome::AlreadyMatched
            )
        )
    }) {
        let user = tenant
            .users
            .iter_mut()
            .find(|u| u.id == record.cloud_user_id)
            .unwrap();
        user.on_premises_sync_enabled = Some(true);
    }
    tenant.save(&dir.join("after.json")).unwrap();
    let out = run(dir.hardmatch().args([
        "verify",
        "report.json",
        "--snapshot",
        "after.json",
        "-o",
        "v.xlsx",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("matched"), "{}", stderr(&out));
}

#[test]
fn a_file_that_is_no_report_is_refused_with_its_columns() {
    let dir = Dir::new();
    let out = run(dir
        .hardmatch()
        .args(["verify"])
        .arg(sample("getaduser-ps51.csv"))
        .args(["--snapshot"])
        .arg(sample("tenant.json"))
        .args(["-o", "v.csv"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a hardmatch report"),
        "{}",
        stderr(&out)
    );
}

/// `--wait`: rows still awaiting sync are checked again every `--interval` until the wait
/// runs out, saying so each time; the report then has them as `awaiting-sync` (exit 1).
#[test]
fn waiting_checks_again_until_the_wait_runs_out() {
    let dir = Dir::new();
    let graph = Graph::sample();
    run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(sample("getaduser-ps51.csv"))
        .args(["-o", "report.csv"]));
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "verify",
            "report.csv",
            "-o",
            "v.csv",
            "--wait",
            "1s",
            "--interval",
            "400ms",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let checks = stderr(&out)
        .matches("awaiting sync; next check in 400ms")
        .count();
    assert_eq!(checks, 2, "{}", stderr(&out));
    let rows = report_rows(&dir.join("v.csv"));
    assert!(rows.iter().any(|r| r["outcome"] == "awaiting-sync"));
}

/// The whole loop against an emulator that keeps the AD side: apply, one sync cycle
/// (`POST /_emulator/sync`), verify. Stamped users are matched; a stamped user that became
/// linked to another on-premises object before the cycle is blocked by the hard-match
/// protections; rows the run did not stamp are what sync made of them.
#[test]
fn apply_then_a_sync_cycle_then_verify() {
    let dir = Dir::new();
    let export = sample("getaduser-ps51.csv");
    let directory = hardmatch::emulator::sync::Directory::from_export(&export).unwrap();
    let graph = Graph::start(
        Tenant::load(&sample("tenant.json")).unwrap(),
        hardmatch::emulator::Config {
            directory: Some(std::sync::Arc::new(directory)),
            ..crate::util::fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(&export)
        .args(["-o", "report.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    graph.running.emulator.edit_tenant(|tenant| {
        user(tenant, "jose.jonsson@contoso.com").on_premises_object_identifier =
            Some("0b0b0b0b-0000-4000-8000-000000000000".into());
    });
    let cycle = graph.sync();
    assert!(cycle["hardMatched"].as_u64().unwrap() >= 3, "{cycle}");
    // jose's hard match, and the soft matches of the privileged and linked users the plan
    // refused to stamp (pete, quinn, rosa).
    assert_eq!(cycle["blocked"], 4, "{cycle}");

    let out = run(&mut graph.hardmatch(&dir, &["verify", "report.csv", "-o", "v.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = outcomes(&report_rows(&dir.join("v.csv")));
    for upn in [
        "alice.adams@contoso.com",
        "bob.brown@contoso.com",
        "kate.o'brien@contoso.com",
    ] {
        assert_eq!(got[upn].0, "matched", "{upn}: {}", got[upn].1);
    }
    for (upn, outcome) in [
        ("pete.price@contoso.com", "match-blocked"),
        ("rosa.reyes@contoso.com", "match-blocked"),
        // A guest is never soft-matched: sync made a new user for the AD object.
        ("sam.stone@contoso.com", "duplicate-created"),
    ] {
        assert_eq!(got[upn].0, outcome, "{upn}: {}", got[upn].1);
    }
    let jose = &got["jose.jonsson@contoso.com"];
    assert_eq!(jose.0, "match-blocked", "{}", jose.1);
    assert!(jose.1.contains("security hardening"), "{}", jose.1);
}

/// `hardmatch emulator --directory E --sync-every D` runs cycles on its own; `verify --wait`
/// keeps checking until the stamped rows are matched.
#[test]
fn verify_waits_for_the_emulators_own_sync_cycle() {
    let dir = Dir::new();
    let export = sample("getaduser-ps51.csv");
    let (mut emulator, url) = crate::util::emulator_command(
        crate::util::TOKEN,
        &[
            "--directory",
            export.to_str().unwrap(),
            "--sync-every",
            "2s",
        ],
    );
    let hardmatch = |args: &[&str]| {
        run(dir
            .hardmatch()
            .args(args)
            .args(["--graph-url", &url])
            .env("HARDMATCH_ACCESS_TOKEN", crate::util::TOKEN))
    };
    hardmatch(&[
        "apply",
        export.to_str().unwrap(),
        "--yes",
        "-q",
        "-o",
        "report.csv",
    ]);
    let out = hardmatch(&[
        "verify",
        "report.csv",
        "-o",
        "v.csv",
        "--wait",
        "20s",
        "--interval",
        "300ms",
    ]);
    emulator.kill().unwrap();
    emulator.wait().unwrap();
    let got = outcomes(&report_rows(&dir.join("v.csv")));
    for upn in ["alice.adams@contoso.com", "jose.jonsson@contoso.com"] {
        assert_eq!(
            got[upn].0,
            "matched",
            "{upn}: {} {}",
            got[upn].1,
            stderr(&out)
        );
    }
}

/// `--uncovered FILE`: the enabled cloud-only member users no row names, from plan (before)
/// and verify (after): not the rows' targets, not a row whose anchor was bad but whose UPN
/// names its user, not a guest, a synced or a disabled user.
#[test]
fn uncovered_lists_the_cloud_only_users_no_row_names() {
    let dir = Dir::new();
    let mut tenant = Tenant::load(&sample("tenant.json")).unwrap();
    user(&mut tenant, "olga.owens@contoso.com").account_enabled = Some(false);
    user(&mut tenant, "sales.desk@contoso.com").created_date_time =
        Some("2024-05-06T07:08:09Z".into());
    tenant.save(&dir.join("tenant.json")).unwrap();
    let export = sample("getaduser-ps51.csv");
    let expected = [
        "frank.old@contoso.com",
        "sales.desk@contoso.com",
        "sales.backoffice@contoso.com",
        "$svc-backup@contoso.com",
        // Its row names tara.tate@contoso.local, which no cloud user has.
        "tara.tate@contoso.com",
    ];
    let listed = |file: &str| {
        let rows = report_rows(&dir.join(file));
        let upns: Vec<String> = rows
            .iter()
            .map(|r| r["userPrincipalName"].clone())
            .collect();
        (upns, rows)
    };

    let out = run(dir.hardmatch().arg("plan").arg(&export).args([
        "--emulate",
        "tenant.json",
        "-o",
        "plan.csv",
        "--uncovered",
        "before.csv",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (upns, rows) = listed("before.csv");
    assert_eq!(upns, expected, "{}", stderr(&out));
    let desk = rows
        .iter()
        .find(|r| r["userPrincipalName"] == "sales.desk@contoso.com")
        .unwrap();
    assert_eq!(desk["createdDateTime"], "2024-05-06T07:08:09Z");
    assert!(!desk["id"].is_empty());

    let out = run(dir.hardmatch().args([
        "verify",
        "plan.csv",
        "--snapshot",
        "tenant.json",
        "-o",
        "v.csv",
        "--uncovered",
        "after.csv",
    ]));
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    assert_eq!(listed("after.csv").0, expected);
}

/// `rehearse` on every sample export: plan, apply, a sync cycle and verify against an
/// emulator of the sample tenant, one report row per input row with the three stages side by
/// side; every row apply stamped is matched by the cycle; the tenant file is left as it was.
#[test]
fn rehearse_runs_the_whole_migration_on_every_sample() {
    let tenant_before = std::fs::read(sample("tenant.json")).unwrap();
    for export in [
        "getaduser-ps51.csv",
        "getaduser-utf16.csv",
        "excel-de.csv",
        "csvde.csv",
        "ldifde.ldf",
        "users.xlsx",
        "users.xls",
        "users.ods",
    ] {
        let dir = Dir::new();
        let out = run(dir
            .hardmatch()
            .arg("rehearse")
            .arg(sample(export))
            .arg("--tenant")
            .arg(sample("tenant.json"))
            .args(["-o", "rehearsal.csv", "--keep", "work"]));
        let err = stderr(&out);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{export}: {err}");
        let rows = report_rows(&dir.join("rehearsal.csv"));
        let plan = hardmatch::report::read::read(&dir.join("work/plan.json")).unwrap();
        assert_eq!(rows.len(), plan.len(), "{export}: one row per input row");
        for row in &rows {
            assert!(!row["plan_outcome"].is_empty(), "{export}: {row:?}");
            if row["apply_outcome"] == "stamped" {
                assert_eq!(row["outcome"], "matched", "{export}: {row:?}");
            }
        }
        assert!(
            rows.iter().any(|r| r["apply_outcome"] == "stamped"),
            "{export}"
        );
        for stage in ["== plan", "== apply", "== sync cycle", "== verify"] {
            assert!(err.contains(stage), "{export}: {stage} in {err}");
        }
    }
    assert_eq!(std::fs::read(sample("tenant.json")).unwrap(), tenant_before);
}

/// Flags after `--` reach plan and apply: `--overwrite` lets apply replace dave's other anchor,
/// which the sync cycle then matches.
#[test]
fn rehearse_passes_its_flags_to_plan_and_apply() {
    let dir = Dir::new();
    let out = run(dir
        .hardmatch()
        .arg("rehearse")
        .arg(sample("getaduser-ps51.csv"))
        .arg("--tenant")
        .arg(sample("tenant.json"))
        .args(["-o", "rehearsal.json", "--", "--overwrite"]));
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    let rows = hardmatch::report::read::read(&dir.join("rehearsal.json")).unwrap();
    let dave = rows
        .iter()
        .find(|r| r.upn == "dave.dunn@contoso.com")
        .unwrap();
    use hardmatch::outcome::Outcome;
    assert_eq!(
        (dave.plan_outcome, dave.apply_outcome, dave.outcome),
        (
            Some(Outcome::WouldStamp),
            Some(Outcome::Stamped),
            Some(Outcome::Matched)
        ),
        "{}",
        dave.detail
    );
}
