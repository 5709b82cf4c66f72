//! plan, apply, clear and rollback: the real binary against the emulator over real HTTP.

use std::collections::HashMap;
use std::time::Duration;

use hardmatch::emulator::throttle::Quotas;
use hardmatch::emulator::Config;

use crate::util::{fast, generated, report_rows, run, sample, stderr, Dir, Graph, CLIENT_SECRET};

/// What samples/README.md says each sample person ends as, planned.
const PLANNED: [(&str, &str); 20] = [
    ("alice.adams@contoso.com", "would-stamp"),
    ("bob.brown@contoso.com", "already-matched"),
    ("carol.clark@contoso.com", "target-synced"),
    ("dave.dunn@contoso.com", "target-has-other-anchor"),
    ("erin.evans@contoso.com", "anchor-held-by-user"),
    ("gina.gray@contoso.com", "anchor-held-by-deleted-user"),
    ("hank.hill@contoso.com", "target-not-found"),
    ("ivan.ito@fed.contoso.com", "federated-domain"),
    ("jose.jonsson@contoso.com", "would-stamp"),
    ("kate.o'brien@contoso.com", "would-stamp"),
    ("lena.lopez@contoso.com", "target-deleted"),
    ("mike.miller@contoso.com", "would-stamp"),
    ("nina.nash@contoso.com", "would-stamp"),
    ("pete.price@contoso.com", "target-privileged"),
    ("quinn.quigley@contoso.com", "target-privileged"),
    ("rosa.reyes@contoso.com", "target-linked-elsewhere"),
    ("sam.stone@contoso.com", "target-guest"),
    ("tara.tate@contoso.local", "target-not-found"),
    ("uma.ueda@contoso.com", "would-stamp"),
    ("vic.vance@contoso.com", "would-stamp"),
];

fn outcomes(rows: &[HashMap<String, String>]) -> HashMap<String, String> {
    rows.iter()
        .map(|r| (r["upn"].clone(), r["outcome"].clone()))
        .collect()
}

#[test]
fn plan_live_gives_every_plannable_outcome_and_writes_nothing() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(sample("csvde.csv"))
        .args(["-o", "plan.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = report_rows(&dir.join("plan.csv"));
    assert_eq!(rows.len(), 21, "one row per input row");
    let got = outcomes(&rows);
    for (upn, expected) in PLANNED {
        assert_eq!(got[upn], expected, "{upn}");
    }
    let gina = rows
        .iter()
        .find(|r| r["upn"] == "gina.gray@contoso.com")
        .unwrap();
    assert_eq!(gina["holder_deleted_at"], "2026-11-01T09:14:00Z");
    assert!(gina["detail"].contains("--purge-deleted-holders"));
    let stats = graph.stats();
    assert_eq!(stats.writes_total, 0, "plan never writes");
    let said = stderr(&out);
    assert!(
        said.contains("tenant read: live, bulk snapshot of 24 users and 2 deleted users"),
        "{said}"
    );
    assert!(said.contains("Graph requests"), "{said}");
}

#[test]
fn lookups_and_bulk_reads_plan_every_row_alike() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let batches = || {
        graph
            .stats()
            .requests
            .get("POST /$batch")
            .copied()
            .unwrap_or(0)
    };
    let plan = |how: &str, report: &str| {
        let before = batches();
        let out = run(graph
            .hardmatch(&dir, &["plan", "--read", how])
            .arg(sample("csvde.csv"))
            .args(["-o", report]));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        (
            report_rows(&dir.join(report)),
            stderr(&out),
            batches() - before,
        )
    };
    let (bulk, _, bulk_batches) = plan("bulk", "bulk.csv");
    let (lookup, said, lookup_batches) = plan("lookup", "lookup.csv");
    // Either way one $batch asks for the role-assignable group's members and owners; lookups
    // add one of users.
    assert_eq!((bulk_batches, lookup_batches), (1, 2));
    let without_time = |rows: Vec<HashMap<String, String>>| -> Vec<Vec<(String, String)>> {
        rows.into_iter()
            .map(|r| {
                // The plan's time, and the digest that covers it, differ between two runs.
                let timed = ["timestamp", "plan_planned_at", "plan_digest"];
                let mut cells: Vec<_> = r
                    .into_iter()
                    .filter(|(k, _)| !timed.contains(&k.as_str()))
                    .collect();
                cells.sort();
                cells
            })
            .collect()
    };
    assert_eq!(without_time(bulk), without_time(lookup));
    assert!(said.contains("per-row lookups"), "{said}");
    // One $batch of lookups, then the recycle bin, the domains and the takeover setting;
    // then what the sync cycle's match depends on: one /beta/$batch of
    // onPremisesObjectIdentifier, the privileged role definitions, the assignments, the
    // eligibilities, the role-assignable groups and one $batch of their members and owners.
    assert!(said.contains(": 10 Graph requests"), "{said}");
}

