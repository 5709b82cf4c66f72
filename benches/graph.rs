//! Whole-binary figures against the emulator, printed for BENCHMARKS.md (not criterion: each
//! figure is one long run against a time-scaled Graph).
//!
//!     cargo bench --bench graph [-- emulator|plan|apply|batch|hop|purge|throttled]
//!
//! - emulator: load a 500,000-user tenant and page through all of it; time and peak memory.
//! - plan: 10,000 rows against a 100,000-user tenant, read each way (`--read auto|bulk|lookup`),
//!   and 100 rows read the `auto` way; Graph requests used and wall time.
//! - plan-sync: the same 10,000 rows against a 100,000-user tenant with the role data of a
//!   large organisation (200 privileged assignments, 100 eligibilities, 5 role-assignable
//!   groups): what reading for the next sync cycle costs; must stay within 300 requests.
//! - apply: 10,000 stamps at the documented quota with realistic latency, time-scaled 10x;
//!   achieved writes per second divided by the quota, and the seeds' way (look up, patch, read
//!   back, one user at a time) against the same emulator.
//! - batch: the same 10,000 PATCHes paced at the quota, sent one request each (as `apply`
//!   does) and twenty to a `$batch`, through the same client: does batching write faster?
//! - hop, purge: 1,000 federated-hop rows (three PATCHes each) and 1,000 purge-then-stamp
//!   rows (a DELETE and a PATCH) at the quota, against an emulator that enforces 20 writes a
//!   second over any 20 seconds (a bucket of 400, not Graph's 3,000, so that a run three
//!   times too fast meets 429s within 10 s), time-scaled 10x: writes per second Graph saw
//!   against the quota, and the 429s. At 10x, `--write-rate 200` allows a burst of 200 (one
//!   real second's worth), which is 10 emulated seconds: the bucket holds that and as much
//!   again for the stalls of a loaded machine.
//! - throttled: 2,000 rows at `--write-rate` 20 against an emulator that allows 10 writes a
//!   second (bucket of 20), time-scaled 5x, default concurrency: wall time against the floor
//!   that limit sets.

use std::time::Instant;

use hardmatch::emulator::{self, synthetic, Config};
use hardmatch::graph::{query, GraphClient, TokenSource, USER_SELECT};
use hardmatch::tenant::Tenant;

#[path = "../tests/kit/mod.rs"]
mod kit;

use kit::TOKEN;

fn tenant(users: usize) -> Tenant {
    synthetic::tenant(users)
}

