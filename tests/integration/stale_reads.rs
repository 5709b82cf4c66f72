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
