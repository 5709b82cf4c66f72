//! Planning for the next sync cycle (issue 14): targets sync would refuse (privileged,
//! linked elsewhere, guests), the `warnings` column, refused role reads, and
//! `--source-anchor` with each kind of evidence. The real binary against the emulator.

use std::collections::HashMap;

use hardmatch::anchor::ImmutableId;
use hardmatch::emulator::Config;
use hardmatch::tenant::{Domain, Tenant, User};

use crate::util::{fast, report_rows, run, sample, stderr, Dir, Graph};

type Row = HashMap<String, String>;

/// Plans `export` against `graph` with `extra` arguments: the rows by UPN, stderr, exit code.
fn plan(
    graph: &Graph,
    dir: &Dir,
    export: &std::path::Path,
    extra: &[&str],
) -> (HashMap<String, Row>, String, Option<i32>) {
    let out = run(graph
        .hardmatch(dir, &["plan"])
        .arg(export)
        .args(["-o", "plan.csv"])
        .args(extra));
    let rows = if dir.join("plan.csv").exists() {
        report_rows(&dir.join("plan.csv"))
            .into_iter()
            .map(|r| (r["upn"].clone(), r))
            .collect()
    } else {
        HashMap::new()
    };
    let _ = std::fs::remove_file(dir.join("plan.csv"));
    (rows, stderr(&out), out.status.code())
}

#[track_caller]
fn assert_row(
    rows: &HashMap<String, Row>,
    upn: &str,
    outcome: &str,
    warnings: &str,
    detail_has: &[&str],
) {
    let row = rows.get(upn).unwrap_or_else(|| panic!("no row for {upn}"));
    assert_eq!(
        (row["outcome"].as_str(), row["warnings"].as_str()),
        (outcome, warnings),
        "{upn}: {}",
        row["detail"]
    );
    for part in detail_has {
        assert!(
            row["detail"].contains(part),
            "{upn}: no {part:?} in {}",
            row["detail"]
        );
    }
}

#[test]
// Longer than 80 lines on purpose: one scenario against one emulator, each step checked in turn
fn plan_refuses_what_sync_would_refuse_and_warns_of_what_it_would_change() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let (rows, said, code) = plan(&graph, &dir, &sample("csvde.csv"), &[]);
    assert_eq!(code, Some(1), "{said}");
    assert_row(
        &rows,
        "pete.price@contoso.com",
        "target-privileged",
        "",
        &[
            "assigned Global Administrator directly",
            "remove the assignment or eligibility",
            "restore it",
        ],
    );
    assert_row(&rows, "quinn.quigley@contoso.com", "target-privileged", "", &["eligible for Privileged Role Administrator through the role-assignable group Tier 0 Admins"]);
    assert_row(
        &rows,
        "rosa.reyes@contoso.com",
        "target-linked-elsewhere",
        "",
        &[
            "9f1c2d3e-4b5a-4c6d-8e7f-a0b1c2d3e4f5",
            "--clear-object-identifier",
            "onPremisesObjectIdentifier\": null",
        ],
    );
    assert_row(
        &rows,
        "sam.stone@contoso.com",
        "target-guest",
        "",
        &["convertExternalToInternalMemberUser", "--allow-guests"],
    );
    assert_row(
        &rows,
        "uma.ueda@contoso.com",
        "would-stamp",
        "aliases-will-be-lost",
        &["uma@contoso.com, u.ueda@contoso.com"],
    );
    assert_row(
        &rows,
        "vic.vance@contoso.com",
        "would-stamp",
        "object-identifier-same",
        &["d3b07384-d113-4ec6-a8a4-5b1e0c2f6a7e"],
    );
    assert_row(&rows, "nina.nash@contoso.com", "would-stamp", "anchor-source-differs", &["used mS-DS-ConsistencyGuid (H+EUXYXDykOYtGivEfs7jw==), not objectGUID (fhlYetop7kSh8bMoBYwlhw==)", "--source-anchor object-guid"]);
    // A role that is not privileged (alice is a Helpdesk Administrator) blocks nothing.
    assert_row(&rows, "alice.adams@contoso.com", "would-stamp", "", &[]);
    assert!(said.contains("warning aliases-will-be-lost"), "{said}");
    assert!(said.contains("privileged roles: checked: 2 privileged role definitions, 2 assignments, 1 eligibilities, 1 role-assignable groups"), "{said}");
    assert!(said.contains("source anchor: mS-DS-ConsistencyGuid when set, else objectGUID (Cloud Sync and current Entra Connect), without evidence"), "{said}");
    // The documented requests: userType on v1.0, onPremisesObjectIdentifier from beta only,
    // privileged definitions from beta, assignments and eligibilities from v1.0.
    let log: Vec<String> = graph.stats().request_log.into_iter().collect();
    let asked = |what: &str| log.iter().any(|l| l.contains(what));
    assert!(asked("userType"), "{log:#?}");
    assert!(
        asked("GET /beta/users?%24select=id%2ConPremisesObjectIdentifier")
            || asked("GET /beta/users?$select=id%2ConPremisesObjectIdentifier"),
        "{log:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.starts_with("GET /v1.0/") && l.contains("onPremisesObjectIdentifier")),
        "{log:#?}"
    );
    assert!(
        asked(
            "GET /beta/roleManagement/directory/roleDefinitions?%24filter=isPrivileged%20eq%20true"
        ) || asked(
            "GET /beta/roleManagement/directory/roleDefinitions?$filter=isPrivileged%20eq%20true"
        ),
        "{log:#?}"
    );
    assert!(
        asked("GET /v1.0/roleManagement/directory/roleAssignments"),
        "{log:#?}"
    );
    assert!(
        asked("GET /v1.0/roleManagement/directory/roleEligibilitySchedules"),
        "{log:#?}"
    );
    assert!(asked("/groups/"), "{log:#?}");
    assert_eq!(graph.stats().writes_total, 0);
}

