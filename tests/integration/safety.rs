//! The safety net under operator mistakes (issue 13): resume, rollback, canary, the journal
//! and the report, driven through the real binary against the emulator.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hardmatch::emulator::Config;

use crate::util::{fast, generated, report_rows, run, sample, stderr, Dir, Graph, TOKEN};

fn count(rows: &[HashMap<String, String>], outcome: &str) -> usize {
    rows.iter().filter(|r| r["outcome"] == outcome).count()
}

/// Whether every user the emulator saw written was written exactly once.
fn each_written_once(graph: &Graph) -> bool {
    graph.stats().writes_applied.values().all(|&n| n == 1)
}

/// Users of a generated tenant that hold anything but their own anchor or nothing: wrong
/// values.
fn wrong_values(graph: &Graph) -> usize {
    use hardmatch::anchor::ImmutableId;
    use hardmatch::emulator::synthetic;
    let own = |upn: &str| {
        let i = upn
            .strip_prefix("user")
            .and_then(|rest| rest.split('@').next())
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a generated user: {upn}"));
        ImmutableId::from_guid(synthetic::guid(i)).to_string()
    };
    graph
        .tenant()
        .users
        .iter()
        .filter(|user| {
            user.on_premises_immutable_id
                .as_deref()
                .is_some_and(|held| held != own(&user.user_principal_name))
        })
        .count()
}

/// The export's header and its data lines.
fn export_lines(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.split_inclusive("\r\n").map(str::to_string);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

/// A canary of `max` writes out of `export`, reported to r.csv (journal r.csv.journal).
fn canary(graph: &Graph, dir: &Dir, export: &Path, max: &str) -> Output {
    let out = run(graph
        .hardmatch(dir, &["apply", "--yes", "-q", "--max-writes", max])
        .arg(export)
        .args(["-o", "r.csv"]));
    assert_ne!(out.status.code(), Some(2), "{}", stderr(&out));
    out
}

fn resume(graph: &Graph, dir: &Dir, input: &Path, extra: &[&str]) -> Output {
    run(graph
        .hardmatch(dir, &["apply", "-q", "--resume", "r.csv.journal"])
        .args(extra)
        .arg(input)
        .args(["-o", "r.csv"]))
}

/// The command a run printed to continue it (the last line that starts `hardmatch` and
/// resumes), run as printed.
fn continue_command(dir: &Dir, out: &Output) -> Command {
    let err = stderr(out);
    let line = err
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with("hardmatch ") && l.contains("--resume"))
        .unwrap_or_else(|| panic!("no command to continue with:\n{err}"));
    let mut cmd = dir.hardmatch();
    cmd.args(line.split_whitespace().skip(1))
        .env("HARDMATCH_ACCESS_TOKEN", TOKEN);
    cmd
}

fn journal_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|j| j.lines().count())
        .unwrap_or(0)
}

