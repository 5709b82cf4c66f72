//! The writer under the real service, through the binary: 403s per target, a missing write
//! permission, a token that expires and cannot be renewed, the write quota counted per
//! request, and a service that throttles below the configured rate.

use std::time::{Duration, Instant};

use hardmatch::emulator::throttle::Quotas;
use hardmatch::emulator::{synthetic, Config};

use crate::util::{fast, generated, report_rows, run, stderr, Dir, Graph, CLIENT_SECRET};

fn count(rows: &[std::collections::HashMap<String, String>], outcome: &str) -> usize {
    rows.iter().filter(|r| r["outcome"] == outcome).count()
}

fn patches(graph: &Graph) -> u64 {
    graph
        .stats()
        .requests
        .get("PATCH /users/{id}")
        .copied()
        .unwrap_or(0)
}

#[test]
fn privileged_targets_are_permission_denied_one_by_one_and_the_run_goes_on() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 40);
    // Four admins next to each other in the export (rows 12 to 15), then every third user,
    // hold a privileged role the app may not touch. The first rows go through first (at 10
    // writes a second, a burst of 10).
    let privileged: Vec<String> = (11..15)
        .chain((19..40).step_by(3))
        .map(synthetic::cloud_id)
        .collect();
    let graph = Graph::start(
        tenant,
        Config {
            forbid_writes_to: privileged.clone(),
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "10"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(count(&rows, "permission-denied"), privileged.len());
    assert_eq!(count(&rows, "stamped"), 40 - privileged.len());
    for row in rows.iter().filter(|r| r["outcome"] == "permission-denied") {
        assert!(privileged.contains(&row["cloud_user_id"]), "{row:?}");
        assert!(
            row["detail"].contains("sensitive attributes"),
            "{}",
            row["detail"]
        );
    }
}

#[test]
fn admins_first_in_the_export_do_not_stop_a_run_that_could_not_read_roles() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 20);
    // The first four users, then every fifth, are admins, and the role reads are refused, so
    // every target may be privileged: their 403s come before any write went through, and are
    // still about them alone (an app without the permission is apply.rs's exact-count test).
    let privileged: Vec<String> = (0..4)
        .chain((9..20).step_by(5))
        .map(synthetic::cloud_id)
        .collect();
    let graph = Graph::start(
        tenant,
        Config {
            forbid_writes_to: privileged.clone(),
            forbid_role_reads: true,
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--concurrency", "1"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(count(&rows, "permission-denied"), privileged.len());
    assert_eq!(count(&rows, "stamped"), 20 - privileged.len());
    for row in rows.iter().filter(|r| r["outcome"] == "permission-denied") {
        assert!(privileged.contains(&row["cloud_user_id"]), "{row:?}");
        for named in ["sensitive attributes", "could not read roles"] {
            assert!(row["detail"].contains(named), "{}", row["detail"]);
        }
    }
}

#[test]
fn an_expired_access_token_stops_the_run_with_one_message() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 400);
    let graph = Graph::start(
        tenant,
        Config {
            clients: vec![("app-1".into(), CLIENT_SECRET.into())],
            ..fast()
        },
    );
    let token = graph.issued_token();
    let child = dir
        .hardmatch()
        .args(["apply", "--yes", "-q", "--write-rate", "40"])
        .arg(&export)
        .args(["-o", "r.csv", "--graph-url", graph.url()])
        .env("HARDMATCH_ACCESS_TOKEN", &token)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while graph.stats().writes_applied.len() < 20 {
        std::thread::sleep(Duration::from_millis(10));
    }
    graph.running.emulator.expire_tokens();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("stopping").count(), 1, "one message: {err}");
    assert!(err.contains("HARDMATCH_ACCESS_TOKEN"), "{err}");
    assert!(!err.contains(&token), "the token is never printed");
    let rows = report_rows(&dir.join("r.csv"));
    let stamped = count(&rows, "stamped");
    assert_eq!(stamped, graph.stats().writes_applied.len());
    let failed = count(&rows, "graph-error");
    assert!(failed <= 32, "only the writes in flight fail: {failed}");
    assert_eq!(count(&rows, "not-attempted"), 400 - stamped - failed);
    assert!(count(&rows, "not-attempted") > 300, "it stopped early");
}

