//! Soak: a large migration stamped against a time-scaled emulator through what Graph does to
//! a long run: 5% 5xx answers, connection resets, a 429 storm and every token expiring in
//! the middle. Prints rows in, report rows out, writes sent, writes applied, duplicate writes,
//! and wall time against the minimum the write quota allows. Goal: report rows = rows in,
//! no duplicate writes, wall time within 1.2 times the minimum.
//!
//!     cargo bench --bench soak [-- USERS [TIME_SCALE]]     (default: 100000 users, 20x)
//!
//! The real binary signs in with a client secret through the emulator's HTTPS token endpoint,
//! so that the mid-run expiry is survived the way a real run survives it: a new token.

use std::time::{Duration, Instant};

use hardmatch::emulator::Config;

#[path = "../tests/kit/mod.rs"]
mod kit;

/// 5% of answers are 5xx (500, 503, 504), 1% are connection resets after the answer.
const FAULTS: &str = "500=0.01,503=0.03,504=0.01,reset=0.01,seed=7";
/// The storm: every request answered 429 for this long (emulated seconds).
const STORM_SECS: f64 = 60.0;

fn main() {
    let args = kit::figures::positional_args();
    let users: usize = args.first().map_or(100_000, |a| a.parse().expect("USERS"));
    let scale: f64 = args.get(1).map_or(20.0, |a| a.parse().expect("TIME_SCALE"));
    let dir = kit::Dir::new();
    let (tenant, export) = kit::generated(&dir, users);
    let cert = dir.join("emulator.pem");
    let report = dir.join("report.csv");
    let config = Config {
        clients: vec![("app-1".into(), kit::CLIENT_SECRET.into())],
        tls_cert_out: Some(cert.clone()),
        time_scale: scale,
        latency_ms: (30, 250),
        faults: FAULTS.parse().unwrap(),
        // Tokens live an hour of real time, as Graph's do: azure_identity renews a token in
        // its last five minutes, which an hour scaled down 20x would always be in.
        token_lifetime_secs: 3599.0 * scale,
        ..Config::default()
    };
    let graph = kit::Graph::start(tenant, config);
    let rate = kit::figures::write_rate(scale);
    let (input, output) = (export.to_str().unwrap(), report.to_str().unwrap());
    // Retries back off in real seconds while the quota runs 20x faster: more writes wait at
    // once than at real speed, so more may be in flight.
    let apply = [
        "apply",
        "--yes",
        "-q",
        "--write-rate",
        &rate,
        "--concurrency",
        "256",
        input,
        "-o",
        output,
    ];
    let mut child = graph
        .hardmatch_with_secret(&dir, &apply, kit::CLIENT_SECRET)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (mut stormed, mut expired) = (false, false);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let applied = graph.stats().writes_applied.len();
        if !stormed && applied >= users / 3 {
            graph.running.emulator.storm(STORM_SECS);
            stormed = true;
            eprintln!("soak: {applied} written, a {STORM_SECS} s storm of 429s begins");
        }
        if !expired && applied >= users * 2 / 3 {
            graph.running.emulator.expire_tokens();
            expired = true;
            eprintln!("soak: {applied} written, every token expires");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = started.elapsed().as_secs_f64();
    println!("soak: {users} users at time scale {scale}, faults {FAULTS}, a {STORM_SECS} s storm at 1/3, every token expired at 2/3; exit {:?}", status.code());
    kit::figures::print_figures(users, &report, &graph.stats(), wall, scale);
}