#[test]
fn plan_reports_as_xlsx_and_json() {
    let graph = Graph::sample();
    let dir = Dir::new();
    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(sample("ldifde.ldf"))
        .args(["-o", "plan.xlsx"]));
    use calamine::Reader;
    let mut workbook = calamine::open_workbook_auto(dir.join("plan.xlsx")).unwrap();
    assert_eq!(workbook.sheet_names(), ["Summary", "Rows", "Plan"]);
    let rows = workbook.worksheet_range("Rows").unwrap();
    assert_eq!(rows.height(), 24, "header + 23 rows");
    assert_eq!(rows.get((0, 12)).unwrap().to_string(), "outcome");
    let summary = workbook.worksheet_range("Summary").unwrap();
    let text: Vec<String> = summary
        .rows()
        .flat_map(|r| r.iter().map(|c| c.to_string()))
        .collect();
    assert!(text.iter().any(|c| c == "not-a-user"), "{text:?}");
    // What the read cost, as hardmatch counted it and as Graph's headers said.
    let note = |name: &str| {
        let at = text.iter().position(|c| c == name);
        at.map(|i| text[i + 1].clone())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    assert!(note("Graph requests").parse::<u32>().unwrap() >= 4);
    assert!(
        note("resource units (x-ms-resource-unit)")
            .parse::<u32>()
            .unwrap()
            >= 4
    );
    assert_eq!(note("hard-match takeover"), "allowed by the tenant");
    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(sample("ldifde.ldf"))
        .args(["-o", "plan.json"]));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 23);
    assert_eq!(json["rows"][0]["outcome"], "would-stamp");
}

#[test]
fn apply_on_the_samples_stamps_once_and_reports_every_row() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(sample("excel-de.csv"))
        .args(["-o", "report.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = report_rows(&dir.join("report.csv"));
    assert_eq!(rows.len(), 21);
    let got = outcomes(&rows);
    for (upn, planned) in PLANNED {
        let expected = if planned == "would-stamp" {
            "stamped"
        } else {
            planned
        };
        assert_eq!(got[upn], expected, "{upn}");
    }
    assert_eq!(
        graph.anchor_of("alice.adams@contoso.com").as_deref(),
        Some("1wfM9xV8fUSHbcAbDlqeOA==")
    );
    assert_eq!(
        graph.anchor_of("nina.nash@contoso.com").as_deref(),
        Some("H+EUXYXDykOYtGivEfs7jw=="),
        "consistency GUID wins"
    );
    let stats = graph.stats();
    assert_eq!(stats.writes_applied.len(), 7);
    assert!(
        stats.writes_applied.values().all(|&n| n == 1),
        "{:?}",
        stats.writes_applied
    );
    let alice = rows
        .iter()
        .find(|r| r["upn"] == "alice.adams@contoso.com")
        .unwrap();
    assert_eq!(
        (alice["http_status"].as_str(), alice["attempts"].as_str()),
        ("204", "1")
    );
    assert!(!alice["request_id"].is_empty());
    assert!(dir.join("report.csv.journal").exists());
}

#[test]
fn destructive_steps_run_only_with_their_flags() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(
            &dir,
            &[
                "apply",
                "--yes",
                "-q",
                "--overwrite",
                "--purge-deleted-holders",
                "--federated-hop",
            ],
        )
        .arg(sample("csvde.csv"))
        .args(["-o", "report.csv"]));
    let got = outcomes(&report_rows(&dir.join("report.csv")));
    assert_eq!(got["dave.dunn@contoso.com"], "stamped", "{}", stderr(&out));
    assert_eq!(got["gina.gray@contoso.com"], "stamped");
    assert_eq!(got["ivan.ito@fed.contoso.com"], "stamped");
    assert!(
        stderr(&out).contains("DESTRUCTIVE: 1 rows will purge a deleted holder"),
        "{}",
        stderr(&out)
    );
    let tenant = graph.tenant();
    let ivan = tenant
        .users
        .iter()
        .find(|u| u.on_premises_immutable_id.as_deref() == Some("T7QuCxT4zU65bifcqZckTQ=="))
        .unwrap();
    assert_eq!(
        ivan.user_principal_name, "ivan.ito@fed.contoso.com",
        "the UPN came home after the hop"
    );
    assert_eq!(tenant.deleted_users.len(), 1, "the holder was purged");
    let journal = std::fs::read_to_string(dir.join("report.csv.journal")).unwrap();
    for step in ["\"purge-holder\"", "\"upn-out\"", "\"upn-back\""] {
        assert!(journal.contains(step), "{step} journaled");
    }
}