#[test]
fn lookups_read_object_identifiers_through_the_beta_batch() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let (rows, said, _) = plan(&graph, &dir, &sample("csvde.csv"), &["--read", "lookup"]);
    assert_row(
        &rows,
        "rosa.reyes@contoso.com",
        "target-linked-elsewhere",
        "",
        &[],
    );
    assert_row(
        &rows,
        "vic.vance@contoso.com",
        "would-stamp",
        "object-identifier-same",
        &[],
    );
    assert!(
        graph.stats().requests.contains_key("POST /beta/$batch"),
        "{said}"
    );
}

#[test]
fn allow_guests_plans_a_guest_as_a_member() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let (rows, said, _) = plan(
        &graph,
        &dir,
        &sample("getaduser-ps51.csv"),
        &["--allow-guests"],
    );
    assert_row(&rows, "sam.stone@contoso.com", "would-stamp", "", &[]);
    assert!(!said.contains("target-guest"), "{said}");
}

#[test]
fn an_unverified_on_premises_suffix_warns_that_the_upn_will_change() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let (rows, _, _) = plan(
        &graph,
        &dir,
        &sample("excel-de.csv"),
        &["--upn-suffix", "contoso.local=contoso.com"],
    );
    assert_row(
        &rows,
        "tara.tate@contoso.local",
        "would-stamp",
        "upn-will-change",
        &[
            "tara.tate@contoso.onmicrosoft.com",
            "not in a verified domain",
        ],
    );
    // Without the mapping the row finds nobody, as before.
    let (rows, _, _) = plan(&graph, &dir, &sample("excel-de.csv"), &[]);
    assert_row(
        &rows,
        "tara.tate@contoso.local",
        "target-not-found",
        "",
        &[],
    );
}

