//! Issue 18 item 5: what a report says is what happened. `clear` names rows with nothing to
//! clear and refuses another anchor than the export's; `object_guid` is the objectGUID and
//! `anchor_source` names the attribute that gave the ImmutableId.

use std::collections::HashMap;

use crate::util::{report_rows, run, sample, stderr, Dir, Graph};

fn by_upn(rows: Vec<HashMap<String, String>>) -> HashMap<String, HashMap<String, String>> {
    rows.into_iter().map(|r| (r["upn"].clone(), r)).collect()
}

#[test]
fn clear_says_nothing_to_clear_and_refuses_another_anchor_without_overwrite() {
    let graph = Graph::sample();
    let dir = Dir::new();
    // Bob holds his own anchor; Dave holds another one (oaJBpk...) than his row computes;
    // Alice holds none.
    dir.write(
        "clear.csv",
        "UserPrincipalName,ObjectGUID\n\
         bob.brown@contoso.com,3ab39606-c642-489b-84b6-58c038d3ef39\n\
         dave.dunn@contoso.com,a1d2c3d4-b5f6-4f90-abcd-ef1234567890\n\
         alice.adams@contoso.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38\n",
    );
    let out = run(&mut graph.hardmatch(
        &dir,
        &["clear", "clear.csv", "--yes", "-q", "-o", "cleared.csv"],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = by_upn(report_rows(&dir.join("cleared.csv")));
    assert_eq!(rows["bob.brown@contoso.com"]["outcome"], "cleared");
    assert_eq!(
        rows["alice.adams@contoso.com"]["outcome"],
        "nothing-to-clear"
    );
    let dave = &rows["dave.dunn@contoso.com"];
    assert_eq!(dave["outcome"], "target-has-other-anchor", "{dave:?}");
    assert!(
        dave["detail"].contains("holds oaJBpkPVr0+yOPZwhHcGwg==, not 1MPSofa1kE+rze8SNFZ4kA==")
            && dave["detail"].contains("--overwrite"),
        "{dave:?}"
    );
    assert_eq!(graph.anchor_of("bob.brown@contoso.com"), None);
    assert_eq!(
        graph.anchor_of("dave.dunn@contoso.com").as_deref(),
        Some("oaJBpkPVr0+yOPZwhHcGwg=="),
        "left alone"
    );

    let out = run(&mut graph.hardmatch(
        &dir,
        &[
            "clear",
            "clear.csv",
            "--overwrite",
            "--yes",
            "-q",
            "-o",
            "overwritten.csv",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = by_upn(report_rows(&dir.join("overwritten.csv")));
    assert_eq!(rows["dave.dunn@contoso.com"]["outcome"], "cleared");
    assert_eq!(rows["bob.brown@contoso.com"]["outcome"], "nothing-to-clear");
    assert_eq!(graph.anchor_of("dave.dunn@contoso.com"), None);
}

#[test]
fn object_guid_is_the_object_guid_and_anchor_source_names_the_attribute() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let out = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(sample("csvde.csv"))
        .args(["-o", "plan.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = by_upn(report_rows(&dir.join("plan.csv")));
    // Nina's mS-DS-ConsistencyGuid (the old forest's objectGUID) gives her ImmutableId.
    let nina = &rows["nina.nash@contoso.com"];
    assert_eq!(
        (
            nina["object_guid"].as_str(),
            nina["immutable_id"].as_str(),
            nina["anchor_source"].as_str()
        ),
        (
            "7a58197e-29da-44ee-a1f1-b328058c2587",
            "H+EUXYXDykOYtGivEfs7jw==",
            "mS-DS-ConsistencyGuid"
        )
    );
    let alice = &rows["alice.adams@contoso.com"];
    assert_eq!(
        (
            alice["object_guid"].as_str(),
            alice["anchor_source"].as_str()
        ),
        ("f7cc07d7-7c15-447d-876d-c01b0e5a9e38", "objectGUID")
    );

    // An export that lists the ImmutableId itself: the column gave it, and no objectGUID is
    // made up from it.
    dir.write(
        "anchors.csv",
        "UserPrincipalName,SourceAnchor\nalice.adams@contoso.com,1wfM9xV8fUSHbcAbDlqeOA==\n",
    );
    let out = run(dir
        .hardmatch()
        .args(["ids", "anchors.csv", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let row = &report_rows(&dir.join("ids.csv"))[0];
    assert_eq!(
        (
            row["object_guid"].as_str(),
            row["immutable_id"].as_str(),
            row["anchor_source"].as_str()
        ),
        ("", "1wfM9xV8fUSHbcAbDlqeOA==", "SourceAnchor")
    );
}

/// The confirmation prompt, on a real terminal: script(1) (util-linux) gives the binary one,
/// and the answer is typed into it.
#[test]
fn yes_confirms_in_any_of_its_usual_cases_on_a_terminal() {
    let binary = env!("CARGO_BIN_EXE_hardmatch");
    let export = sample("csvde.csv");
    for (answer, confirmed) in [("YES", true), ("Yes", true), ("y", false)] {
        let graph = Graph::sample();
        let dir = Dir::new();
        let command = format!(
            "{binary} apply {} -q --graph-url {} -o report.csv",
            export.display(),
            graph.url()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(dir.path())
            .env("HARDMATCH_ACCESS_TOKEN", crate::util::TOKEN)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // The terminal keeps the line until the prompt reads it. Its end is kept open until
        // the command ends: script(1) would end the session at the end of its input.
        writeln!(stdin, "{answer}").unwrap();
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("Type yes to write"), "{answer}: {said}");
        let stamped = graph.anchor_of("alice.adams@contoso.com");
        if confirmed {
            assert_eq!(out.status.code(), Some(1), "{answer}: {said}");
            assert_eq!(
                stamped.as_deref(),
                Some("1wfM9xV8fUSHbcAbDlqeOA=="),
                "{answer}"
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "{answer}: {said}");
            assert!(
                said.contains("not confirmed; nothing was written"),
                "{said}"
            );
            assert_eq!(stamped, None, "{answer}");
        }
    }
}
