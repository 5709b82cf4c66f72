//! How the binary ends when something is wrong: each cause said once, a closed pipe that is
//! not an error, a Graph that cannot be reached said at once and as what it is, and a token
//! with stray whitespace.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{fast, generated, run, sample, stderr, Dir, Graph, TOKEN};

#[test]
fn a_missing_file_is_named_with_its_cause_once() {
    let dir = Dir::new();
    let out = run(dir.hardmatch().args(["ids", "missing.csv", "-o", "-"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("hardmatch: missing.csv: "), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_run_quietly() {
    let dir = Dir::new();
    // Far more than a pipe buffers, so that the writes meet the closed pipe.
    let (_, export) = generated(&dir, 20_000);
    let mut child = dir
        .hardmatch()
        .args(["ids", export.to_str().unwrap(), "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("line,upn"), "{first}");
    // The reader is dropped here: `hardmatch ids ... -o - | head -1`.
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("hardmatch:") && !err.contains("pipe"),
        "{err}"
    );
}

#[test]
fn a_bad_graph_url_is_named_as_such_not_as_a_sign_in_failure() {
    let dir = Dir::new();
    let export = sample("getaduser-ps51.csv");
    for url in ["ht!tp:/x", "http://graph.example.com"] {
        let out = run(dir
            .hardmatch()
            .arg("plan")
            .arg(&export)
            .args(["-o", "p.csv", "--graph-url", url])
            .env("HARDMATCH_ACCESS_TOKEN", TOKEN));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.starts_with("hardmatch: --graph-url "), "{url}: {err}");
        assert!(!err.contains("sign-in failed"), "{url}: {err}");
    }
}

/// A port on 127.0.0.1 where nothing listens: bound by the system, then let go.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_refused_loopback_graph_fails_in_seconds_with_its_url() {
    let dir = Dir::new();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let out = run(dir
        .hardmatch()
        .arg("plan")
        .arg(sample("getaduser-ps51.csv"))
        .args(["-o", "p.csv", "--graph-url", &url])
        .env("HARDMATCH_ACCESS_TOKEN", TOKEN));
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // Before: 9 attempts with backoff, about 3 minutes behind a spinner.
    assert!(took < Duration::from_secs(10), "{took:?}: {err}");
    assert!(
        err.contains(&url) && err.contains("connection refused"),
        "{err}"
    );
    assert!(!err.contains("sign-in failed"), "{err}");
}

#[test]
fn a_token_with_a_trailing_newline_is_trimmed_and_one_with_a_space_inside_refused_unseen() {
    let dir = Dir::new();
    let (tenant, export) = generated(&dir, 3);
    let graph = Graph::start(tenant, fast());
    let export = export.to_str().unwrap();
    let plan = |token: &str| {
        run(graph
            .hardmatch(&dir, &["plan", export, "-o", "p.csv"])
            .env("HARDMATCH_ACCESS_TOKEN", token))
    };

    let out = plan(&format!(" {TOKEN}\r\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let requests = graph.stats().requests;
    let (head, tail) = TOKEN.split_at(5);
    let started = Instant::now();
    let out = plan(&format!("{head} {tail}"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert!(
        err.contains("HARDMATCH_ACCESS_TOKEN holds a space at character 6"),
        "{err}"
    );
    assert!(!err.contains(head) && !err.contains(tail), "{err}");
    assert_eq!(
        graph.stats().requests,
        requests,
        "nothing more should reach Graph"
    );
}

#[test]
fn verbose_goes_before_or_after_any_command() {
    let dir = Dir::new();
    let (_, export) = generated(&dir, 3);
    let export = export.to_str().unwrap();
    for args in [
        ["-v", "ids", export, "-o", "ids.csv"],
        ["ids", export, "-o", "ids.csv", "-v"],
    ] {
        let out = run(dir.hardmatch().args(args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains("INFO"), "{args:?}: {err}");
    }
    let out = run(dir
        .hardmatch()
        .args(["-v", "convert", "f7cc07d7-7c15-447d-876d-c01b0e5a9e38"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