#[test]
fn refused_role_reads_plan_on_with_roles_unknown_and_name_the_permission() {
    let dir = Dir::new();
    let graph = Graph::sample_with(Config {
        forbid_role_reads: true,
        ..fast()
    });
    let (rows, said, code) = plan(&graph, &dir, &sample("csvde.csv"), &[]);
    assert_eq!(code, Some(1), "{said}");
    assert_row(
        &rows,
        "pete.price@contoso.com",
        "would-stamp",
        "roles-unknown",
        &["RoleManagement.Read.Directory"],
    );
    assert_row(
        &rows,
        "alice.adams@contoso.com",
        "would-stamp",
        "roles-unknown",
        &[],
    );
    assert_row(
        &rows,
        "rosa.reyes@contoso.com",
        "target-linked-elsewhere",
        "",
        &[],
    );
    assert!(
        said.contains("WARNING roles-unknown")
            && said.contains("grant RoleManagement.Read.Directory"),
        "{said}"
    );

    // A tenant without Entra ID P2: assignments are known, eligibilities are not.
    let graph = Graph::sample_with(Config {
        refuse_role_eligibility: true,
        ..fast()
    });
    let (rows, said, _) = plan(&graph, &dir, &sample("csvde.csv"), &[]);
    assert_row(
        &rows,
        "pete.price@contoso.com",
        "target-privileged",
        "",
        &[],
    );
    assert_row(
        &rows,
        "quinn.quigley@contoso.com",
        "would-stamp",
        "roles-unknown",
        &["RoleEligibilitySchedule.Read.Directory"],
    );
    assert!(
        said.contains("RoleEligibilitySchedule.Read.Directory"),
        "{said}"
    );
}

