//! Crash: `kill -9` an apply at random moments, resume each time, then roll everything back.
//! A 5,000-user run (a third of them already holding another anchor, replaced with
//! `--overwrite`) is killed at 20 random moments, from sign-in and the tenant read to the
//! last writes; each kill is followed by `--resume` of the same journal, until a run ends on
//! its own. Prints the soak's figures, then rolls the whole run back from its journal and
//! counts the users whose anchor is not what it was before. Goal: nothing lost, nothing
//! written twice, every previous value put back.
//!
//!     cargo bench --bench crash [-- USERS [KILLS [SEED]]]     (default: 5000 users, 20 kills)

use std::process::Stdio;
use std::time::{Duration, Instant};

use hardmatch::anchor::ImmutableId;
use hardmatch::emulator::{synthetic, Config};
use hardmatch::tenant::Tenant;
use rand::{Rng, SeedableRng};

#[path = "../tests/kit/mod.rs"]
mod kit;

const TIME_SCALE: f64 = 20.0;

/// The synthetic tenant, every third user holding an anchor from an earlier attempt.
fn tenant(users: usize) -> Tenant {
    let mut tenant = synthetic::tenant(users);
    for (i, user) in tenant.users.iter_mut().enumerate().step_by(3) {
        let earlier = synthetic::guid(users + i);
        user.on_premises_immutable_id = Some(ImmutableId::from_guid(earlier).to_string());
    }
    tenant
}

// Longer than 80 lines on purpose: one run of the crash test, read top to bottom
fn main() {
    let args = kit::figures::positional_args();
    let users: usize = args.first().map_or(5_000, |a| a.parse().expect("USERS"));
    let kills: usize = args.get(1).map_or(20, |a| a.parse().expect("KILLS"));
    let seed: u64 = args.get(2).map_or(1, |a| a.parse().expect("SEED"));
    let dir = kit::Dir::new();
    let export = kit::export(&dir, users);
    let report = dir.join("report.csv");
    let journal = dir.join("report.csv.journal");
    let before = tenant(users);
    let config = Config {
        time_scale: TIME_SCALE,
        latency_ms: (30, 250),
        ..Config::default()
    };
    let graph = kit::Graph::start(before.clone(), config);
    let rate = kit::figures::write_rate(TIME_SCALE);
    let hardmatch = |args: &[&str]| {
        let mut command = kit::against(graph.url(), kit::binary(), args);
        command
            .args(["--yes", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let apply = |resume: bool| {
        let mut command = hardmatch(&["apply", "--overwrite", "--write-rate", &rate]);
        if resume {
            command.arg("--resume").arg(&journal);
        }
        command.arg(&export).arg("-o").arg(&report);
        command
    };
    // Twenty random moments of the run, as points of its progress (users written so far):
    // a point already passed kills the next run as soon as it has started, during sign-in
    // and the tenant read.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut moments: Vec<usize> = (0..kills).map(|_| rng.random_range(0..users)).collect();
    moments.sort_unstable();
    let written = || graph.stats().writes_applied.len();
    let started = Instant::now();
    let mut killed_mid_run = 0;
    for (kill, moment) in moments.iter().enumerate() {
        let mut child = apply(kill > 0).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(20..200)));
        while written() < *moment && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let last = apply(kills > 0).status().unwrap();
    let wall = started.elapsed().as_secs_f64();
    println!(
        "crash: {users} users at time scale {TIME_SCALE}, {kills} runs killed with SIGKILL ({killed_mid_run} while still running; seed {seed}), then one resume to the end: exit {:?}",
        last.code()
    );
    kit::figures::print_figures(users, &report, &graph.stats(), wall, TIME_SCALE);

    let rolled_back = dir.join("rollback.csv");
    let rollback = hardmatch(&["rollback", "--write-rate", &rate])
        .arg(&journal)
        .arg("-o")
        .arg(&rolled_back)
        .status()
        .unwrap();
    let now = graph.tenant();
    let different = before
        .users
        .iter()
        .zip(&now.users)
        .filter(|(then, now)| then.on_premises_immutable_id != now.on_premises_immutable_id)
        .count();
    let (rows, restored) = kit::figures::count_outcome(&rolled_back, "restored");
    println!(
        "rollback                {restored} of {rows} rows restored, exit {:?}; users whose anchor differs from before the run: {different}",
        rollback.code()
    );
}