/// An emulator enforcing `writes_per_second` from the first second, time-scaled: a bucket of
/// 30 writes, which a run sending three writes a row at the row rate overflows at once, and
/// which leaves a paced run 20 writes of slack for a loaded machine's stalls.
fn enforcing(tenant: hardmatch::tenant::Tenant, writes_per_second: f64, scale: f64) -> Graph {
    Graph::start(
        tenant,
        Config {
            quotas: Quotas {
                app_writes_per_150s: writes_per_second * 150.0,
                app_write_burst: Some(30.0),
                ..Quotas::default()
            },
            time_scale: scale,
            ..fast()
        },
    )
}

#[test]
fn hop_rows_at_the_quota_meet_no_429_because_every_request_takes_a_token() {
    let dir = Dir::new();
    let export = dir.write("export.csv", synthetic::export_csv(20));
    let graph = enforcing(synthetic::federated(20), 10.0, 1.0);
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--federated-hop"])
        .args(["--write-rate", "10"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(count(&rows, "stamped"), 20);
    assert_eq!(patches(&graph), 60, "three PATCHes a row");
    assert_eq!(
        graph.stats().throttled,
        0,
        "60 writes at 10 a second, not 30"
    );
}

#[test]
fn a_service_throttling_at_half_the_rate_is_written_without_a_storm_of_429s() {
    let dir = Dir::new();
    let (_, export) = generated(&dir, 300);
    // Graph allows 10 writes a second; hardmatch is told 20 (both 10 times faster).
    let graph = enforcing(synthetic::tenant(300), 10.0, 10.0);
    let started = Instant::now();
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "200"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(count(&rows, "stamped"), 300);
    let stats = graph.stats();
    assert!(stats.writes_applied.values().all(|&n| n == 1));
    assert!(
        stats.throttled < 150,
        "{} 429s for 300 writes",
        stats.throttled
    );
    // The floor is 28.8 s of Graph time, 2.9 s here; the figure is the bench's
    // (`cargo bench --bench graph -- throttled`). This bound only catches a stall.
    assert!(wall < 20.0, "{wall:.1} s");
}

#[test]
fn the_emulator_command_forbids_writes_to_named_users_and_holds_a_small_write_bucket() {
    let (mut child, url) = crate::util::emulator_command(
        crate::util::TOKEN,
        &[
            "--forbid-writes-to",
            "someone@else.com,ALICE.ADAMS@contoso.com",
            "--writes-per-150s",
            "150",
            "--write-burst",
            "2",
        ],
    );
    let patch = |upn: &str| {
        let request = reqwest::Client::new()
            .patch(format!("{url}/v1.0/users/{upn}"))
            .bearer_auth(crate::util::TOKEN)
            .json(&serde_json::json!({"onPremisesImmutableId": "dGVzdGluZzEyMw=="}));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async { request.send().await.unwrap().status().as_u16() })
    };
    let statuses = [
        patch("alice.adams@contoso.com"),
        patch("jose.jonsson@contoso.com"),
        patch("mike.miller@contoso.com"),
    ];
    child.kill().unwrap();
    child.wait().unwrap();
    // Alice's write is refused for her alone; each write takes a token of the bucket of two,
    // so the third, at once, is throttled (one write a second refills it).
    assert_eq!(statuses, [403, 204, 429]);
}

/// Pete (Global Administrator) and Quinn (eligible through a role-assignable group) among the
/// sample's rows: with the role reads refused, the plan cannot tell, so apply writes them, and
/// Graph refuses their sensitive attributes. Those two rows alone are `permission-denied`;
/// the run goes on. An app that holds a privileged role writes them.
#[test]
fn privileged_targets_the_plan_could_not_see_are_denied_alone_unless_the_app_is_privileged() {
    let apply = |app_privileged: bool| {
        let graph = Graph::sample_with(Config {
            forbid_role_reads: true,
            app_privileged,
            ..fast()
        });
        let dir = Dir::new();
        let out = run(graph
            .hardmatch(&dir, &["apply", "--yes", "-q"])
            .arg(crate::util::sample("csvde.csv"))
            .args(["-o", "r.csv"]));
        let rows = report_rows(&dir.join("r.csv"));
        let outcome = |upn: &str| {
            let row = rows.iter().find(|r| r["upn"] == upn).unwrap();
            (row["outcome"].clone(), row["detail"].clone())
        };
        assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
        assert_eq!(
            outcome("alice.adams@contoso.com").0,
            "stamped",
            "{}",
            stderr(&out)
        );
        (
            outcome("pete.price@contoso.com"),
            outcome("quinn.quigley@contoso.com"),
            count(&rows, "stamped"),
        )
    };
    let (pete, quinn, stamped) = apply(false);
    for (outcome, detail) in [&pete, &quinn] {
        assert_eq!(outcome, "permission-denied", "{detail}");
        assert!(detail.contains("sensitive attributes"), "{detail}");
    }
    let (pete, quinn, stamped_by_a_privileged_app) = apply(true);
    assert_eq!(
        (pete.0.as_str(), quinn.0.as_str()),
        ("stamped", "stamped"),
        "{pete:?} {quinn:?}"
    );
    assert_eq!(
        stamped_by_a_privileged_app,
        stamped + 2,
        "the same run, those two written too"
    );
}

#[test]
fn the_emulator_command_guards_privileged_users_unless_told_the_app_is_privileged() {
    // Pete's write, then a read of his anchor: (the write's status, what the read saw).
    let patch_pete = |extra: &[&str]| {
        let (mut child, url) = crate::util::emulator_command(crate::util::TOKEN, extra);
        let pete = format!("{url}/v1.0/users/pete.price@contoso.com");
        let client = reqwest::Client::new();
        let write = client
            .patch(&pete)
            .bearer_auth(crate::util::TOKEN)
            .json(&serde_json::json!({"onPremisesImmutableId": "dGVzdGluZzEyMw=="}));
        let read = client
            .get(format!("{pete}?$select=onPremisesImmutableId"))
            .bearer_auth(crate::util::TOKEN);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let seen = runtime.block_on(async {
            let status = write.send().await.unwrap().status().as_u16();
            let read: serde_json::Value = read.send().await.unwrap().json().await.unwrap();
            (status, read["onPremisesImmutableId"].clone())
        });
        child.kill().unwrap();
        child.wait().unwrap();
        seen
    };
    let written = serde_json::json!("dGVzdGluZzEyMw==");
    assert_eq!(patch_pete(&[]), (403, serde_json::Value::Null));
    assert_eq!(patch_pete(&["--app-privileged"]), (204, written));
    assert_eq!(
        patch_pete(&["--app-privileged", "--read-lag-ms", "60000"]),
        (204, serde_json::Value::Null),
        "a read within the lag sees the state before the write"
    );
}

/// A generated tenant of `n` where users 0 and 2 are members, and 1 and 4 owners, of the
/// role-assignable group "Helpdesk Tier", which holds no role: Graph guards their sensitive
/// attributes all the same. They come first, so that three of their 403s meet the run before
/// any write went through.
fn with_a_role_assignable_group(n: usize) -> (hardmatch::tenant::Tenant, Vec<String>) {
    let mut tenant = synthetic::tenant(n);
    synthetic::add_role_assignable_group(&mut tenant, "Helpdesk Tier", &[0, 2], &[1, 4]);
    let guarded = [0, 1, 2, 4].map(synthetic::cloud_id).to_vec();
    (tenant, guarded)
}

#[track_caller]
fn only_guarded_are_denied(
    rows: &[std::collections::HashMap<String, String>],
    guarded: &[String],
    success: &str,
) {
    assert_eq!(count(rows, "permission-denied"), guarded.len(), "{rows:?}");
    assert_eq!(count(rows, success), rows.len() - guarded.len(), "{rows:?}");
    for row in rows.iter().filter(|r| r["outcome"] == "permission-denied") {
        assert!(guarded.contains(&row["cloud_user_id"]), "{row:?}");
        for named in [
            "sensitive attributes",
            "of the role-assignable group Helpdesk Tier",
        ] {
            assert!(row["detail"].contains(named), "{}", row["detail"]);
        }
    }
}

#[test]
fn members_and_owners_of_a_role_assignable_group_are_denied_alone_and_the_run_goes_on() {
    let dir = Dir::new();
    let (tenant, guarded) = with_a_role_assignable_group(12);
    let export = crate::util::export(&dir, 12);
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--concurrency", "1"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    only_guarded_are_denied(&report_rows(&dir.join("r.csv")), &guarded, "stamped");
    for user in graph.tenant().users {
        assert_eq!(
            user.on_premises_immutable_id.is_none(),
            guarded.contains(&user.id),
            "{}",
            user.id
        );
    }

    // An app that holds a privileged role writes them too.
    let dir = Dir::new();
    let (tenant, _) = with_a_role_assignable_group(12);
    let export = crate::util::export(&dir, 12);
    let graph = Graph::start(
        tenant,
        Config {
            app_privileged: true,
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report_rows(&dir.join("r.csv")), "stamped"), 12);
}

#[test]
fn an_approved_plan_file_with_members_and_owners_of_a_role_assignable_group_goes_on() {
    let dir = Dir::new();
    let (tenant, guarded) = with_a_role_assignable_group(12);
    let export = crate::util::export(&dir, 12);
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["plan", "-o", "plan.csv"])
        .arg(&export));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "apply",
            "plan.csv",
            "--yes",
            "-q",
            "--concurrency",
            "1",
            "-o",
            "r.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    only_guarded_are_denied(&report_rows(&dir.join("r.csv")), &guarded, "stamped");
}