#[test]
fn a_snapshot_keeps_what_the_plan_checks_and_plans_alike_offline() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let out = run(&mut graph.hardmatch(&dir, &["snapshot", "-o", "tenant.json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let saved = Tenant::load(&dir.join("tenant.json")).unwrap();
    assert_eq!(
        saved.role_definitions.as_ref().map(Vec::len),
        Some(2),
        "the privileged ones"
    );
    assert_eq!(saved.groups.len(), 1);
    let live = plan(&graph, &dir, &sample("csvde.csv"), &[]).0;
    let out = run(dir
        .hardmatch()
        .args(["plan", "--snapshot", "tenant.json", "-o", "offline.csv"])
        .arg(sample("csvde.csv")));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let offline: HashMap<String, Row> = report_rows(&dir.join("offline.csv"))
        .into_iter()
        .map(|r| (r["upn"].clone(), r))
        .collect();
    for (upn, row) in &live {
        assert_eq!(
            (&offline[upn]["outcome"], &offline[upn]["warnings"]),
            (&row["outcome"], &row["warnings"]),
            "{upn}"
        );
    }
}

#[test]
fn warnings_reach_the_xlsx_summary_and_the_json_rows() {
    let graph = Graph::sample();
    let dir = Dir::new();
    run(graph
        .hardmatch(&dir, &["plan", "-o", "plan.xlsx"])
        .arg(sample("csvde.csv")));
    use calamine::Reader;
    let mut workbook = calamine::open_workbook_auto(dir.join("plan.xlsx")).unwrap();
    let rows = workbook.worksheet_range("Rows").unwrap();
    let warnings = hardmatch::report::COLUMNS
        .iter()
        .position(|c| *c == "warnings")
        .unwrap();
    assert_eq!(rows.get((0, warnings)).unwrap().to_string(), "warnings");
    let summary: Vec<Vec<String>> = workbook
        .worksheet_range("Summary")
        .unwrap()
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert!(
        summary
            .iter()
            .any(|r| r[..2] == ["aliases-will-be-lost".to_string(), "1".to_string()]),
        "{summary:?}"
    );
    assert!(
        summary.iter().any(|r| r[0] == "source anchor"),
        "{summary:?}"
    );
    run(graph
        .hardmatch(&dir, &["plan", "-o", "plan.json"])
        .arg(sample("csvde.csv")));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    let vic = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["upn"] == "vic.vance@contoso.com")
        .unwrap();
    assert_eq!(vic["warnings"], "object-identifier-same");
}

// --- --source-anchor --------------------------------------------------------------------

/// Two GUIDs per person: objectGUID and mS-DS-ConsistencyGuid, which differ.
fn guids(i: u128) -> (uuid::Uuid, uuid::Uuid) {
    (
        uuid::Uuid::from_u128(0x0b0b_0000_0000_4000_8000_0000_0000_0000 + i),
        uuid::Uuid::from_u128(0x0c0c_0000_0000_4000_8000_0000_0000_0000 + i),
    )
}

fn cloud_user(i: u128) -> User {
    User {
        id: uuid::Uuid::from_u128(0xc1_0000_0000_4000_8000_0000_0000_0000 + i).to_string(),
        user_principal_name: format!("u{i}@contoso.com"),
        ..User::default()
    }
}

/// Which of a person's two GUIDs a synced cloud user holds the base64 of.
type Pick = fn((uuid::Uuid, uuid::Uuid)) -> uuid::Uuid;

/// A tenant whose users 0 and 1 are synced and hold the base64 of the GUID `holds` picks
/// for them (or are cloud-only without an anchor when it picks none), and whose user 2 is
/// cloud-only: the row to plan.
fn evidence_tenant(holds: &[Option<Pick>; 2]) -> Tenant {
    let mut users: Vec<User> = (0..3).map(cloud_user).collect();
    for (i, pick) in holds.iter().enumerate() {
        if let Some(pick) = pick {
            users[i].on_premises_sync_enabled = Some(true);
            users[i].on_premises_immutable_id =
                Some(ImmutableId::from_guid(pick(guids(i as u128))).to_string());
        }
    }
    Tenant {
        tenant_id: "evidence".into(),
        domains: vec![Domain {
            id: "contoso.com".into(),
            ..Domain::default()
        }],
        users,
        role_definitions: Some(vec![]),
        role_assignments: Some(vec![]),
        role_eligibility_schedules: Some(vec![]),
        ..Tenant::default()
    }
}

fn evidence_export(dir: &Dir) -> std::path::PathBuf {
    let mut csv = String::from("UserPrincipalName,ObjectGUID,mS-DS-ConsistencyGuid\n");
    for i in 0..3 {
        let (object, consistency) = guids(i);
        csv.push_str(&format!("u{i}@contoso.com,{object},{consistency}\n"));
    }
    dir.write("users.csv", csv)
}

const OBJECT: Pick = |(o, _)| o;
const CONSISTENCY: Pick = |(_, c)| c;

fn b64(guid: uuid::Uuid) -> String {
    ImmutableId::from_guid(guid).to_string()
}

#[test]
fn source_anchor_auto_follows_objectguid_evidence() {
    let graph = Graph::start(evidence_tenant(&[Some(OBJECT), None]), fast());
    let dir = Dir::new();
    let (rows, said, _) = plan(&graph, &dir, &evidence_export(&dir), &[]);
    let row = &rows["u2@contoso.com"];
    assert_eq!(
        (row["outcome"].as_str(), row["warnings"].as_str()),
        ("would-stamp", ""),
        "{}",
        row["detail"]
    );
    assert_eq!(row["immutable_id"], b64(guids(2).0));
    assert!(
        said.contains(
            "source anchor: objectGUID: 1 already-synced users hold base64 of their objectGUID"
        ),
        "{said}"
    );
    assert!(said.contains("line 2 (u0@contoso.com)"), "{said}");
    // And apply stamps that value (u0 already holds its own: nothing else needs doing).
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "-o", "report.csv"])
        .arg(dir.join("users.csv")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(graph.anchor_of("u2@contoso.com"), Some(b64(guids(2).0)));
}

