//! Reading the tenant through a Graph that misbehaves: `snapshot` pages through 429s, 503s,
//! connection resets and a token that expires mid-listing; `plan --read lookup` gets inner
//! 429s inside its `$batch`es. Every user must come back exactly once.

use std::collections::BTreeSet;

use hardmatch::emulator::throttle::Quotas;
use hardmatch::emulator::Config;
use hardmatch::tenant::Tenant;

use crate::util::{fast, generated, report_rows, run, stderr, Dir, Graph, CLIENT_SECRET};

fn ids(tenant: &Tenant) -> BTreeSet<String> {
    tenant.users.iter().map(|u| u.id.clone()).collect()
}

/// Asserts the saved snapshot holds exactly the emulator's users, each once.
fn assert_whole(graph: &Graph, dir: &Dir) {
    let saved = Tenant::load(&dir.join("tenant.json")).unwrap();
    let live = graph.tenant();
    assert_eq!(
        saved.users.len(),
        live.users.len(),
        "no user twice, none lost"
    );
    assert_eq!(ids(&saved), ids(&live));
    assert_eq!(saved.deleted_users.len(), live.deleted_users.len());
    assert_eq!(saved.domains.len(), live.domains.len());
}

#[test]
fn snapshot_pages_through_429s_503s_and_resets_and_keeps_every_user_once() {
    let dir = Dir::new();
    // Eleven pages: with close to half of all answers faulty, the listing meets them.
    let (tenant, _) = generated(&dir, 10_000);
    let config = Config {
        faults: "429=0.3,503=0.1,reset=0.05,seed=11".parse().unwrap(),
        time_scale: 50.0,
        ..fast()
    };
    let graph = Graph::start(tenant, config);
    let out = run(graph
        .hardmatch(&dir, &["snapshot"])
        .args(["-o", "tenant.json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_whole(&graph, &dir);
    let stats = graph.stats();
    // Faulty answers are not counted by route, only in all: more of them than there are
    // requests outside the listing means the listing met some.
    let outside_listing: u64 = stats
        .requests
        .iter()
        .filter(|(route, _)| !["GET /users", "GET /beta/users"].contains(&route.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert!(stats.faults > outside_listing, "{stats:?}");
    // A reset comes after the page was served: that page is served again.
    assert!(stats.requests["GET /users"] >= 11, "{stats:?}");
}

#[test]
fn a_token_expiring_mid_snapshot_is_renewed_and_the_snapshot_is_whole() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 3_000);
    let cert = dir.join("emulator.pem");
    let config = Config {
        clients: vec![("app-1".into(), CLIENT_SECRET.into())],
        // Some request in the listing makes every issued token expire.
        faults: "expire=0.3,seed=4".parse().unwrap(),
        tls_cert_out: Some(cert.clone()),
        ..fast()
    };
    let graph = Graph::start(tenant, config);
    let out = run(&mut graph.hardmatch_with_secret(
        &dir,
        &["snapshot", "-o", "tenant.json"],
        CLIENT_SECRET,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_whole(&graph, &dir);
    let stats = graph.stats();
    assert!(stats.faults >= 1, "a token expired: {stats:?}");
    assert!(
        stats.tokens_issued >= 2,
        "a new token after the first expired: {stats:?}"
    );
}

#[test]
fn lookups_retry_inner_429s_and_plan_every_row() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 1_200);
    let config = Config {
        // A small tenant's budget cut to 40 resource units per 10 s: most inner GETs of a
        // 20-request $batch meet a 429 and must be sent again after their Retry-After. At
        // time scale 30 the budget refills 120 a wall-clock second: the plan's few hundred
        // lookups meet it even on a loaded machine (at 100 a slow client sometimes never met a
        // 429), and are not throttled out (at 10 they were).
        quotas: Quotas {
            resource_units_per_10s: Some(40.0),
            ..Quotas::default()
        },
        time_scale: 30.0,
        ..fast()
    };
    let graph = Graph::start(tenant, config);
    let out = run(graph
        .hardmatch(&dir, &["plan", "--read", "lookup"])
        .arg(&export)
        .args(["-o", "plan.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("plan.csv"));
    assert_eq!(rows.len(), 1_200);
    let planned: BTreeSet<&str> = rows.iter().map(|r| r["outcome"].as_str()).collect();
    assert_eq!(planned, BTreeSet::from(["would-stamp"]), "{}", stderr(&out));
    assert!(graph.stats().throttled > 0, "inner 429s did happen");
    assert!(stderr(&out).contains("per-row lookups"), "{}", stderr(&out));
}

#[test]
fn odd_upns_are_found_and_stamped_whichever_way_the_tenant_is_read() {
    // An apostrophe, a guest's `#EXT#` UPN (planned as a member: --allow-guests) and a UPN
    // starting with `$` (docs/graph.md).
    let export = "\"UserPrincipalName\",\"ObjectGUID\"\r\n\
        \"kate.o'brien@contoso.com\",\"cdd1e80f-e37d-4264-807e-ec0b2b2f4d7b\"\r\n\
        \"partner_fabrikam.com#EXT#@contoso.onmicrosoft.com\",\"0d8c1a7e-2a4b-4c1e-9d3f-6b5a4c3d2e1f\"\r\n\
        \"$svc-backup@contoso.com\",\"5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b\"\r\n";
    for how in ["bulk", "lookup"] {
        let graph = Graph::sample();
        let dir = Dir::new();
        let input = dir.write("odd.csv", export);
        let out = run(graph
            .hardmatch(&dir, &["plan", "--allow-guests", "--read", how])
            .arg(&input)
            .args(["-o", "plan.csv"]));
        assert_eq!(out.status.code(), Some(0), "{how}: {}", stderr(&out));
        let planned = report_rows(&dir.join("plan.csv"));
        assert!(
            planned.iter().all(|r| r["outcome"] == "would-stamp"),
            "{how}: {planned:?}"
        );
        let out = run(graph
            .hardmatch(
                &dir,
                &["apply", "--allow-guests", "--yes", "-q", "--read", how],
            )
            .arg(&input)
            .args(["-o", "report.csv"]));
        assert_eq!(out.status.code(), Some(0), "{how}: {}", stderr(&out));
        for row in report_rows(&dir.join("report.csv")) {
            assert_eq!(row["outcome"], "stamped", "{how}: {row:?}");
            assert_eq!(
                graph.anchor_of(&row["upn"]).as_deref(),
                Some(row["immutable_id"].as_str()),
                "{how}: the right user holds the anchor"
            );
        }
    }
}

#[test]
fn a_tenant_that_blocks_hard_match_takeover_is_named_before_stamping() {
    let dir = Dir::new();
    let (mut tenant, export) = generated(&dir, 3);
    tenant.block_cloud_object_takeover_through_hard_match_enabled = Some(true);
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(&export)
        .args(["-o", "plan.xlsx"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WARNING: this tenant blocks hard-match takeover"),
        "{}",
        stderr(&out)
    );
    use calamine::Reader;
    let mut workbook = calamine::open_workbook_auto(dir.join("plan.xlsx")).unwrap();
    let summary = workbook.worksheet_range("Summary").unwrap();
    assert!(summary
        .rows()
        .flat_map(|r| r.iter().map(|c| c.to_string()))
        .any(|c| c.contains("blockCloudObjectTakeoverThroughHardMatchEnabled")));
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(&export)
        .args(["-o", "report.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WARNING: this tenant blocks"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn match_by_mail_finds_mail_and_smtp_proxies_alike_with_either_read() {
    use hardmatch::tenant::User;
    let dir = Dir::new();
    let (mut tenant, _) = generated(&dir, 0);
    let user = |id: &str, upn: &str, mail: Option<&str>, proxies: &[&str]| User {
        id: id.into(),
        user_principal_name: upn.into(),
        mail: mail.map(str::to_string),
        proxy_addresses: proxies.iter().map(|p| p.to_string()).collect(),
        ..User::default()
    };
    tenant.users = vec![
        user(
            "id-ann",
            "ann@contoso.onmicrosoft.com",
            Some("Ann.Lee@fabrikam.com"),
            &[],
        ),
        user(
            "id-ben",
            "ben@contoso.onmicrosoft.com",
            None,
            &["SMTP:ben@contoso.com", "smtp:Ben.Ng@fabrikam.com"],
        ),
        user(
            "id-cy1",
            "cy1@contoso.onmicrosoft.com",
            Some("shared@fabrikam.com"),
            &[],
        ),
        user(
            "id-cy2",
            "cy2@contoso.onmicrosoft.com",
            None,
            &["SMTP:shared@fabrikam.com"],
        ),
    ];
    // The old forest's UPNs match nothing in the cloud: only the mail column can.
    let export = "UserPrincipalName,mail,ObjectGUID\n\
        ann@old.local,ann.lee@fabrikam.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\n\
        ben@old.local,ben.ng@fabrikam.com,3ab39606-c642-489b-84b6-58c038d3ef39\n\
        cy@old.local,shared@fabrikam.com,8c4ac332-975f-4717-ad7b-ba4a4e968fff\n\
        dee@old.local,nobody@fabrikam.com,a1d2c3d4-b5f6-4f90-abcd-ef1234567890\n";
    let input = dir.write("by-mail.csv", export);
    let graph = Graph::start(tenant, fast());
    for how in ["bulk", "lookup"] {
        let report = format!("{how}.csv");
        let out = run(graph
            .hardmatch(&dir, &["plan", "--match", "mail", "--read", how])
            .arg(&input)
            .args(["-o", &report]));
        assert_eq!(out.status.code(), Some(1), "{how}: {}", stderr(&out));
        let rows = report_rows(&dir.join(&report));
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r["outcome"].as_str(), r["cloud_user_id"].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("would-stamp", "id-ann"),
                ("would-stamp", "id-ben"),
                ("target-ambiguous", ""),
                ("target-not-found", ""),
            ],
            "{how}"
        );
        assert!(
            rows[2]["detail"].contains("cy1@contoso.onmicrosoft.com"),
            "{how}"
        );
    }
}

/// A snapshot records when it was read; a plan made from it states that age in its summary,
/// and warns when it is older than `--max-snapshot-age` or does not say.
#[test]
fn a_snapshot_records_its_time_and_a_plan_from_it_states_its_age() {
    let dir = Dir::new();
    let graph = Graph::sample();
    let before = chrono::Utc::now();
    let out = run(&mut graph.hardmatch(&dir, &["snapshot", "-o", "tenant.json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let saved = Tenant::load(&dir.join("tenant.json")).unwrap();
    let taken = saved.taken_at.expect("the snapshot says when it was read");
    assert!(taken >= before && taken <= chrono::Utc::now(), "{taken}");

    let plan = |tenant: &str, extra: &[&str]| {
        let out = run(dir
            .hardmatch()
            .args([
                "plan",
                crate::util::sample("getaduser-ps51.csv").to_str().unwrap(),
            ])
            .args(["--snapshot", tenant, "-o", "plan.json"])
            .args(extra));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
        let notes = json["summary"]["notes"].as_array().unwrap().clone();
        let age = notes
            .iter()
            .find(|n| n[0].as_str().unwrap().ends_with("snapshot age"))
            .expect("an age note")
            .clone();
        (stderr(&out), age)
    };

    let (err, age) = plan("tenant.json", &[]);
    assert_eq!(age[0], "snapshot age", "{age}");
    assert!(age[1].as_str().unwrap().starts_with("read "), "{age}");
    assert!(!err.contains("WARNING: snapshot"), "{err}");

    let mut old = saved.clone();
    old.taken_at = Some(taken - chrono::Duration::days(3));
    old.save(&dir.join("old.json")).unwrap();
    let (err, age) = plan("old.json", &[]);
    assert_eq!(age[0], "WARNING: snapshot age", "{age}");
    assert!(err.contains("WARNING: snapshot old.json: read "), "{err}");
    assert!(err.contains("older than --max-snapshot-age 1day"), "{err}");
    let (err, age) = plan("old.json", &["--max-snapshot-age", "1week"]);
    assert_eq!(age[0], "snapshot age", "{age}");
    assert!(!err.contains("WARNING: snapshot"), "{err}");

    let mut timeless = saved;
    timeless.taken_at = None;
    timeless.save(&dir.join("timeless.json")).unwrap();
    let (err, age) = plan("timeless.json", &[]);
    assert!(age[1].as_str().unwrap().starts_with("unknown"), "{age}");
    assert!(
        err.contains("WARNING: snapshot timeless.json: unknown"),
        "{err}"
    );
}