#[test]
fn a_run_cut_off_between_purge_and_stamp_stamps_on_resume_without_purging_again() {
    // A full run on one emulator gives a real journal; its first lines up to Gina's purge
    // are what a run killed right after the purge leaves behind.
    let flags = ["apply", "--yes", "-q", "--purge-deleted-holders"];
    let first = Graph::sample();
    let dir = Dir::new();
    run(first
        .hardmatch(&dir, &flags)
        .arg(sample("csvde.csv"))
        .args(["-o", "full.csv"]));
    // Its run line, then Gina's purge: intent and result (other rows' lines left out, as if
    // the run had not reached them).
    let full = std::fs::read_to_string(dir.join("full.csv.journal")).unwrap();
    let entries: Vec<serde_json::Value> = full
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let purge = |e: &serde_json::Value| e["step"] == "purge-holder";
    let gina = entries.iter().find(|e| purge(e)).expect("a purge")["row"].clone();
    let cut_off: String = entries
        .iter()
        .filter(|e| e["kind"] == "run" || (e["row"] == gina && purge(e)))
        .map(|e| format!("{e}\n"))
        .collect();
    assert_eq!(cut_off.lines().count(), 3, "{cut_off}");
    std::fs::write(dir.join("r.csv.journal"), cut_off).unwrap();

    // The tenant as that run left it: the holder purged, Gina not stamped yet.
    let graph = Graph::sample();
    let holder = graph
        .tenant()
        .deleted_users
        .into_iter()
        .find(|u| u.on_premises_immutable_id.as_deref() == Some("YNUtEnUxmkygYLgUmFN2Vg=="))
        .unwrap();
    graph.purge_deleted(&holder.id);

    let out = run(graph
        .hardmatch(&dir, &flags)
        .args(["--resume", "r.csv.journal"])
        .arg(sample("csvde.csv"))
        .args(["-o", "r.csv"]));
    let got = outcomes(&report_rows(&dir.join("r.csv")));
    assert_eq!(got["gina.gray@contoso.com"], "stamped", "{}", stderr(&out));
    assert_eq!(
        graph.anchor_of("gina.gray@contoso.com").as_deref(),
        Some("YNUtEnUxmkygYLgUmFN2Vg==")
    );
    let stats = graph.stats();
    assert_eq!(
        stats.requests["DELETE /directory/deletedItems/{id}"], 1,
        "the holder was purged once, by the cut-off run: {stats:?}"
    );
}

#[test]
fn verify_reads_every_stamp_back() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 25);
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--verify"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"));
    let stats = graph.stats();
    assert_eq!(
        stats.requests["GET /users/{id}"], 25,
        "one read-back per stamp"
    );
}

