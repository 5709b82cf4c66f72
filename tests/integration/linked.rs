//! Targets linked to another on-premises object (`target-linked-elsewhere`): with
//! `--clear-object-identifier`, apply clears onPremisesObjectIdentifier on beta before the
//! stamp, journaled with the value it had, and rollback puts both back; an app Graph does
//! not let write that property gets the row's `permission-denied`, naming what it needs.

use hardmatch::emulator::{synthetic, Config};
use hardmatch::tenant::Tenant;

use crate::util::{fast, generated, report_rows, run, stderr, Dir, Graph};

/// The on-premises object user 1 was linked to before (another forest, say).
const ELSEWHERE: &str = "0b0b0b0b-0000-4000-8000-000000000001";

/// The generated tenant with user 1 linked to another on-premises object.
fn linked(tenant: &mut Tenant) {
    tenant.users[1].on_premises_object_identifier = Some(ELSEWHERE.into());
}

fn beta_patches(graph: &Graph) -> u64 {
    graph
        .stats()
        .requests
        .get("PATCH /beta/users/{id}")
        .copied()
        .unwrap_or(0)
}

#[test]
fn clear_object_identifier_then_stamp_and_rollback_puts_both_back() {
    let dir = Dir::new();
    let (mut tenant, export) = generated(&dir, 4);
    linked(&mut tenant);
    let graph = Graph::start(tenant, fast());
    let before = graph.tenant();

    let plain = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(&export)
        .args(["-o", "plan.csv"]));
    assert_eq!(plain.status.code(), Some(1), "{}", stderr(&plain));
    let planned = report_rows(&dir.join("plan.csv"));
    assert_eq!(planned[1]["outcome"], "target-linked-elsewhere");
    assert!(planned[1]["detail"].contains("--clear-object-identifier"));

    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--clear-object-identifier"])
        .arg(&export)
        .args(["-o", "a.csv"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("DESTRUCTIVE: 1 rows will clear onPremisesObjectIdentifier"),
        "its own confirmation line: {err}"
    );
    let rows = report_rows(&dir.join("a.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "stamped"), "{rows:?}");
    assert_eq!(rows[1]["action"], "clear-object-identifier-then-stamp");
    assert!(
        rows[1]["detail"].contains(ELSEWHERE),
        "{}",
        rows[1]["detail"]
    );
    assert_eq!(beta_patches(&graph), 1);
    let user1 = graph.tenant().users[1].clone();
    assert_eq!(user1.on_premises_object_identifier, None);
    assert_eq!(
        user1.on_premises_immutable_id.as_deref(),
        Some(rows[1]["immutable_id"].as_str())
    );
    let journal = std::fs::read_to_string(dir.join("a.csv.journal")).unwrap();
    let cleared = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["kind"] == "intent" && e["step"] == "object-identifier")
        .expect("the clear is journaled");
    assert_eq!(cleared["previous"], ELSEWHERE);

    let out = run(&mut graph.hardmatch(
        &dir,
        &["rollback", "a.csv.journal", "--yes", "-q", "-o", "r.csv"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "restored"), "{rows:?}");
    assert_eq!(
        graph.tenant(),
        before,
        "the object identifier and every anchor are back"
    );
    assert_eq!(beta_patches(&graph), 2);
}

#[test]
fn an_app_graph_will_not_let_write_the_object_identifier_gets_that_rows_permission_denied() {
    let dir = Dir::new();
    let (mut tenant, export) = generated(&dir, 4);
    linked(&mut tenant);
    let graph = Graph::start(
        tenant,
        Config {
            forbid_object_identifier_writes: true,
            ..fast()
        },
    );
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--clear-object-identifier"])
        .arg(&export)
        .args(["-o", "a.csv"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("stopping"), "{err}");
    let rows = report_rows(&dir.join("a.csv"));
    assert_eq!(rows[1]["outcome"], "permission-denied");
    for needed in [
        "User-OnPremisesSyncBehavior.ReadWrite.All",
        "Hybrid Identity Administrator",
    ] {
        assert!(rows[1]["detail"].contains(needed), "{}", rows[1]["detail"]);
    }
    let stamped = rows.iter().filter(|r| r["outcome"] == "stamped").count();
    assert_eq!(stamped, 3, "the other rows go on");
    let user1 = graph.tenant().users[1].clone();
    assert_eq!(
        user1.on_premises_object_identifier.as_deref(),
        Some(ELSEWHERE)
    );
    assert_eq!(
        user1.on_premises_immutable_id, None,
        "no stamp without the clear"
    );
    assert_eq!(synthetic::cloud_id(1), user1.id);
}

#[test]
fn rollback_puts_back_an_object_identifier_whose_stamp_graph_then_refused() {
    let dir = Dir::new();
    let (tenant, _) = generated(&dir, 4);
    let graph = Graph::start(tenant, fast());
    let user1 = synthetic::cloud_id(1);
    // The run cleared user 1's object identifier, then Graph refused its stamp.
    let journal = [
        serde_json::json!({"kind": "run", "version": "0", "command": "apply", "input": "export.csv", "started": "2026-12-03T10:00:00Z"}),
        serde_json::json!({"kind": "intent", "row": 2, "step": "object-identifier", "user_id": user1, "upn": "user1@contoso.com", "previous": ELSEWHERE, "new": null, "at": "2026-12-03T10:00:01Z"}),
        serde_json::json!({"kind": "result", "row": 2, "step": "object-identifier", "user_id": user1, "applied": true, "outcome": "stamped", "http_status": 204, "request_id": null, "at": "2026-12-03T10:00:02Z"}),
        serde_json::json!({"kind": "intent", "row": 2, "step": "anchor", "user_id": user1, "upn": "user1@contoso.com", "previous": null, "new": "EjQAAAAAAECAAAAAAAAAAQ==", "at": "2026-12-03T10:00:03Z"}),
        serde_json::json!({"kind": "result", "row": 2, "step": "anchor", "user_id": user1, "applied": false, "outcome": "graph-error", "http_status": 500, "request_id": null, "at": "2026-12-03T10:00:04Z"}),
    ];
    dir.write(
        "a.csv.journal",
        journal.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    let out = run(&mut graph.hardmatch(
        &dir,
        &["rollback", "a.csv.journal", "--yes", "-q", "-o", "r.csv"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "restored", "{:?}", rows[0]);
    assert_eq!(rows[0]["action"], "put-back-object-identifier");
    let now = graph.tenant().users[1].clone();
    assert_eq!(
        now.on_premises_object_identifier.as_deref(),
        Some(ELSEWHERE)
    );
    assert_eq!(now.on_premises_immutable_id, None, "the anchor as it was");
}