#[test]
fn source_anchor_auto_follows_consistency_guid_evidence() {
    let graph = Graph::start(evidence_tenant(&[None, Some(CONSISTENCY)]), fast());
    let dir = Dir::new();
    let (rows, said, _) = plan(&graph, &dir, &evidence_export(&dir), &[]);
    let row = &rows["u2@contoso.com"];
    assert_eq!(
        (row["outcome"].as_str(), row["warnings"].as_str()),
        ("would-stamp", "")
    );
    assert_eq!(row["immutable_id"], b64(guids(2).1));
    assert!(said.contains("hold base64 of their mS-DS-ConsistencyGuid, not of their objectGUID (line 3 (u1@contoso.com))"), "{said}");
}

#[test]
fn source_anchor_auto_without_evidence_warns_and_the_flag_overrides() {
    let graph = Graph::start(evidence_tenant(&[None, None]), fast());
    let dir = Dir::new();
    let (rows, said, _) = plan(&graph, &dir, &evidence_export(&dir), &[]);
    let row = &rows["u2@contoso.com"];
    assert_eq!(
        (row["outcome"].as_str(), row["warnings"].as_str()),
        ("would-stamp", "anchor-source-differs")
    );
    assert_eq!(row["immutable_id"], b64(guids(2).1));
    assert!(said.contains("without evidence"), "{said}");
    let (rows, said, _) = plan(
        &graph,
        &dir,
        &evidence_export(&dir),
        &["--source-anchor", "object-guid"],
    );
    let row = &rows["u2@contoso.com"];
    assert_eq!(
        (row["immutable_id"].as_str(), row["warnings"].as_str()),
        (b64(guids(2).0).as_str(), "")
    );
    assert!(said.contains("objectGUID, as asked"), "{said}");
    // ids takes the flag too, and without it the ConsistencyGuid rule, saying so.
    let out = run(dir.hardmatch().args([
        "ids",
        "users.csv",
        "-o",
        "-",
        "--source-anchor",
        "object-guid",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&b64(guids(2).0)));
    let out = run(dir.hardmatch().args(["ids", "users.csv", "-o", "-"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&b64(guids(2).1)) && text.contains("anchor-source-differs"),
        "{text}"
    );
    let said = stderr(&out);
    assert!(
        said.contains(
            "source anchor: mS-DS-ConsistencyGuid when set, else objectGUID: ids sees no tenant"
        ),
        "{said}"
    );
}

#[test]
fn source_anchor_auto_with_contradicting_evidence_stops_before_writing() {
    let graph = Graph::start(evidence_tenant(&[Some(OBJECT), Some(CONSISTENCY)]), fast());
    let dir = Dir::new();
    let (rows, said, code) = plan(&graph, &dir, &evidence_export(&dir), &[]);
    assert_eq!(code, Some(2), "{said}");
    assert!(rows.is_empty(), "no plan from contradicting evidence");
    assert!(said.contains("base64 of objectGUID at line 2 (u0@contoso.com); base64 of mS-DS-ConsistencyGuid at line 3 (u1@contoso.com)"), "{said}");
    let out = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "-o", "report.csv"])
        .arg(dir.join("users.csv")));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(graph.stats().writes_total, 0);
}

#[test]
fn a_synced_holder_is_freed_through_sync_scope_and_the_recycle_bin() {
    let mut tenant = evidence_tenant(&[None, None]);
    // The duplicate a premature sync created for u2 holds u2's anchor.
    let mut duplicate = cloud_user(9);
    duplicate.on_premises_sync_enabled = Some(true);
    duplicate.on_premises_immutable_id = Some(b64(guids(2).1));
    tenant.users.push(duplicate);
    let graph = Graph::start(tenant, fast());
    let dir = Dir::new();
    let (rows, _, _) = plan(
        &graph,
        &dir,
        &evidence_export(&dir),
        &["--source-anchor", "consistency-guid"],
    );
    let row = &rows["u2@contoso.com"];
    assert_eq!(row["outcome"], "anchor-held-by-user");
    assert!(
        row["detail"].contains("out of sync scope") && row["detail"].contains("recycle bin"),
        "{}",
        row["detail"]
    );
    assert!(
        !row["detail"].contains("clear it there first"),
        "{}",
        row["detail"]
    );
}

