//! Graph's missing read-after-write guarantee, through the binary: against an emulator whose
//! reads lag behind writes and purges (`read_lag_ms`), a purge-then-stamp and an
//! `apply --verify` still end `stamped`, because such answers are asked again with backoff
//! (`graph::pace::StaleRead`) before they become an outcome.

use std::collections::HashMap;

use hardmatch::emulator::Config;

use crate::util::{fast, generated, report_rows, run, sample, stderr, Dir, Graph};

/// Reads see the state before a write for 1.5 s: longer than a client needs to read back,
/// shorter than the stale-read policy waits in all.
fn lagging() -> Config {
    Config {
        read_lag_ms: 1500,
        ..fast()
    }
}

fn outcome_of(rows: &[HashMap<String, String>], upn: &str) -> String {
    rows.iter().find(|r| r["upn"] == upn).unwrap()["outcome"].clone()
}

#[test]
fn a_stamp_right_after_purging_its_holder_is_stamped_though_graph_still_sees_the_holder() {
    let graph = Graph::sample_with(lagging());
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-v", "--purge-deleted-holders"])
        .arg(sample("csvde.csv"))
        .args(["-o", "r.csv"]));
    let said = stderr(&out);
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(
        outcome_of(&rows, "gina.gray@contoso.com"),
        "stamped",
        "{said}"
    );
    assert_eq!(
        graph.anchor_of("gina.gray@contoso.com").as_deref(),
        Some("YNUtEnUxmkygYLgUmFN2Vg==")
    );
    assert!(
        said.contains("the holder this row purged still holds the anchor: perhaps a stale read"),
        "each retry is logged at -v: {said}"
    );
    let stats = graph.stats();
    assert_eq!(
        stats.requests["DELETE /directory/deletedItems/{id}"], 1,
        "purged once"
    );
    assert_eq!(
        stats.writes_applied.values().sum::<u64>(),
        stats.writes_applied.len() as u64,
        "each stamp applied once"
    );
}

#[test]
fn apply_verify_reads_back_every_stamp_though_reads_lag_behind() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 25);
    let graph = Graph::start(tenant, lagging());
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--verify"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    let not_stamped: Vec<_> = rows.iter().filter(|r| r["outcome"] != "stamped").collect();
    assert!(not_stamped.is_empty(), "{not_stamped:?}");
    let reads = graph.stats().requests["GET /users/{id}"];
    assert!(
        reads > 25,
        "the stale read-backs were read again: {reads} reads"
    );
}

/// A run cut off between sending Alice's stamp and journaling its answer: the stamp reached
/// Graph a moment ago, and reads do not show it yet. Resume's "was it applied?" read is asked
/// again until it does, and the stamp is not sent a second time.
#[test]
fn resume_waits_for_a_stale_read_before_sending_an_in_doubt_write_again() {
    // A full run on another emulator gives a real journal; its run line and Alice's anchor
    // intent, without the result, are what the cut-off run left.
    let flags = ["apply", "--yes", "-v"];
    let dir = Dir::new();
    run(Graph::sample()
        .hardmatch(&dir, &flags)
        .arg(sample("csvde.csv"))
        .args(["-o", "full.csv"]));
    let full = std::fs::read_to_string(dir.join("full.csv.journal")).unwrap();
    let entries: Vec<serde_json::Value> = full
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alice = entries
        .iter()
        .find(|e| e["kind"] == "intent" && e["upn"] == "alice.adams@contoso.com")
        .expect("Alice's intent")
        .clone();
    let cut_off = format!("{}\n{alice}\n", entries[0]);
    assert_eq!(entries[0]["kind"], "run");
    std::fs::write(dir.join("r.csv.journal"), cut_off).unwrap();

    // The stamp landed just now; reads lag 3 s behind it.
    let graph = Graph::sample_with(Config {
        read_lag_ms: 3000,
        ..fast()
    });
    let anchor = alice["new"].as_str().unwrap();
    graph.edit_user(
        "alice.adams@contoso.com",
        serde_json::json!({"onPremisesImmutableId": anchor}),
    );
    let out = run(graph
        .hardmatch(&dir, &flags)
        .args(["--resume", "r.csv.journal"])
        .arg(sample("csvde.csv"))
        .args(["-o", "r.csv"]));
    let said = stderr(&out);
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(
        outcome_of(&rows, "alice.adams@contoso.com"),
        "stamped",
        "{said}"
    );
    let alice_id = alice["user_id"].as_str().unwrap();
    assert_eq!(
        graph.stats().writes_applied[alice_id],
        1,
        "not sent again: {said}"
    );
    assert!(
        said.contains("was the in-doubt write applied: perhaps a stale read"),
        "{said}"
    );
}
