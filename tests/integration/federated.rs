//! Users in a federated domain, for every write command: with `--federated-hop`, apply, clear
//! and rollback move the UPN to the initial domain, write, and move it home, journaled; without
//! it their rows are planned `federated-domain` and nothing is sent. A stopover UPN that is
//! taken is named, with the user that holds it.

use std::collections::HashMap;

use hardmatch::emulator::synthetic;
use hardmatch::tenant::{Tenant, User};

use crate::util::{fast, report_rows, run, stderr, Dir, Graph};

type Row = HashMap<String, String>;

/// The generated tenant with contoso.com federated; the first `anchored` users already hold
/// an ImmutableId (what `--overwrite` replaces and a rollback puts back).
fn federated(n: usize, anchored: usize) -> Tenant {
    let mut tenant = synthetic::federated(n);
    for (i, user) in tenant.users.iter_mut().take(anchored).enumerate() {
        user.on_premises_immutable_id = Some(format!("b2xkLWFuY2hvci0{i}AAAAA=="));
    }
    tenant
}

fn patches(graph: &Graph) -> u64 {
    graph
        .stats()
        .requests
        .get("PATCH /users/{id}")
        .copied()
        .unwrap_or(0)
}

fn all(rows: &[Row], outcome: &str) -> bool {
    !rows.is_empty() && rows.iter().all(|r| r["outcome"] == outcome)
}

fn journal_steps(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn rollback_of_a_federated_hop_apply_goes_through_the_hop_and_restores_every_row() {
    let dir = Dir::new();
    let export = dir.write("export.csv", synthetic::export_csv(6));
    let graph = Graph::start(federated(6, 2), fast());
    let before = graph.tenant();
    let apply = ["apply", "--yes", "-q", "--federated-hop", "--overwrite"];
    let out = run(graph
        .hardmatch(&dir, &apply)
        .arg(&export)
        .args(["-o", "a.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(all(&report_rows(&dir.join("a.csv")), "stamped"));
    let applied = graph.tenant();
    let sent = patches(&graph);

    // Without the flag: planned federated-domain, nothing sent, nothing changed.
    let plain = [
        "rollback",
        "a.csv.journal",
        "--yes",
        "-q",
        "-o",
        "plain.csv",
    ];
    let out = run(&mut graph.hardmatch(&dir, &plain));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = report_rows(&dir.join("plain.csv"));
    assert!(all(&rows, "federated-domain"), "{rows:?}");
    assert!(rows[0]["detail"].contains("--federated-hop"), "{rows:?}");
    assert_eq!(patches(&graph), sent, "nothing sent without the flag");
    assert_eq!(graph.tenant(), applied);

    let hop = [
        "rollback",
        "a.csv.journal",
        "--yes",
        "-q",
        "--federated-hop",
        "-o",
        "r.csv",
    ];
    let out = run(&mut graph.hardmatch(&dir, &hop));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 6);
    assert!(all(&rows, "restored"), "{rows:?}");
    assert_eq!(
        graph.tenant(),
        before,
        "every previous value is back (two values, four nulls), every UPN at home"
    );
    assert_eq!(patches(&graph), sent + 18, "three PATCHes a row");
    let steps = journal_steps(&dir.join("r.csv.journal"));
    for step in ["upn-out", "anchor", "upn-back"] {
        let results = steps
            .iter()
            .filter(|e| e["kind"] == "result" && e["step"] == step && e["applied"] == true)
            .count();
        assert_eq!(results, 6, "{step} journaled for every row");
    }
}

#[test]
fn clear_of_federated_users_hops_with_the_flag_and_is_planned_federated_domain_without() {
    let dir = Dir::new();
    let list: String = std::iter::once("UserPrincipalName\n".to_string())
        .chain((0..4).map(|i| format!("user{i}@contoso.com\n")))
        .collect();
    let list = dir.write("list.csv", list);
    let graph = Graph::start(federated(4, 4), fast());
    let before = graph.tenant();

    let out = run(graph
        .hardmatch(&dir, &["clear", "--yes", "-q"])
        .arg(&list)
        .args(["-o", "plain.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = report_rows(&dir.join("plain.csv"));
    assert!(all(&rows, "federated-domain"), "{rows:?}");
    assert_eq!(patches(&graph), 0, "nothing sent without the flag");

    let out = run(graph
        .hardmatch(&dir, &["clear", "--yes", "-q", "--federated-hop"])
        .arg(&list)
        .args(["-o", "c.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(all(&report_rows(&dir.join("c.csv")), "cleared"));
    assert_eq!(patches(&graph), 12, "three PATCHes a row");
    for user in &graph.tenant().users {
        assert_eq!(user.on_premises_immutable_id, None, "{}", user.id);
        assert!(
            user.user_principal_name.ends_with("@contoso.com"),
            "home again: {}",
            user.user_principal_name
        );
    }

    // And back: rollback puts each value back through the hop.
    let hop = [
        "rollback",
        "c.csv.journal",
        "--yes",
        "-q",
        "--federated-hop",
        "-o",
        "r.csv",
    ];
    let out = run(&mut graph.hardmatch(&dir, &hop));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(graph.tenant(), before);
}

#[test]
fn a_taken_stopover_upn_is_named_with_its_holder_and_the_user_is_left_where_it_was() {
    let dir = Dir::new();
    let export = dir.write("export.csv", synthetic::export_csv(3));
    let mut tenant = federated(3, 0);
    let squatter = User {
        id: "5eed0000-0000-4000-8000-000000000001".into(),
        user_principal_name: "user1@contoso.onmicrosoft.com".into(),
        ..User::default()
    };
    tenant.users.push(squatter.clone());
    let graph = Graph::start(tenant, fast());
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--federated-hop"])
        .arg(&export)
        .args(["-o", "a.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = report_rows(&dir.join("a.csv"));
    let user1 = rows
        .iter()
        .find(|r| r["cloud_upn"] == "user1@contoso.com")
        .unwrap();
    assert_eq!(user1["outcome"], "federated-domain", "{user1:?}");
    let detail = &user1["detail"];
    for named in [
        "user1@contoso.onmicrosoft.com (id 5eed0000-0000-4000-8000-000000000001)",
        "stopover",
        "userPrincipalName",
    ] {
        assert!(detail.contains(named), "{named} in: {detail}");
    }
    assert!(!detail.contains("holds the anchor"), "{detail}");
    assert_eq!(
        rows.iter().filter(|r| r["outcome"] == "stamped").count(),
        2,
        "the other rows go on"
    );
    let now = graph.tenant();
    let left = now
        .users
        .iter()
        .find(|u| u.id == synthetic::cloud_id(1))
        .unwrap();
    assert_eq!(left.user_principal_name, "user1@contoso.com");
    assert_eq!(left.on_premises_immutable_id, None);
    assert!(now.users.contains(&squatter), "the holder is untouched");
    let steps = journal_steps(&dir.join("a.csv.journal"));
    let user1_steps: Vec<(&str, &str)> = steps
        .iter()
        .filter(|e| e["user_id"] == synthetic::cloud_id(1).as_str())
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["step"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        user1_steps,
        [("intent", "upn-out"), ("result", "upn-out")],
        "journaled, and nothing after the refused move"
    );
    let refused = steps
        .iter()
        .find(|e| e["kind"] == "result" && e["user_id"] == synthetic::cloud_id(1).as_str())
        .unwrap();
    assert_eq!(refused["applied"], false);
    assert_eq!(
        refused["outcome"], "federated-domain",
        "not an anchor conflict"
    );
}