/// Waits until the journal at `path` has more than `lines` lines.
fn wait_for_journal(path: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal_lines(path) <= lines {
        assert!(Instant::now() < deadline, "the run never wrote its journal");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a child for at most `limit`, then kills it and fails.
fn wait_at_most(child: Child, limit: Duration) -> Output {
    let id = child.id();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if started.elapsed() > limit {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("the run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

#[test]
fn resuming_with_another_inputs_journal_is_refused_before_anything_is_written() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 40);
    let (header, lines) = export_lines(&export);
    let wave1 = dir.write("wave1.csv", format!("{header}{}", lines[..20].concat()));
    let wave2 = dir.write("wave2.csv", format!("{header}{}", lines[20..].concat()));
    let graph = Graph::start(tenant, fast());
    canary(&graph, &dir, &wave1, "5");
    let writes = graph.stats().writes_total;
    let out = resume(&graph, &dir, &wave2, &["--yes"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("wave1.csv")
            && err.contains("wave2.csv")
            && err.contains("Nothing was written"),
        "names both files: {err}"
    );
    assert_eq!(graph.stats().writes_total, writes, "nothing written");
}

#[test]
fn a_reordered_re_export_resumes_every_row_once() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 40);
    let graph = Graph::start(tenant, fast());
    canary(&graph, &dir, &export, "10");
    // Get-ADUser's order is not stable: the same users, exported again in another order.
    let (header, mut lines) = export_lines(&export);
    lines.reverse();
    std::fs::write(&export, format!("{header}{}", lines.concat())).unwrap();
    let out = resume(&graph, &dir, &export, &["--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 40);
    assert_eq!(count(&rows, "stamped"), 40, "{rows:?}");
    assert_eq!(rows[0]["upn"], "user39@contoso.com", "the new order");
    let stats = graph.stats();
    assert_eq!(stats.writes_applied.len(), 40, "every user written");
    assert!(each_written_once(&graph), "none twice");
    assert_eq!(wrong_values(&graph), 0, "every user holds its own anchor");
}

#[test]
fn destructive_flags_added_on_resume_need_confirmation() {
    let graph = Graph::sample();
    let dir = Dir::new();
    canary(&graph, &dir, &sample("csvde.csv"), "1");
    let before = graph.stats();
    let deleted = graph.tenant().deleted_users.len();
    let flags = ["--overwrite", "--purge-deleted-holders"];
    let refused = resume(&graph, &dir, &sample("csvde.csv"), &flags);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("pass --yes"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        graph.stats().writes_total,
        before.writes_total,
        "nothing written"
    );
    assert_eq!(graph.tenant().deleted_users.len(), deleted, "nobody purged");

    let confirmed = resume(
        &graph,
        &dir,
        &sample("csvde.csv"),
        &[&flags[..], &["--yes"]].concat(),
    );
    let err = stderr(&confirmed);
    assert!(
        err.contains("DESTRUCTIVE: --overwrite was not given to the interrupted run")
            && err.contains(
                "DESTRUCTIVE: --purge-deleted-holders was not given to the interrupted run"
            ),
        "{err}"
    );
}

#[test]
fn rollback_from_a_resumed_runs_report_puts_back_the_true_previous_values() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 30);
    let graph = Graph::start(tenant, fast());
    let before = graph.tenant();
    canary(&graph, &dir, &export, "10");
    let resumed = resume(&graph, &dir, &export, &["--yes"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(count(&rows, "stamped"), 30);
    assert!(
        rows.iter().all(|r| r["previous_immutable_id"].is_empty()),
        "no user held an anchor before the run: {rows:?}"
    );
    let out = run(&mut graph.hardmatch(
        &dir,
        &["rollback", "r.csv", "--yes", "-q", "-o", "rollback.csv"],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("DESTRUCTIVE"), "{err}");
    assert_eq!(graph.tenant(), before, "every user is as before the run");
    assert_eq!(
        count(&report_rows(&dir.join("rollback.csv")), "restored"),
        30
    );
    // From the journal, the same result: nothing left to put back, and said so quietly.
    let again = run(&mut graph.hardmatch(
        &dir,
        &[
            "rollback",
            "r.csv.journal",
            "--yes",
            "-q",
            "-o",
            "again.csv",
        ],
    ));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(count(&report_rows(&dir.join("again.csv")), "restored"), 30);
    assert_eq!(graph.tenant(), before);
}

#[test]
fn a_journal_cut_at_every_byte_of_its_last_line_resumes_and_rolls_back() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 3);
    let before = tenant.clone();
    let graph = Graph::start(tenant, fast());
    canary(&graph, &dir, &export, "1");
    let after_canary = graph.tenant();
    let journal = std::fs::read(dir.join("r.csv.journal")).unwrap();
    let export = std::fs::read(&export).unwrap();
    let body = &journal[..journal.len() - 1];
    let last_line_start = body.iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let cuts: Vec<usize> = (last_line_start..journal.len()).collect();
    // A crash or a full disk can leave any prefix of the last line; each is its own run,
    // four at a time (each pair of runs takes a fraction of a second).
    std::thread::scope(|scope| {
        for share in cuts.chunks(cuts.len().div_ceil(4)) {
            let (journal, export, after_canary, before) =
                (&journal, &export, &after_canary, &before);
            scope.spawn(move || {
                for &cut in share {
                    resume_and_roll_back_a_cut_journal(
                        &journal[..cut],
                        export,
                        after_canary,
                        before,
                        cut,
                    );
                }
            });
        }
    });
}

/// Resumes a journal cut at byte `cut`, then rolls back from it, against a fresh emulator
/// that holds what the canary wrote.
fn resume_and_roll_back_a_cut_journal(
    journal: &[u8],
    export: &[u8],
    after_canary: &hardmatch::tenant::Tenant,
    before: &hardmatch::tenant::Tenant,
    cut: usize,
) {
    let dir = Dir::new();
    let export = dir.write("export.csv", export);
    dir.write("r.csv.journal", journal);
    let graph = Graph::start(after_canary.clone(), fast());
    let resumed = resume(&graph, &dir, &export, &["--yes"]);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "cut at {cut}: {}",
        stderr(&resumed)
    );
    assert_eq!(
        count(&report_rows(&dir.join("r.csv")), "stamped"),
        3,
        "cut at {cut}"
    );
    assert_eq!(
        graph.stats().writes_applied.len(),
        2,
        "cut at {cut}: the canary's row is not written again"
    );
    let rollback = run(&mut graph.hardmatch(
        &dir,
        &[
            "rollback",
            "r.csv.journal",
            "--yes",
            "-q",
            "-o",
            "rollback.csv",
        ],
    ));
    assert_eq!(
        rollback.status.code(),
        Some(0),
        "cut at {cut}: {}",
        stderr(&rollback)
    );
    assert_eq!(
        &graph.tenant(),
        before,
        "cut at {cut}: every user as before"
    );
}

#[test]
fn a_second_run_on_a_journal_in_use_is_refused() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 60);
    let graph = Graph::start(tenant, fast());
    let first = graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "30"])
        .arg(&export)
        .args(["-o", "r.csv"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_journal(&dir.join("r.csv.journal"), 4);
    let second = resume(&graph, &dir, &export, &["--yes"]);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains("another hardmatch run is using this journal"),
        "{err}"
    );
    // Rolling back (or verifying) a run from another terminal while it writes would miss
    // its last writes: refused, and nothing is put back.
    for args in [&["rollback", "--yes"][..], &["verify"]] {
        let command = args[0];
        let early = run(graph
            .hardmatch(&dir, args)
            .args(["r.csv.journal", "-o"])
            .arg(format!("{command}.csv")));
        let err = stderr(&early);
        assert_eq!(early.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("r.csv.journal: a hardmatch run is still writing this journal"),
            "{command}: {err}"
        );
    }
    let first = wait_at_most(first, Duration::from_secs(60));
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(graph.stats().writes_applied.len(), 60);
    assert!(each_written_once(&graph), "no user written twice");
    assert_eq!(wrong_values(&graph), 0);
    let rollback = run(graph
        .hardmatch(&dir, &["rollback", "r.csv.journal", "--yes", "-q"])
        .args(["-o", "rollback.csv"]));
    assert_eq!(rollback.status.code(), Some(0), "{}", stderr(&rollback));
}