#[test]
fn without_a_terminal_yes_is_required() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(&dir, &["apply"])
        .arg(sample("csvde.csv"))
        .args(["-o", "report.csv"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    assert_eq!(graph.stats().writes_total, 0);
}

#[test]
fn canary_batch_then_resume_writes_each_row_once() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 40);
    let graph = Graph::start(tenant, fast());
    let canary = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--max-writes", "10"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(
        canary.status.code(),
        Some(0),
        "a canary that wrote its rows succeeded"
    );
    let first = report_rows(&dir.join("r.csv"));
    assert_eq!(
        first.iter().filter(|r| r["outcome"] == "stamped").count(),
        10
    );
    assert_eq!(
        first
            .iter()
            .filter(|r| r["outcome"] == "not-attempted")
            .count(),
        30
    );
    let resumed = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--resume", "r.csv.journal"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"), "{rows:?}");
    let stats = graph.stats();
    assert_eq!(stats.writes_applied.len(), 40);
    assert!(
        stats.writes_applied.values().all(|&n| n == 1),
        "no write sent twice"
    );
}

#[test]
fn kill_nine_at_several_points_then_resume_loses_nothing_and_repeats_nothing() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 150);
    let graph = Graph::start(
        tenant,
        Config {
            latency_ms: (5, 20),
            ..fast()
        },
    );
    let journal = dir.join("r.csv.journal");
    let journal_lines = || {
        std::fs::read_to_string(&journal)
            .map(|j| j.lines().count())
            .unwrap_or(0)
    };
    // Four runs killed at growing journal lengths (each row journals an intent and a result),
    // every one after the first resuming the journal of the one before.
    for (run_number, kill_at) in [40, 110, 180, 250].into_iter().enumerate() {
        let mut command = graph.hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "100"]);
        if run_number > 0 {
            command.args(["--resume", "r.csv.journal"]);
        }
        let mut child = command
            .arg(&export)
            .args(["-o", "r.csv"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..500 {
            if journal_lines() > kill_at {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "run {run_number} was still writing when killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before = graph.stats().writes_applied.len();
    assert!(
        before > 0 && before < 150,
        "killed mid-run: {before} written"
    );
    let resumed = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--resume", "r.csv.journal"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 150, "every input row reported");
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"), "{rows:?}");
    let stats = graph.stats();
    assert_eq!(stats.writes_applied.len(), 150);
    assert!(
        stats.writes_applied.values().all(|&n| n == 1),
        "no write sent twice: {:?}",
        stats.writes_applied.values().filter(|&&n| n > 1).count()
    );
}

#[test]
fn writes_offered_at_three_times_the_quota_all_land_once() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 30);
    // 15 writes per 150 s at 20x: 2 writes per real second after a burst of 15; offered at 6.
    let quotas = Quotas {
        app_writes_per_150s: 15.0,
        ..Quotas::default()
    };
    let graph = Graph::start(
        tenant,
        Config {
            quotas,
            time_scale: 20.0,
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "6"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"));
    let stats = graph.stats();
    assert_eq!(stats.writes_applied.len(), 30);
    assert!(stats.throttled > 0, "the quota was hit");
    assert!(stats.writes_applied.values().all(|&n| n == 1));
}

#[test]
fn five_percent_503s_and_connection_resets_lose_nothing() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 80);
    let faults = "503=0.05,reset=0.05,seed=3".parse().unwrap();
    let graph = Graph::start(tenant, Config { faults, ..fast() });
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "200"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 80);
    assert!(
        rows.iter().all(|r| r["outcome"] == "stamped"),
        "{:?}",
        rows.iter()
            .filter(|r| r["outcome"] != "stamped")
            .collect::<Vec<_>>()
    );
    let stats = graph.stats();
    assert!(stats.faults > 0, "faults were injected");
    assert!(
        rows.iter().any(|r| r["attempts"] != "1"),
        "some rows needed a retry"
    );
    // A reset comes after the emulator applied the write: the client must read the user
    // before sending it again.
    assert_eq!(stats.writes_applied.len(), 80);
    assert!(
        stats.writes_applied.values().all(|&n| n == 1),
        "no write applied twice: {:?}",
        stats.writes_applied.values().filter(|&&n| n > 1).count()
    );
}

#[test]
fn a_token_graph_refuses_stops_the_run_before_any_write() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 20);
    let graph = Graph::start(tenant, fast());
    // A token the emulator does not know: every call is 401, which a fixed token cannot fix.
    let out = run(dir
        .hardmatch()
        .args(["apply", "--yes", "-q"])
        .arg(&export)
        .args(["-o", "r.csv", "--graph-url", graph.url()])
        .env("HARDMATCH_ACCESS_TOKEN", "wrong"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the tenant"),
        "{}",
        stderr(&out)
    );
    assert_eq!(graph.stats().writes_total, 0);
}

