//! Writes a synthetic Windows PowerShell 5.1 `Get-ADUser | Export-Csv` export of N users, for
//! benchmarks: the `#TYPE` line, every field quoted, CRLF, unique UPNs, seeded random GUIDs
//! (the same file for the same N).
//!
//!     cargo run --release --example gen_export -- 1000000 users.csv

use std::io::{BufWriter, Write};

use rand::{Rng, SeedableRng};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: gen_export N OUT.csv");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("N is a number");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x4841_5244);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"#TYPE Microsoft.ActiveDirectory.Management.ADUser\r\n")?;
    out.write_all(b"\"DistinguishedName\",\"Enabled\",\"GivenName\",\"Name\",\"ObjectClass\",\"ObjectGUID\",\"SamAccountName\",\"SID\",\"Surname\",\"UserPrincipalName\"\r\n")?;
    for i in 0..count {
        let guid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        write!(
            out,
            "\"CN=User {i:07},OU=Staff,DC=contoso,DC=com\",\"True\",\"User\",\"User {i:07}\",\"user\",\"{guid}\",\"user{i:07}\",\"S-1-5-21-3623811015-3361044348-30300820-{}\",\"{i:07}\",\"user{i:07}@contoso.com\"\r\n",
            1000 + i
        )?;
    }
    out.flush()
}