/// A token from the emulator's token endpoint, which [`hardmatch::emulator::Emulator::expire_tokens`]
/// can expire in the middle of a run.
fn issued_token(graph: &Graph) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/generated/oauth2/v2.0/token", graph.url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app-1"),
                ("client_secret", crate::util::CLIENT_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    answer["access_token"]
        .as_str()
        .expect("a token")
        .to_string()
}

#[test]
fn rows_an_expired_token_failed_are_written_on_resume() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 120);
    let graph = Graph::start(
        tenant,
        Config {
            clients: vec![("app-1".into(), crate::util::CLIENT_SECRET.into())],
            ..fast()
        },
    );
    let token = issued_token(&graph);
    let child = dir
        .hardmatch()
        .args(["apply", "--yes", "-q", "--write-rate", "40"])
        .arg(&export)
        .args(["-o", "r.csv", "--graph-url", graph.url()])
        .env("HARDMATCH_ACCESS_TOKEN", &token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while graph.stats().writes_applied.len() < 10 {
        std::thread::sleep(Duration::from_millis(10));
    }
    graph.running.emulator.expire_tokens();
    let first = wait_at_most(child, Duration::from_secs(120));
    let rows = report_rows(&dir.join("r.csv"));
    let written = graph.stats().writes_applied.len();
    assert!(
        written < 120,
        "the token expired mid-run: {written} written"
    );
    assert_eq!(count(&rows, "stamped"), written, "{}", stderr(&first));

    let resumed = resume(&graph, &dir, &export, &["--yes"]);
    let err = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("the interrupted run wrote {written} rows"))
            && err.contains("planned again"),
        "says what is retried: {err}"
    );
    assert_eq!(count(&report_rows(&dir.join("r.csv")), "stamped"), 120);
    assert_eq!(graph.stats().writes_applied.len(), 120);
    assert!(each_written_once(&graph));
    assert_eq!(wrong_values(&graph), 0);
}