#[test]
fn rollback_restores_exactly_the_previous_state() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let before = graph.tenant();
    run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--overwrite"])
        .arg(sample("csvde.csv"))
        .args(["-o", "report.csv"]));
    assert_ne!(graph.tenant(), before);
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "rollback",
            "report.csv.journal",
            "--yes",
            "-q",
            "-o",
            "rollback.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        graph.tenant(),
        before,
        "every previous value is back, null where there was none"
    );
    let rows = report_rows(&dir.join("rollback.csv"));
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r["outcome"] == "restored"));
    let dave = rows
        .iter()
        .find(|r| r["cloud_upn"] == "dave.dunn@contoso.com")
        .unwrap();
    assert_eq!(dave["previous_immutable_id"], "oaJBpkPVr0+yOPZwhHcGwg==");
}

#[test]
fn rollback_puts_back_writes_whose_answer_a_killed_run_never_journaled() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let before = graph.tenant();
    run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--overwrite"])
        .arg(sample("csvde.csv"))
        .args(["-o", "report.csv"]));
    // As if killed after sending Alice's and Dave's writes, before journaling the answers;
    // and Dave's write never reached Graph after all.
    let journal = dir.join("report.csv.journal");
    let theirs: Vec<serde_json::Value> = report_rows(&dir.join("report.csv"))
        .iter()
        .filter(|r| {
            ["alice.adams@contoso.com", "dave.dunn@contoso.com"].contains(&r["upn"].as_str())
        })
        .map(|r| serde_json::json!(r["row"].parse::<u64>().unwrap()))
        .collect();
    assert_eq!(theirs.len(), 2);
    let kept: String = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            !(entry["kind"] == "result" && theirs.contains(&entry["row"]))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&journal, kept).unwrap();
    graph.edit_user(
        "dave.dunn@contoso.com",
        serde_json::json!({"onPremisesImmutableId": "oaJBpkPVr0+yOPZwhHcGwg=="}),
    );
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "rollback",
            "report.csv.journal",
            "--yes",
            "-q",
            "-o",
            "rollback.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        graph.tenant(),
        before,
        "Alice's unjournaled write was put back too"
    );
    let rows = report_rows(&dir.join("rollback.csv"));
    let dave = rows
        .iter()
        .find(|r| r["cloud_upn"] == "dave.dunn@contoso.com")
        .unwrap();
    assert_eq!(dave["outcome"], "already-matched", "{dave:?}");
    assert!(dave["detail"].contains("never took effect"), "{dave:?}");
}

#[test]
fn rollback_from_the_csv_report_and_drift_is_left_alone() {
    let graph = Graph::sample();
    let dir = Dir::new();
    run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(sample("csvde.csv"))
        .args(["-o", "report.csv"]));
    // Someone changes Alice by hand after the run.
    graph.edit_user(
        "alice.adams@contoso.com",
        serde_json::json!({"onPremisesImmutableId": "HandEdited0000000000000=="}),
    );
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "rollback",
            "report.csv",
            "--yes",
            "-q",
            "-o",
            "rollback.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    let got: HashMap<_, _> = report_rows(&dir.join("rollback.csv"))
        .into_iter()
        .map(|r| (r["cloud_upn"].clone(), r["outcome"].clone()))
        .collect();
    assert_eq!(got["alice.adams@contoso.com"], "target-changed-since-plan");
    assert_eq!(got["jose.jonsson@contoso.com"], "restored");
    assert_eq!(
        graph.anchor_of("alice.adams@contoso.com").as_deref(),
        Some("HandEdited0000000000000==")
    );
    assert_eq!(graph.anchor_of("jose.jonsson@contoso.com"), None);
}