/// A generated tenant where user0 is a member and user1 an owner of the role-assignable group
/// "Helpdesk Tier", which holds no role, and its export.
fn with_a_role_assignable_group(dir: &Dir) -> (Tenant, std::path::PathBuf) {
    let mut tenant = hardmatch::emulator::synthetic::tenant(6);
    hardmatch::emulator::synthetic::add_role_assignable_group(
        &mut tenant,
        "Helpdesk Tier",
        &[0],
        &[1],
    );
    (tenant, crate::util::export(dir, 6))
}

#[test]
fn members_and_owners_of_a_role_assignable_group_are_planned_with_a_warning() {
    let dir = Dir::new();
    let (tenant, export) = with_a_role_assignable_group(&dir);
    let graph = Graph::start(tenant, fast());
    let (rows, said, code) = plan(&graph, &dir, &export, &[]);
    assert_eq!(code, Some(0), "{said}");
    for (upn, how) in [
        (
            "user0@contoso.com",
            "is a member of the role-assignable group Helpdesk Tier",
        ),
        (
            "user1@contoso.com",
            "is an owner of the role-assignable group Helpdesk Tier",
        ),
    ] {
        assert_row(
            &rows,
            upn,
            "would-stamp",
            "",
            &[
                how,
                "sensitive attributes",
                "Privileged Authentication Administrator",
            ],
        );
    }
    assert!(!rows["user2@contoso.com"]["detail"].contains("sensitive attributes"));
    assert!(
        said.contains("WARNING sensitive attributes: 2 rows to stamp are members or owners of role-assignable groups (user0@contoso.com, user1@contoso.com)"),
        "{said}"
    );

    // Offline, from a snapshot: the same; from one taken before groups were listed: unknown.
    let out = run(&mut graph.hardmatch(&dir, &["snapshot", "-o", "tenant.json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let offline = |file: &str| {
        let out = run(dir
            .hardmatch()
            .args(["plan", "--snapshot", file, "-o", "plan.csv"])
            .arg(&export));
        let rows: HashMap<String, Row> = report_rows(&dir.join("plan.csv"))
            .into_iter()
            .map(|r| (r["upn"].clone(), r))
            .collect();
        (rows, stderr(&out))
    };
    let (rows, said) = offline("tenant.json");
    assert_row(
        &rows,
        "user1@contoso.com",
        "would-stamp",
        "",
        &["is an owner"],
    );
    assert!(
        said.contains("WARNING sensitive attributes: 2 rows"),
        "{said}"
    );
    let mut old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tenant.json")).unwrap()).unwrap();
    let old = old.as_object_mut().unwrap();
    assert_eq!(old.remove("roleAssignableGroupsListed"), Some(true.into()));
    for group in old["groups"].as_array_mut().unwrap() {
        group.as_object_mut().unwrap().remove("owners");
    }
    std::fs::write(dir.join("old.json"), serde_json::to_vec(&old).unwrap()).unwrap();
    let (rows, said) = offline("old.json");
    assert_row(
        &rows,
        "user1@contoso.com",
        "would-stamp",
        "roles-unknown",
        &["GroupMember.Read.All"],
    );
    assert!(said.contains("WARNING roles-unknown"), "{said}");
}

#[test]
fn refused_group_reads_plan_on_with_roles_unknown_and_name_the_permission() {
    let dir = Dir::new();
    let (tenant, export) = with_a_role_assignable_group(&dir);
    let graph = Graph::start(
        tenant,
        Config {
            forbid_group_reads: true,
            ..fast()
        },
    );
    let (rows, said, code) = plan(&graph, &dir, &export, &[]);
    assert_eq!(code, Some(0), "{said}");
    assert_row(
        &rows,
        "user3@contoso.com",
        "would-stamp",
        "roles-unknown",
        &["GroupMember.Read.All"],
    );
    assert!(
        said.contains("WARNING roles-unknown") && said.contains("GroupMember.Read.All"),
        "{said}"
    );
}
