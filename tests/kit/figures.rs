//! What the long benches share: their arguments, the write rate, counting a report's
//! outcomes, and the figures the soak and crash benches print.

use std::path::Path;

use hardmatch::emulator::state::Stats;
use hardmatch::emulator::throttle::Quotas;

/// The bench's own arguments: what follows `--`, without the flags cargo bench adds.
pub fn positional_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// `--write-rate` at the documented quota (20 writes a second), sped up `time_scale` times.
pub fn write_rate(time_scale: f64) -> String {
    (Quotas::default().app_writes_per_150s / 150.0 * time_scale).to_string()
}

/// Rows in a CSV report, and how many of them have `outcome` (none when there is no report).
pub fn count_outcome(path: &Path, outcome: &str) -> (usize, usize) {
    if !path.exists() {
        return (0, 0);
    }
    let rows = super::report_rows(path);
    let matching = rows.iter().filter(|r| r["outcome"] == outcome).count();
    (rows.len(), matching)
}

/// The shortest time the documented write quota allows for `writes` at `time_scale`, in real
/// seconds: Graph's token bucket starts full (3,000 writes at once), then refills at 3,000
/// per 150 s, 20 a second.
pub fn quota_minimum(writes: usize, time_scale: f64) -> f64 {
    let quota = Quotas::default();
    let per_second = quota.app_writes_per_150s / 150.0;
    (writes as f64 - quota.app_writes_per_150s).max(0.0) / per_second / time_scale
}

/// Prints rows in and out, writes sent, applied and duplicated, and the wall time against
/// the minimum the write quota allows.
pub fn print_figures(users: usize, report: &Path, stats: &Stats, wall: f64, time_scale: f64) {
    let minimum = quota_minimum(users, time_scale);
    let (rows, stamped) = count_outcome(report, "stamped");
    let patches = stats
        .requests
        .get("PATCH /users/{id}")
        .copied()
        .unwrap_or(0);
    let applied: u64 = stats.writes_applied.values().sum();
    let duplicates: u64 = stats.writes_applied.values().map(|n| n - 1).sum();
    println!("rows in                 {users}");
    println!("report rows out         {rows} ({stamped} stamped)");
    println!(
        "writes sent             {patches} PATCHes reached Graph, those answered 429 or 5xx included ({} faults injected, {} 429s, on any request)",
        stats.faults, stats.throttled
    );
    println!(
        "writes applied          {applied} to {} users",
        stats.writes_applied.len()
    );
    println!("duplicate writes        {duplicates}");
    println!("tokens issued           {}", stats.tokens_issued);
    // Up to 3,000 writes fit in the quota's first burst: no minimum to compare with.
    let ratio = if minimum > 0.0 {
        format!("{:.2}x", wall / minimum)
    } else {
        "-".to_string()
    };
    println!(
        "wall time               {wall:.1} s against a minimum of {minimum:.1} s at the quota (3,000 at once, then 20/s): {ratio}"
    );
}