#[test]
fn the_report_path_is_refused_before_any_write() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 10);
    let graph = Graph::start(tenant, fast());
    let victim = dir.write("victim.txt", "precious");
    std::os::unix::fs::symlink(&victim, dir.join("link.csv")).unwrap();
    std::fs::create_dir(dir.join("folder.csv")).unwrap();
    for (report, why) in [
        ("link.csv", "symbolic link"),
        ("folder.csv", "is a directory"),
        ("missing/r.csv", "does not exist"),
    ] {
        let out = run(graph
            .hardmatch(&dir, &["apply", "--yes", "-q"])
            .arg(&export)
            .args(["-o", report]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{report}: {err}");
        assert!(err.contains(why), "{report}: {err}");
        assert_eq!(graph.stats().writes_total, 0, "{report}: nothing written");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// An output path that is a file the command reads, by the same name, another spelling or a
/// link: the export, the approved plan, the report being undone or verified, the rehearsal
/// tenant's files (`--emulate`, `--state`), and `--uncovered` on the report's own path before
/// either exists. Each is refused
/// (exit 2) before anything is read or written, and the file is left as it was.
#[test]
fn an_output_that_is_a_file_the_command_reads_is_refused_and_the_file_kept() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 10);
    let graph = Graph::start(tenant, fast());
    let planned = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(&export)
        .args(["-o", "plan.csv"]));
    assert_ne!(planned.status.code(), Some(2), "{}", stderr(&planned));
    let applied = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    std::os::unix::fs::symlink("export.csv", dir.join("link.csv")).unwrap();
    let writes = graph.stats().writes_total;
    let tenant_file = std::fs::read(sample("tenant.json")).unwrap();
    dir.write("tenant.json", &tenant_file);
    dir.write("state.json", &tenant_file);
    let emulated = ["--emulate", "tenant.json", "--state", "state.json"];
    let cases: [(&[&str], &str); 10] = [
        (&["ids", "export.csv", "-o", "export.csv"], "export.csv"),
        (&["ids", "export.csv", "-o", "./link.csv"], "export.csv"),
        (&["plan", "export.csv", "-o", "./export.csv"], "export.csv"),
        (
            &["apply", "--yes", "link.csv", "-o", "export.csv"],
            "link.csv",
        ),
        (
            &["apply", "--yes", "plan.csv", "-o", "plan.csv"],
            "plan.csv",
        ),
        (&["rollback", "--yes", "r.csv", "-o", "r.csv"], "r.csv"),
        (&["verify", "r.csv", "-o", "r.csv"], "r.csv"),
        (
            &["clear", "--yes", "export.csv", "-o", "export.csv"],
            "export.csv",
        ),
        (
            &["apply", "--yes", "export.csv", "-o", "tenant.json"],
            "tenant.json",
        ),
        (&["snapshot", "-o", "./state.json"], "state.json"),
    ];
    for (args, kept) in cases {
        let before = std::fs::read(dir.join(kept)).unwrap();
        let out = match args[0] {
            "ids" => run(dir.hardmatch().args(args)),
            // The rehearsal tenant's files (`--emulate`, `--state`) are read too.
            _ if kept.ends_with(".json") => run(dir.hardmatch().args(args).args(emulated)),
            _ => run(&mut graph.hardmatch(&dir, args)),
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("and its output would replace it"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(dir.join(kept)).unwrap(), before, "{args:?}");
    }
    let out = run(graph
        .hardmatch(&dir, &["plan", "--uncovered", "p.csv", "-o", "p.csv"])
        .arg(&export));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("written there too"),
        "{}",
        stderr(&out)
    );
    assert_eq!(graph.stats().writes_total, writes, "nothing written");
}