#[test]
fn clear_of_members_and_owners_of_a_role_assignable_group_goes_on() {
    let (rows, guarded) = clear_with_members_first(fast());
    only_guarded_are_denied(&rows, &guarded, "cleared");
}

/// A clear whose read of the groups is refused cannot tell who is guarded: the 403s on the
/// members and owners that come first are theirs, not a missing permission, and the run goes
/// on (as an apply does with rows planned `roles-unknown`).
#[test]
fn clear_that_could_not_read_the_groups_goes_on_past_their_members() {
    let (rows, guarded) = clear_with_members_first(Config {
        forbid_group_reads: true,
        ..fast()
    });
    assert_eq!(count(&rows, "permission-denied"), guarded.len(), "{rows:?}");
    assert_eq!(
        count(&rows, "cleared"),
        rows.len() - guarded.len(),
        "{rows:?}"
    );
    for row in rows.iter().filter(|r| r["outcome"] == "permission-denied") {
        assert!(guarded.contains(&row["cloud_user_id"]), "{row:?}");
        assert!(
            row["detail"].contains("could not read roles or groups"),
            "{}",
            row["detail"]
        );
    }
}

/// `clear` of ten stamped users, the members and owners of a role-assignable group first, one
/// write at a time, against an emulator with `config`: checks the run was not stopped, and
/// gives the report's rows and the guarded users.
fn clear_with_members_first(
    config: Config,
) -> (Vec<std::collections::HashMap<String, String>>, Vec<String>) {
    let dir = Dir::new();
    let (mut tenant, guarded) = with_a_role_assignable_group(10);
    for (i, user) in tenant.users.iter_mut().enumerate() {
        user.on_premises_immutable_id = Some(format!("c3RhbXBlZA{i}"));
    }
    let list: String = std::iter::once("UserPrincipalName\n".to_string())
        .chain((0..10).map(|i| format!("user{i}@contoso.com\n")))
        .collect();
    let list = dir.write("list.csv", list);
    let graph = Graph::start(tenant, config);
    let out = run(graph
        .hardmatch(&dir, &["clear", "--yes", "-q", "--concurrency", "1"])
        .arg(&list)
        .args(["-o", "c.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    (report_rows(&dir.join("c.csv")), guarded)
}