#[test]
fn clear_refuses_synced_users_and_clears_the_rest() {
    let graph = Graph::sample();
    let dir = Dir::new();
    dir.write("clear.csv", "UserPrincipalName\nbob.brown@contoso.com\ncarol.clark@contoso.com\nalice.adams@contoso.com\n");
    let out = run(&mut graph.hardmatch(
        &dir,
        &["clear", "clear.csv", "--yes", "-q", "-o", "cleared.csv"],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = outcomes(&report_rows(&dir.join("cleared.csv")));
    assert_eq!(got["bob.brown@contoso.com"], "cleared");
    assert_eq!(got["carol.clark@contoso.com"], "target-synced");
    assert_eq!(got["alice.adams@contoso.com"], "nothing-to-clear");
    assert_eq!(graph.anchor_of("bob.brown@contoso.com"), None);
}

#[test]
fn an_approved_plan_is_applied_with_drift_checked() {
    let graph = Graph::sample();
    let dir = Dir::new();
    run(graph
        .hardmatch(&dir, &["plan"])
        .arg(sample("csvde.csv"))
        .args(["-o", "plan.json"]));
    graph.edit_user(
        "jose.jonsson@contoso.com",
        serde_json::json!({"onPremisesImmutableId": "SetMeanwhile000000000=="}),
    );
    // Meanwhile a user the plan never read takes Kate's anchor: Graph refuses the write, and
    // hardmatch looks the holder up to name it.
    graph.edit_user(
        "partner_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        serde_json::json!({"onPremisesImmutableId": "D+jRzX3jZEKAfuwLKy9New=="}),
    );
    let out = run(&mut graph.hardmatch(
        &dir,
        // Per-row reads: only the plan's targets are read again, not the new holder.
        &[
            "apply",
            "plan.json",
            "--read",
            "lookup",
            "--yes",
            "-q",
            "-o",
            "report.csv",
        ],
    ));
    let got = outcomes(&report_rows(&dir.join("report.csv")));
    assert_eq!(
        got["jose.jonsson@contoso.com"],
        "target-changed-since-plan",
        "{}",
        stderr(&out)
    );
    assert_eq!(got["alice.adams@contoso.com"], "stamped");
    assert_eq!(got["carol.clark@contoso.com"], "target-synced");
    let rows = report_rows(&dir.join("report.csv"));
    let kate = rows
        .iter()
        .find(|r| r["upn"] == "kate.o'brien@contoso.com")
        .unwrap();
    assert_eq!(kate["outcome"], "anchor-held-by-user", "{kate:?}");
    assert_eq!(
        kate["holder_upn"],
        "partner_fabrikam.com#EXT#@contoso.onmicrosoft.com"
    );
    assert_eq!(kate["holder_id"], "27842dbc-eefd-546d-a525-65afb0f4d48a");
    assert!(kate["detail"].contains("partner_fabrikam.com"), "{kate:?}");
}

#[test]
fn plain_http_to_a_remote_graph_is_refused() {
    let dir = Dir::new();
    let out = run(dir
        .hardmatch()
        .args(["plan"])
        .arg(sample("csvde.csv"))
        .args(["-o", "p.csv", "--graph-url", "http://graph.example.com"])
        .env("HARDMATCH_ACCESS_TOKEN", "x"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing http://"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_finishes_in_flight_writes_and_reports_every_row() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 200);
    let graph = Graph::start(
        tenant,
        Config {
            latency_ms: (5, 10),
            ..fast()
        },
    );
    let child = graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "40"])
        .arg(&export)
        .args(["-o", "r.csv"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while graph.stats().writes_applied.len() < 10 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 200, "every row is in the report");
    let stamped = rows.iter().filter(|r| r["outcome"] == "stamped").count();
    let not_attempted = rows
        .iter()
        .filter(|r| r["outcome"] == "not-attempted")
        .count();
    assert_eq!(stamped + not_attempted, 200);
    assert!(not_attempted > 0, "it stopped early");
    assert_eq!(
        stamped,
        graph.stats().writes_applied.len(),
        "the report says exactly what reached Graph"
    );
}

/// Every token expiring at once while dozens of writes are in flight: each meets a 401, and
/// one new sign-in serves them all (the soak saw up to eleven before).
#[test]
fn every_token_expiring_mid_run_costs_one_new_sign_in() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 600);
    let cert = dir.join("emulator.pem");
    let config = Config {
        clients: vec![("app-1".into(), CLIENT_SECRET.into())],
        latency_ms: (40, 80),
        tls_cert_out: Some(cert.clone()),
        ..fast()
    };
    let graph = Graph::start(tenant, config);
    let child = graph
        .hardmatch_with_secret(&dir, &["apply", "--yes", "-q"], CLIENT_SECRET)
        .args(["--write-rate", "2000", "--concurrency", "32"])
        .arg(&export)
        .args(["-o", "r.csv"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while graph.stats().writes_applied.len() < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
    graph.running.emulator.expire_tokens();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 600);
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"));
    let stats = graph.stats();
    assert!(stats.writes_applied.len() == 600 && stats.writes_applied.values().all(|n| *n == 1));
    assert_eq!(
        stats.tokens_issued, 2,
        "the first sign-in and one after the expiry"
    );
}

#[test]
fn client_secret_sign_in_and_a_token_expiring_mid_run() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 60);
    let cert = dir.join("emulator.pem");
    let config = Config {
        clients: vec![("app-1".into(), CLIENT_SECRET.into())],
        // Tokens live 2 s: a 60-row run at 20 writes/s outlives several of them.
        token_lifetime_secs: 2.0,
        tls_cert_out: Some(cert.clone()),
        ..fast()
    };
    let graph = Graph::start(tenant, config);
    let out = run(graph
        .hardmatch_with_secret(&dir, &["apply", "--yes", "-q"], CLIENT_SECRET)
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"));
    assert!(
        graph.stats().tokens_issued >= 2,
        "a new token after the first expired: {}",
        graph.stats().tokens_issued
    );
    let everything = format!(
        "{}{}",
        stderr(&out),
        std::fs::read_to_string(dir.join("r.csv")).unwrap()
    );
    assert!(
        !everything.contains(CLIENT_SECRET),
        "the secret never reaches output"
    );
}

#[test]
fn a_wrong_client_secret_says_which_credential_failed_and_why() {
    let dir = Dir::new();
    let cert = dir.join("emulator.pem");
    let config = Config {
        clients: vec![("app-1".into(), "right".into())],
        tls_cert_out: Some(cert.clone()),
        ..fast()
    };
    let graph = Graph::sample_with(config);
    let url = graph.url().to_string();
    let out = run(dir
        .hardmatch()
        .args([
            "plan",
            "--auth",
            "secret",
            "--graph-url",
            &url,
            "--login-url",
            &url,
            "--ca-cert",
        ])
        .arg(&cert)
        .arg(sample("csvde.csv"))
        .args(["-o", "p.csv"])
        .env("AZURE_TENANT_ID", "72f988bf-0000-4000-8000-00000000c0a7")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", "wrong-secret-value"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("client secret") && err.contains("AADSTS7000215"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret-value"), "{err}");
}