#[test]
fn a_report_that_cannot_be_written_says_how_to_rebuild_it() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 40);
    let graph = Graph::start(tenant, fast());
    let child = graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "40"])
        .arg(&export)
        .args(["-o", "r.csv"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_journal(&dir.join("r.csv.journal"), 2);
    // Something takes the report's name while the run writes: renaming onto it fails.
    std::fs::create_dir(dir.join("r.csv")).unwrap();
    let out = wait_at_most(child, Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot write the report")
            && err.contains("40 rows are written to the tenant")
            && err.contains("r.csv.journal, which is complete")
            && err.contains("--resume r.csv.journal"),
        "{err}"
    );
    assert!(
        !std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no temporary file left behind"
    );
    std::fs::remove_dir(dir.join("r.csv")).unwrap();
    let rebuilt = run(&mut continue_command(&dir, &out));
    assert_eq!(rebuilt.status.code(), Some(0), "{}", stderr(&rebuilt));
    assert_eq!(count(&report_rows(&dir.join("r.csv")), "stamped"), 40);
    assert!(each_written_once(&graph), "the rebuild wrote nothing again");
    assert_eq!(wrong_values(&graph), 0);
}

#[test]
fn a_canary_counts_its_own_rows_exits_0_and_prints_how_to_continue() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 40);
    let graph = Graph::start(tenant, fast());
    let unconfirmed = run(graph
        .hardmatch(&dir, &["apply", "--max-writes", "5"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    assert!(
        stderr(&unconfirmed).contains("pass --yes to write 5 rows"),
        "{}",
        stderr(&unconfirmed)
    );
    let out = canary(&graph, &dir, &export, "5");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a canary that wrote its rows succeeded: {err}"
    );
    assert!(err.contains("a canary: 5 of the 40 rows to write"), "{err}");
    assert!(err.contains("canary done: 35 rows are left"), "{err}");
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(
        (count(&rows, "stamped"), count(&rows, "not-attempted")),
        (5, 35)
    );
    let rest = run(&mut continue_command(&dir, &out));
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert_eq!(count(&report_rows(&dir.join("r.csv")), "stamped"), 40);
    assert_eq!(graph.stats().writes_applied.len(), 40);
    assert!(each_written_once(&graph));
    assert_eq!(wrong_values(&graph), 0);
}

#[test]
fn applying_a_plan_twice_and_rolling_back_twice_are_quiet() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 20);
    let graph = Graph::start(tenant, fast());
    let before = graph.tenant();
    let plan = run(graph
        .hardmatch(&dir, &["plan"])
        .arg(&export)
        .args(["-o", "plan.json"]));
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    for (report, outcome) in [("a1.csv", "stamped"), ("a2.csv", "already-matched")] {
        let out =
            run(&mut graph.hardmatch(&dir, &["apply", "plan.json", "--yes", "-q", "-o", report]));
        assert_eq!(out.status.code(), Some(0), "{report}: {}", stderr(&out));
        assert_eq!(
            count(&report_rows(&dir.join(report)), outcome),
            20,
            "{report}"
        );
    }
    assert!(each_written_once(&graph));
    for report in ["rb1.csv", "rb2.csv"] {
        let out = run(&mut graph.hardmatch(
            &dir,
            &["rollback", "a1.csv.journal", "--yes", "-q", "-o", report],
        ));
        assert_eq!(out.status.code(), Some(0), "{report}: {}", stderr(&out));
        assert_eq!(
            count(&report_rows(&dir.join(report)), "restored"),
            20,
            "{report}"
        );
    }
    assert_eq!(graph.tenant(), before);
    assert_eq!(
        graph.stats().writes_total,
        40,
        "20 stamps, 20 restores, nothing else"
    );
}

