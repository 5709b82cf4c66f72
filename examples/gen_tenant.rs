//! Writes a generated tenant snapshot of N users, each with the fields `hardmatch snapshot`
//! reads (display name, mail, proxy address, account state, user type, creation time; every
//! tenth user already synced, with an anchor), and the Get-ADUser export of its first ROWS
//! users, for `scripts/bench-plan-snapshot.sh`.
//!
//!     cargo run --release --example gen_tenant -- 500000 tenant.json 10000 users.csv

use hardmatch::anchor::ImmutableId;
use hardmatch::emulator::synthetic;

fn main() -> hardmatch::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [users, tenant_path, rows, export_path] = &args[..] else {
        eprintln!("usage: gen_tenant USERS TENANT.json ROWS EXPORT.csv");
        std::process::exit(2);
    };
    let (users, rows): (usize, usize) = (
        users.parse().expect("USERS is a number"),
        rows.parse().expect("ROWS is a number"),
    );
    let mut tenant = synthetic::tenant(users);
    tenant.taken_at = Some(chrono::Utc::now());
    for (i, user) in tenant.users.iter_mut().enumerate() {
        user.display_name = Some(format!("User {i:07}"));
        user.account_enabled = Some(true);
        user.user_type = Some("Member".into());
        user.created_date_time = Some("2024-03-01T09:00:00Z".into());
        if i % 10 == 9 {
            // Synced from an earlier forest: an anchor that is not this export's.
            user.on_premises_immutable_id =
                Some(ImmutableId::from_guid(synthetic::guid(users + i)).to_string());
            user.on_premises_sync_enabled = Some(true);
        }
    }
    tenant.save(std::path::Path::new(tenant_path))?;
    std::fs::write(export_path, synthetic::export_csv(rows))
        .map_err(|e| hardmatch::error::Error::io(std::path::Path::new(export_path), e))
}