#[test]
fn resume_moves_a_user_home_from_an_interrupted_federated_hop() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let ivan = graph
        .tenant()
        .users
        .into_iter()
        .find(|u| u.user_principal_name == "ivan.ito@fed.contoso.com")
        .unwrap()
        .id;
    // The crash came after the UPN moved out and before it came back.
    graph.edit_user(
        "ivan.ito@fed.contoso.com",
        serde_json::json!({"userPrincipalName": "ivan.ito@contoso.onmicrosoft.com"}),
    );
    let journal = [
        serde_json::json!({"kind": "run", "version": "0", "command": "apply", "input": "csvde.csv", "started": "2026-11-22T10:00:00Z"}),
        serde_json::json!({"kind": "intent", "row": 8, "step": "upn-out", "user_id": ivan, "upn": "ivan.ito@fed.contoso.com", "previous": "ivan.ito@fed.contoso.com", "new": "ivan.ito@contoso.onmicrosoft.com", "at": "2026-11-22T10:00:01Z"}),
        serde_json::json!({"kind": "result", "row": 8, "step": "upn-out", "applied": true, "outcome": "stamped", "http_status": 204, "request_id": null, "at": "2026-11-22T10:00:02Z"}),
    ];
    dir.write(
        "r.csv.journal",
        journal.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    let out = run(graph
        .hardmatch(
            &dir,
            &[
                "apply",
                "--yes",
                "-q",
                "--federated-hop",
                "--resume",
                "r.csv.journal",
            ],
        )
        .arg(sample("csvde.csv"))
        .args(["-o", "r.csv"]));
    assert!(
        stderr(&out).contains("moved 1 users back home"),
        "{}",
        stderr(&out)
    );
    let got = outcomes(&report_rows(&dir.join("r.csv")));
    assert_eq!(got["ivan.ito@fed.contoso.com"], "stamped");
    assert_eq!(
        graph.anchor_of("ivan.ito@fed.contoso.com").as_deref(),
        Some("T7QuCxT4zU65bifcqZckTQ=="),
        "home again, and stamped"
    );
}