#[test]
fn signals_finish_the_writes_in_flight_report_every_row_and_say_how_to_go_on() {
    for (signal, code) in [("TERM", 143), ("HUP", 130), ("INT", 130)] {
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
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while graph.stats().writes_applied.len() < 10 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = wait_at_most(child, Duration::from_secs(60));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {err}");
        let rows = report_rows(&dir.join("r.csv"));
        assert_eq!(rows.len(), 200, "SIG{signal}: every row is in the report");
        let stamped = count(&rows, "stamped");
        assert_eq!(stamped + count(&rows, "not-attempted"), 200);
        assert_eq!(stamped, graph.stats().writes_applied.len(), "SIG{signal}");
        assert!(err.contains("--resume r.csv.journal"), "SIG{signal}: {err}");
        let rest = run(&mut continue_command(&dir, &out));
        assert_eq!(
            rest.status.code(),
            Some(0),
            "SIG{signal}: {}",
            stderr(&rest)
        );
        assert_eq!(graph.stats().writes_applied.len(), 200);
        assert!(each_written_once(&graph), "SIG{signal}");
        assert_eq!(wrong_values(&graph), 0, "SIG{signal}");
    }
}

#[test]
fn a_second_ctrl_c_stops_waiting_out_a_retry_after() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 100);
    let graph = Graph::start(tenant, fast());
    let child = graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--write-rate", "40"])
        .arg(&export)
        .args(["-o", "r.csv"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while graph.stats().writes_applied.len() < 5 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Graph under load: every request is told to come back in two minutes.
    graph.running.emulator.storm(120.0);
    std::thread::sleep(Duration::from_millis(500));
    let interrupt = || {
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(interrupt().success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(interrupt().success());
    let out = wait_at_most(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(rows.len(), 100);
    assert_eq!(count(&rows, "stamped"), graph.stats().writes_applied.len());
}

#[test]
fn a_permission_stop_names_the_permission_and_resume_writes_the_rest() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 20);
    let denied = Graph::start(
        tenant.clone(),
        Config {
            forbid_writes: true,
            ..fast()
        },
    );
    let out = run(denied
        .hardmatch(&dir, &["apply", "--yes", "-q", "--concurrency", "1"])
        .arg(&export)
        .args(["-o", "r.csv"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("User.ReadWrite.All") && err.contains("--resume r.csv.journal"),
        "{err}"
    );
    // The permission is granted; the rows refused before it are written now.
    let granted = Graph::start(tenant, fast());
    let resumed = resume(&granted, &dir, &export, &["--yes"]);
    let err = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{err}");
    assert!(err.contains("planned again"), "{err}");
    assert_eq!(count(&report_rows(&dir.join("r.csv")), "stamped"), 20);
    assert!(each_written_once(&granted));
    assert_eq!(wrong_values(&granted), 0);
}

#[test]
fn rollback_says_it_cannot_bring_back_a_purged_holder() {
    let graph = Graph::sample();
    let dir = Dir::new();
    let applied = run(graph
        .hardmatch(&dir, &["apply", "--yes", "-q", "--purge-deleted-holders"])
        .arg(sample("csvde.csv"))
        .args(["-o", "r.csv"]));
    assert_ne!(applied.status.code(), Some(2), "{}", stderr(&applied));
    for source in ["r.csv.journal", "r.csv"] {
        let report = format!("rollback-{source}.csv");
        let out =
            run(&mut graph.hardmatch(&dir, &["rollback", source, "--yes", "-q", "-o", &report]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{source}: not a success: {err}");
        assert!(
            err.contains("CANNOT UNDO: the run purged 1 deleted users"),
            "{source}: {err}"
        );
        let rows = report_rows(&dir.join(&report));
        let gina = rows
            .iter()
            .find(|r| r["cloud_upn"] == "gina.gray@contoso.com")
            .unwrap_or_else(|| panic!("{source}: {rows:?}"));
        assert!(
            !gina["holder_id"].is_empty(),
            "{source}: names the purged holder: {gina:?}"
        );
    }
}

/// Runs `script` with `sh` inside a user and mount namespace of its own (`unshare`), where
/// `disk` (a new directory of `dir`) is a tmpfs of `kib` KiB: a small disk that fills, without
/// root and without touching the machine's disks. The script gets the disk as `$1` and
/// `hardmatch` as `$2`, then `args`, and runs in `dir`; the tmpfs ends with it.
#[cfg(target_os = "linux")]
fn on_a_small_disk(graph: &Graph, dir: &Dir, kib: u32, script: &str, args: &[&str]) -> Output {
    let disk = dir.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let hardmatch = graph.hardmatch(dir, &[]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={kib}k tmpfs \"$1\" || exit 97\n{script}"
        ))
        .arg("sh")
        .arg(&disk)
        .arg(hardmatch.get_program())
        .args(args)
        .args(hardmatch.get_args())
        .current_dir(dir.path())
        .env("HARDMATCH_ACCESS_TOKEN", TOKEN);
    let out = run(&mut cmd);
    assert_ne!(
        out.status.code(),
        Some(97),
        "this test needs unshare (util-linux) and user namespaces to mount a small tmpfs: {}",
        stderr(&out)
    );
    out
}

/// A disk already full when the run starts: the journal cannot take its first line, so
/// nothing is sent, the error says so, and no empty journal is left to block the next try.
#[cfg(target_os = "linux")]
#[test]
fn a_disk_full_before_the_first_write_sends_nothing_and_leaves_no_journal() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 20);
    let graph = Graph::start(tenant, fast());
    let script = r#"
        disk=$1; shift
        head -c 65536 /dev/zero > "$disk/filler" 2>/dev/null
        "$@" -o "$disk/r.csv"
        echo "exit $?" >&2
        ls -A "$disk" > left.txt
    "#;
    let export = export.to_str().unwrap();
    let out = on_a_small_disk(&graph, &dir, 16, script, &["apply", "--yes", "-q", export]);
    let err = stderr(&out);
    assert!(err.contains("exit 2"), "{err}");
    assert!(
        err.contains("No space left on device")
            && err.contains("cannot start the journal, so nothing was written to the tenant"),
        "{err}"
    );
    let left = std::fs::read_to_string(dir.join("left.txt")).unwrap();
    assert_eq!(left, "filler\n", "no journal left behind");
    assert_eq!(graph.stats().writes_applied.len(), 0);
}

/// A disk that fills while the journal grows: the row whose intent cannot be journaled is
/// not sent and the run stops; the report cannot be written either, and the error says the
/// journal holds every write and how to go on. Once the disk has room, that command writes
/// the rest: every row `stamped`, every user written once, none with a wrong value.
#[cfg(target_os = "linux")]
#[test]
fn a_disk_that_fills_mid_run_stops_cleanly_and_the_resume_writes_each_user_once() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 60);
    let graph = Graph::start(tenant, fast());
    let script = r#"
        disk=$1; shift
        head -c 8000 /dev/zero > "$disk/filler"
        "$@" -o "$disk/r.csv" 2> first.err
        echo "first exit $?" >&2
        cp "$disk/r.csv.journal" first.journal
        rm "$disk/filler"
        mount -o remount,size=1m "$disk" || exit 98
        "$@" -o "$disk/r.csv" --resume "$disk/r.csv.journal" 2> resumed.err
        echo "resumed exit $?" >&2
        cp "$disk/r.csv" r.csv
    "#;
    let export = export.to_str().unwrap();
    let args = ["apply", "--yes", "-q", "--write-rate", "200", export];
    let out = on_a_small_disk(&graph, &dir, 16, script, &args);
    let first = std::fs::read_to_string(dir.join("first.err")).unwrap();
    let resumed = std::fs::read_to_string(dir.join("resumed.err")).unwrap();
    assert!(stderr(&out).contains("first exit 2"), "{first}");
    assert!(
        first.contains("cannot write the journal")
            && first.contains("No space left on device")
            && first.contains("which is complete")
            && first.contains("--resume"),
        "{first}"
    );
    let journaled = std::fs::read_to_string(dir.join("first.journal")).unwrap();
    let intents = journaled.matches(r#""kind":"intent""#).count();
    assert!(
        (1..60).contains(&intents),
        "the disk filled mid-run: {intents} writes journaled"
    );
    assert!(stderr(&out).contains("resumed exit 0"), "{resumed}");
    let rows = report_rows(&dir.join("r.csv"));
    assert_eq!(count(&rows, "stamped"), 60, "{rows:?}");
    assert!(
        each_written_once(&graph),
        "{:?}",
        graph.stats().writes_applied
    );
    assert_eq!(graph.stats().writes_applied.len(), 60);
    assert_eq!(wrong_values(&graph), 0);
}
