//! `hardmatch convert`: one value in every anchor form. For the admin with one GUID in one
//! window and an ImmutableId in another, wondering whether they are the same user.

use std::io::Write;

use serde::Serialize;

use crate::anchor::{self, AnchorKind, ImmutableId};
use crate::exit_code::ExitCode;

const EXAMPLES: &str = "\
Examples:
  # An objectGUID from Get-ADUser:
  hardmatch convert f7cc07d7-7c15-447d-876d-c01b0e5a9e38

  # An ImmutableId from Get-MgUser, and csvde's hex, at once:
  hardmatch convert 1wfM9xV8fUSHbcAbDlqeOA== \"X'd707ccf7157c7d44876dc01b0e5a9e38'\"

  # A connector-space DN from the Synchronization Service Manager, as JSON:
  hardmatch convert --json 'CN={514635484D4B376E38307176645973555049486139513D3D}'

Accepted forms: GUID text (braces and dashes optional), base64 ImmutableId, 32 hex digits in AD
byte order (bare, 0x-prefixed as a whole or per byte as in ADSI Edit, separated by spaces, commas
or dashes, \\xx LDAP filter form, csvde X'..'), 16 decimal bytes, CN={...}. 32 bare hex digits
are read as AD byte order; the other reading (.NET \"N\" GUID text) is shown as a note.
Exit codes: 0 every value converted, 1 some value is not an anchor.";

/// Show anchor values in every form: GUID, ImmutableId, hex, LDAP filter, DN.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The values to convert.
    #[arg(required = true, value_name = "VALUE")]
    pub(crate) values: Vec<String>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,

    /// `guid`, or `string` for a custom anchor such as employeeID (only checked, not encoded).
    #[arg(long, value_enum, default_value = "guid")]
    pub(crate) anchor_kind: AnchorKind,
}

/// One value's conversions, or its error.
#[derive(Debug, Serialize)]
struct Conversion {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    form: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ldap_filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    let conversions: Vec<Conversion> = args
        .values
        .iter()
        .map(|v| convert(v, args.anchor_kind))
        .collect();
    // println! would panic on a closed pipe (`hardmatch convert ... | head -1`).
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &conversions)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stdout))
    } else {
        print_table(&mut stdout, &conversions)
    }
    .map_err(|e| crate::Error::io("-", e))?;
    let failed = conversions.iter().any(|c| c.error.is_some());
    Ok(ExitCode::for_rows(!failed))
}

fn convert(value: &str, kind: AnchorKind) -> Conversion {
    let mut conversion = Conversion {
        input: value.to_string(),
        form: None,
        guid: None,
        immutable_id: None,
        hex: None,
        ldap_filter: None,
        dn: None,
        note: None,
        error: None,
    };
    match anchor::parse(value, kind) {
        Ok(parsed) => {
            let id: &ImmutableId = &parsed.id;
            conversion.form = Some(parsed.form.name());
            conversion.guid = id.guid().map(|g| g.to_string());
            conversion.immutable_id = Some(id.to_string());
            conversion.hex = id.hex();
            conversion.ldap_filter = id.ldap_filter();
            conversion.dn = Some(id.connector_dn());
            conversion.note = anchor::alternative_reading(value).map(|other| {
                format!("read as hex in AD byte order; if this is .NET \"N\" GUID text, the ImmutableId is {other}")
            });
        }
        Err(e) => conversion.error = Some(e.to_string()),
    }
    conversion
}

fn print_table(out: &mut impl Write, conversions: &[Conversion]) -> std::io::Result<()> {
    for (i, c) in conversions.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let rows = [
            ("input", Some(c.input.as_str())),
            ("form", c.form),
            ("guid", c.guid.as_deref()),
            ("immutable_id", c.immutable_id.as_deref()),
            ("hex", c.hex.as_deref()),
            ("ldap_filter", c.ldap_filter.as_deref()),
            ("dn", c.dn.as_deref()),
            ("note", c.note.as_deref()),
            ("error", c.error.as_deref()),
        ];
        for (name, value) in rows {
            if let Some(value) = value {
                writeln!(out, "{name:<13} {value}")?;
            }
        }
    }
    Ok(())
}