#[test]
fn repeated_403s_stop_the_run_instead_of_failing_every_row() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 20);
    let graph = Graph::start(
        tenant,
        Config {
            forbid_writes: true,
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--concurrency", "1"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("stopping").count(), 1, "one message: {err}");
    assert!(
        err.contains("User.ReadWrite.All"),
        "it names the permission: {err}"
    );
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 20);
    let denied = rows
        .iter()
        .filter(|r| r["outcome"] == "permission-denied")
        .count();
    let rest = rows
        .iter()
        .filter(|r| r["outcome"] == "not-attempted")
        .count();
    assert_eq!((denied, rest), (3, 17));
    let patches = graph
        .stats()
        .requests
        .get("PATCH /users/{id}")
        .copied()
        .unwrap_or(0);
    assert_eq!(patches, 3, "no write sent after the third 403");
}

#[test]
fn throttling_below_the_quota_slows_the_run_and_loses_nothing() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 60);
    let faults = "429=0.2,seed=5".parse().unwrap();
    let graph = Graph::start(
        tenant,
        Config {
            faults,
            time_scale: 50.0,
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "100"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"));
    let stats = graph.stats();
    assert!(stats.throttled > 0);
    assert!(stats.writes_applied.values().all(|&n| n == 1));
}

/// `--emulate T --state S`: the rehearsal tenant outlives each command, so a rollback run as
/// its own command undoes an earlier `apply --emulate` (before, every command started again
/// from the tenant file and the rollback found nothing to undo).
#[test]
fn a_rehearsal_tenant_kept_in_a_state_file_lets_rollback_undo_an_earlier_apply() {
    let dir = Dir::new();
    let tenant_file = sample("tenant.json");
    let tenant_file = tenant_file.to_str().unwrap();
    let rehearse = |args: &[&str]| {
        let out = run(dir.hardmatch().args(args).args([
            "--emulate",
            tenant_file,
            "--state",
            "state.json",
            "--yes",
            "-q",
        ]));
        let code = out.status.code();
        (code, stderr(&out))
    };
    let before = hardmatch::tenant::Tenant::load(&sample("tenant.json")).unwrap();
    let anchor_of = |tenant: &hardmatch::tenant::Tenant, upn: &str| {
        tenant
            .users
            .iter()
            .find(|u| u.user_principal_name == upn)
            .unwrap()
            .on_premises_immutable_id
            .clone()
    };

    let sample_export = sample("excel-de.csv");
    let (code, err) = rehearse(&["apply", sample_export.to_str().unwrap(), "-o", "report.csv"]);
    assert_eq!(code, Some(1), "{err}");
    let stamped = hardmatch::tenant::Tenant::load(&dir.join("state.json")).unwrap();
    assert_eq!(anchor_of(&before, "alice.adams@contoso.com"), None);
    assert_eq!(
        anchor_of(&stamped, "alice.adams@contoso.com").as_deref(),
        Some("1wfM9xV8fUSHbcAbDlqeOA==")
    );

    let (code, err) = rehearse(&["rollback", "report.csv.journal", "-o", "rollback.csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("the tenant as state.json left it"), "{err}");
    let stamped = report_rows(&dir.join("report.csv"))
        .iter()
        .filter(|r| r["outcome"] == "stamped")
        .count();
    let rows = report_rows(&dir.join("rollback.csv"));
    assert_eq!(rows.len(), stamped);
    assert!(rows.iter().all(|r| r["outcome"] == "restored"), "{rows:?}");
    let restored = hardmatch::tenant::Tenant::load(&dir.join("state.json")).unwrap();
    assert_eq!(restored.users, before.users, "every anchor as it was");
}