fn export(rows: usize, path: &std::path::Path) {
    std::fs::write(path, synthetic::export_csv(rows)).unwrap();
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn client(url: &str) -> GraphClient {
    let secret = azure_core::credentials::Secret::new(TOKEN.to_string());
    GraphClient::new(reqwest::Client::new(), url, TokenSource::Fixed(secret)).unwrap()
}

fn config(time_scale: f64, latency: (u64, u64)) -> Config {
    Config {
        access_token: Some(TOKEN.into()),
        time_scale,
        latency_ms: latency,
        ..Config::default()
    }
}

async fn bench_emulator() {
    let started = Instant::now();
    let running = emulator::spawn(tenant(500_000), config(1.0, (0, 0)))
        .await
        .unwrap();
    let loaded = started.elapsed();
    let client = client(&running.url);
    let listing = Instant::now();
    let users = client
        .list_all(
            &format!(
                "/users?{}",
                query(&[("$select", USER_SELECT), ("$top", "999")])
            ),
            |_| {},
        )
        .await
        .unwrap();
    println!(
        "emulator: 500,000 users loaded in {:.2} s; whole paged listing ({} users, {} requests) in {:.2} s; peak memory {:.0} MiB",
        loaded.as_secs_f64(),
        users.len(),
        client.requests(),
        listing.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    running.stop().await;
}

/// Runs the real binary against `url` off the async runtime (the emulator runs on it).
async fn hardmatch(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = kit::against(url, kit::binary(), args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The request count hardmatch reports for its tenant read ("...: N Graph requests").
fn reported_requests(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find(|l| l.contains("tenant read"))
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or("?")
        .to_string()
}

/// [`reported_requests`] as a number (`u64::MAX` when the run did not say, so a cap fails).
fn request_count(stderr: &[u8]) -> u64 {
    reported_requests(stderr)
        .trim_end_matches(" Graph requests")
        .parse()
        .unwrap_or(u64::MAX)
}

async fn bench_plan(dir: &std::path::Path) {
    for (rows, how) in [
        (10_000, "auto"),
        (10_000, "bulk"),
        (10_000, "lookup"),
        (100, "auto"),
    ] {
        let input = dir.join(format!("plan-input-{rows}.csv"));
        export(rows, &input);
        let running = emulator::spawn(tenant(100_000), config(10.0, (30, 250)))
            .await
            .unwrap();
        let started = Instant::now();
        let out_path = dir.join("plan.csv");
        let out = hardmatch(
            &running.url,
            &[
                "plan",
                "--read",
                how,
                input.to_str().unwrap(),
                "-o",
                out_path.to_str().unwrap(),
            ],
        )
        .await;
        let wall = started.elapsed().as_secs_f64();
        // The emulator counts each request inside a $batch too: what the throttle charges.
        let served: u64 = running.emulator.stats().requests.values().sum();
        println!(
            "plan --read {how}: {rows} rows against a 100,000-user tenant: {} (a per-user script needs {}), {served} requests served counting those inside $batch, {wall:.1} s wall at time scale 10; exit {:?}",
            reported_requests(&out.stderr),
            rows * 2,
            out.status.code()
        );
        running.stop().await;
    }
}

/// `plan` reads each target's onPremisesObjectIdentifier and the tenant's privileged roles;
/// issue 14 caps the whole read at 300 requests for 10,000 rows in a 100,000-user tenant.
async fn bench_plan_sync(dir: &std::path::Path) {
    const CAP: u64 = 300;
    let input = dir.join("plan-sync-input.csv");
    export(10_000, &input);
    let mut tenant = tenant(100_000);
    synthetic::add_roles(&mut tenant, 200, 100, 5);
    let running = emulator::spawn(tenant, config(10.0, (30, 250)))
        .await
        .unwrap();
    let out_path = dir.join("plan-sync.csv");
    let started = Instant::now();
    let out = hardmatch(
        &running.url,
        &[
            "plan",
            input.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ],
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr);
    let requests = request_count(&out.stderr);
    let privileged = text
        .lines()
        .find(|l| l.trim_start().starts_with("target-privileged"))
        .unwrap_or("  target-privileged 0")
        .trim()
        .to_string();
    println!(
        "plan-sync: 10,000 rows against a 100,000-user tenant with roles: {requests} Graph requests (cap {CAP}), {privileged}, {wall:.1} s wall at time scale 10; exit {:?}",
        out.status.code()
    );
    running.stop().await;
    assert!(
        requests <= CAP,
        "{requests} requests: over the cap of {CAP}\n{text}"
    );
}

/// `verify` after the cycle reads the rows' users and their anchors' holders the cheaper
/// way, as `plan` does; issue 16 asks for no more requests than the plan needed.
async fn bench_verify(dir: &std::path::Path) {
    let input = dir.join("verify-input.csv");
    export(10_000, &input);
    let running = emulator::spawn(tenant(100_000), config(10.0, (30, 250)))
        .await
        .unwrap();
    let plan_path = dir.join("verify-plan.csv");
    let verify_path = dir.join("verify.csv");
    let (input, plan, verify) = (
        input.to_str().unwrap(),
        plan_path.to_str().unwrap(),
        verify_path.to_str().unwrap(),
    );
    let planned = hardmatch(&running.url, &["plan", input, "-o", plan]).await;
    let started = Instant::now();
    let verified = hardmatch(&running.url, &["verify", plan, "-o", verify]).await;
    let wall = started.elapsed().as_secs_f64();
    let (plan_requests, verify_requests) = (
        request_count(&planned.stderr),
        request_count(&verified.stderr),
    );
    println!(
        "verify: 10,000 rows against a 100,000-user tenant: {verify_requests} Graph requests (the plan: {plan_requests}), {wall:.1} s wall at time scale 10; exit {:?}",
        verified.status.code()
    );
    running.stop().await;
    assert!(
        verify_requests <= plan_requests,
        "verify needs {verify_requests} requests, the plan {plan_requests}\n{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

async fn bench_apply(dir: &std::path::Path) {
    const USERS: usize = 10_000;
    const SCALE: f64 = 10.0;
    let running = emulator::spawn(tenant(USERS), config(SCALE, (30, 250)))
        .await
        .unwrap();
    let input = dir.join("apply-input.csv");
    export(USERS, &input);
    let rate = (20.0 * SCALE).to_string();
    let report = dir.join("apply.csv");
    let started = Instant::now();
    let args = [
        "apply",
        input.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--yes",
        "-q",
        "--write-rate",
        &rate,
    ];
    let out = hardmatch(&running.url, &args).await;
    let wall = started.elapsed().as_secs_f64();
    let stats = running.emulator.stats();
    let written = stats.writes_applied.len();
    let twice = stats.writes_applied.values().filter(|&&n| n > 1).count();
    let achieved = written as f64 / wall / SCALE;
    println!(
        "apply: {written} of {USERS} users stamped in {wall:.1} s at time scale {SCALE} (whole command, tenant read included): {achieved:.2} writes/s of Graph time = {:.3} of the 20/s quota; written twice: {twice}; 429s: {}; exit {:?}",
        achieved / 20.0,
        stats.throttled,
        out.status.code()
    );
    running.stop().await;

    // The seeds' way against a fresh copy: for each user in turn, look up, patch, read back.
    let running = emulator::spawn(tenant(USERS), config(SCALE, (30, 250)))
        .await
        .unwrap();
    let client = client(&running.url);
    const SAMPLE: usize = 200;
    let started = Instant::now();
    for i in 0..SAMPLE {
        let upn = format!("user{i}@contoso.com");
        let filter = format!(
            "userPrincipalName eq {}",
            hardmatch::graph::odata_literal(&upn)
        );
        let found = client
            .send(
                reqwest::Method::GET,
                &format!("/users?{}", query(&[("$filter", &filter)])),
                None,
                false,
            )
            .await
            .unwrap();
        let id = found.body["value"][0]["id"].as_str().unwrap().to_string();
        let anchor = hardmatch::anchor::ImmutableId::from_guid(synthetic::guid(i));
        client.set_anchor(&id, Some(anchor.as_str())).await.unwrap();
        client.get_user(&id).await.unwrap();
    }
    let seeds_rate = SAMPLE as f64 / started.elapsed().as_secs_f64() / SCALE;
    println!(
        "seeds' way: {seeds_rate:.2} users/s of Graph time (200 users, one at a time: look up, patch, read back); hardmatch is {:.0}x faster",
        achieved / seeds_rate
    );
    running.stop().await;
}

/// Stamps every user of a fresh emulator with PATCHes paced at the quota, `per_request` to
/// an HTTP request (1: single PATCHes, 20: `$batch`es), and prints writes/s against the quota.
async fn paced_writes(per_request: usize) {
    use futures::stream::{self, StreamExt};
    use governor::{Quota, RateLimiter};
    const USERS: usize = 10_000;
    const SCALE: f64 = 10.0;
    let running = emulator::spawn(tenant(USERS), config(SCALE, (30, 250)))
        .await
        .unwrap();
    let client = client(&running.url);
    let ids: Vec<String> = tenant(USERS).users.into_iter().map(|u| u.id).collect();
    let requests_per_second = 20.0 * SCALE / per_request as f64;
    let limiter = RateLimiter::direct(
        Quota::with_period(std::time::Duration::from_secs_f64(
            1.0 / requests_per_second,
        ))
        .unwrap(),
    );
    let anchor =
        |i: usize| hardmatch::anchor::ImmutableId::from_guid(synthetic::guid(i)).to_string();
    let started = Instant::now();
    let chunks: Vec<Vec<(usize, &String)>> = ids
        .iter()
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(per_request)
        .map(<[_]>::to_vec)
        .collect();
    let failed: usize = stream::iter(chunks)
        .map(|chunk| {
            let (client, limiter) = (&client, &limiter);
            async move {
                limiter.until_ready().await;
                if per_request == 1 {
                    let (i, id) = chunk[0];
                    return usize::from(client.set_anchor(id, Some(&anchor(i))).await.is_err());
                }
                let requests: Vec<hardmatch::graph::BatchRequest> = chunk
                    .iter()
                    .map(|&(i, id)| hardmatch::graph::BatchRequest {
                        method: reqwest::Method::PATCH,
                        url: format!("/users/{id}"),
                        body: Some(serde_json::json!({"onPremisesImmutableId": anchor(i)})),
                    })
                    .collect();
                client
                    .batch(&requests)
                    .await
                    .iter()
                    .filter(|r| r.is_err())
                    .count()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<usize>>()
        .await
        .into_iter()
        .sum();
    let wall = started.elapsed().as_secs_f64();
    let stats = running.emulator.stats();
    let written = stats.writes_applied.len();
    let achieved = written as f64 / wall / SCALE;
    println!(
        "{}: {written} of {USERS} written in {wall:.1} s at time scale {SCALE}: {achieved:.2} writes/s of Graph time = {:.3} of the quota; {} HTTP requests; 429s: {}; failed: {failed}",
        if per_request == 1 { "single PATCHes" } else { "$batch of 20" },
        achieved / 20.0,
        client.requests(),
        stats.throttled,
    );
    running.stop().await;
}

/// An emulator enforcing `writes_per_second` with a bucket of `burst`, time-scaled.
async fn enforcing(
    tenant: Tenant,
    writes_per_second: f64,
    burst: f64,
    time_scale: f64,
) -> hardmatch::emulator::Running {
    let mut config = config(time_scale, (30, 250));
    config.quotas.app_writes_per_150s = writes_per_second * 150.0;
    config.quotas.app_write_burst = Some(burst);
    emulator::spawn(tenant, config).await.unwrap()
}

/// `apply` of `rows` rows against `tenant` at the quota (`--write-rate` 20, time-scaled), and
/// the writes per second Graph saw.
async fn quota_run(dir: &std::path::Path, what: &str, tenant: Tenant, flag: &str) {
    const ROWS: usize = 1_000;
    const SCALE: f64 = 10.0;
    let running = enforcing(tenant, 20.0, 400.0, SCALE).await;
    let input = dir.join(format!("{what}-input.csv"));
    export(ROWS, &input);
    let report = dir.join(format!("{what}.csv"));
    let rate = (20.0 * SCALE).to_string();
    let args = [
        "apply",
        input.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--yes",
        "-q",
        flag,
        "--write-rate",
        &rate,
    ];
    let started = Instant::now();
    let out = hardmatch(&running.url, &args).await;
    let wall = started.elapsed().as_secs_f64();
    let stats = running.emulator.stats();
    let writes = stats.writes_total;
    let achieved = writes as f64 / wall / SCALE;
    println!(
        "{what}: {ROWS} rows, {writes} writes in {wall:.1} s at time scale {SCALE} (whole command): {achieved:.2} writes/s of Graph time = {:.3} of the 20/s quota; stamped {}; 429s: {}; exit {:?}",
        achieved / 20.0,
        stats.writes_applied.len(),
        stats.throttled,
        out.status.code()
    );
    running.stop().await;
}

/// A service that throttles at half the configured rate: how close to its floor a run gets.
async fn bench_throttled(dir: &std::path::Path) {
    const ROWS: usize = 2_000;
    const SCALE: f64 = 5.0;
    const LIMIT: f64 = 10.0;
    const BURST: f64 = 20.0;
    let running = enforcing(tenant(ROWS), LIMIT, BURST, SCALE).await;
    let input = dir.join("throttled-input.csv");
    export(ROWS, &input);
    let report = dir.join("throttled.csv");
    let rate = (20.0 * SCALE).to_string();
    let args = [
        "apply",
        input.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--yes",
        "-q",
        "--write-rate",
        &rate,
    ];
    let started = Instant::now();
    let out = hardmatch(&running.url, &args).await;
    let wall = started.elapsed().as_secs_f64();
    let stats = running.emulator.stats();
    let floor = (ROWS as f64 - BURST) / LIMIT / SCALE;
    println!(
        "throttled: {ROWS} rows at --write-rate 20 against a service allowing {LIMIT}/s, concurrency 32, time scale {SCALE}: {} stamped in {wall:.1} s against a floor of {floor:.1} s = {:.2}x; 429s: {}; written twice: {}; exit {:?}",
        stats.writes_applied.len(),
        wall / floor,
        stats.throttled,
        stats.writes_applied.values().filter(|&&n| n > 1).count(),
        out.status.code()
    );
    running.stop().await;
}

fn main() {
    let which = kit::figures::positional_args();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if wants("emulator") {
            bench_emulator().await;
        }
        if wants("plan") {
            bench_plan(dir.path()).await;
        }
        if wants("plan-sync") {
            bench_plan_sync(dir.path()).await;
        }
        if wants("verify") {
            bench_verify(dir.path()).await;
        }
        if wants("apply") {
            bench_apply(dir.path()).await;
        }
        if wants("batch") {
            paced_writes(1).await;
            paced_writes(20).await;
        }
        if wants("hop") {
            quota_run(
                dir.path(),
                "hop",
                synthetic::federated(1_000),
                "--federated-hop",
            )
            .await;
        }
        if wants("purge") {
            let tenant = synthetic::deleted_holders(1_000);
            quota_run(dir.path(), "purge", tenant, "--purge-deleted-holders").await;
        }
        if wants("throttled") {
            bench_throttled(dir.path()).await;
        }
    });
}
