//! The input options every command that reads an export shares (xsv's `Config`): the file,
//! how to read it, and how to compute each row's anchor and target.

use std::path::PathBuf;

use crate::anchor::AnchorKind;
use crate::compute::{ComputeOptions, SourceAnchor};
use crate::source::{self, Format, ReadOptions, Role, Source};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InputArgs {
    /// The AD export: CSV (Export-Csv, csvde, Excel), LDIF (ldifde, ldapsearch) or a workbook
    /// (XLSX, XLS, ODS).
    pub(crate) input: PathBuf,

    /// Read the input as this format instead of detecting it.
    #[arg(long, value_parser = parse_format, value_name = "csv|ldif|xlsx")]
    pub(crate) format: Option<Format>,

    /// CSV delimiter, instead of sniffing among , ; and tab (`tab` for a tab).
    #[arg(long, value_parser = parse_delimiter, value_name = "CHAR")]
    pub(crate) delimiter: Option<u8>,

    /// Map a role to a header by hand, e.g. `--column upn=Login --column object-guid=GUID`.
    /// Roles: upn, object-guid, consistency-guid, immutable-id, mail, target-upn,
    /// cloud-object-id, display-name, object-class, dn, proxy-addresses.
    #[arg(long = "column", value_parser = parse_column, value_name = "ROLE=HEADER")]
    pub(crate) columns: Vec<(Role, String)>,

    /// The workbook's sheet (default: the first).
    #[arg(long, value_name = "NAME")]
    pub(crate) sheet: Option<String>,

    /// `guid` (objectGUID / mS-DS-ConsistencyGuid) or `string` (a custom anchor such as
    /// employeeID, mapped with --column immutable-id=HEADER and used as-is).
    #[arg(long, value_enum, default_value = "guid")]
    pub(crate) anchor_kind: AnchorKind,

    /// Which attribute the tenant's sync takes its anchor from: `auto` finds out from the
    /// export's already-synced users (mS-DS-ConsistencyGuid when they show nothing),
    /// `consistency-guid` (ConsistencyGuid when set, else objectGUID: Cloud Sync and current
    /// Entra Connect), or `object-guid` (older Entra Connect and DirSync upgrades).
    #[arg(long, value_enum, default_value = "auto", value_name = "ATTRIBUTE")]
    pub(crate) source_anchor: SourceAnchor,

    /// Map an on-premises UPN suffix to the cloud one for a domain move, e.g.
    /// `--upn-suffix contoso.local=contoso.com` (repeatable).
    #[arg(long = "upn-suffix", value_parser = parse_suffix, value_name = "OLD=NEW")]
    pub(crate) upn_suffixes: Vec<(String, String)>,
}

impl InputArgs {
    /// The export as a run reads it.
    pub(crate) fn to_input(&self) -> crate::run::Input {
        crate::run::Input {
            path: self.input.clone(),
            read: self.read_options(),
            compute: self.compute_options(),
            flags: self.written_flags(),
        }
    }

    /// Opens the export for [`prepare`](crate::run::stages::prepare).
    pub(crate) fn open(&self) -> crate::Result<Source> {
        source::open(&self.input, &self.read_options())
    }

    pub(crate) fn read_options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            delimiter: self.delimiter,
            columns: self.columns.clone(),
            sheet: self.sheet.clone(),
            anchor_optional: false,
        }
    }

    /// The options given that change which users are written and with what (for a write
    /// run's journal), as typed.
    pub(crate) fn written_flags(&self) -> Vec<String> {
        let suffixes = self
            .upn_suffixes
            .iter()
            .map(|(old, new)| format!("--upn-suffix {old}={new}"));
        let columns = self
            .columns
            .iter()
            .map(|(role, header)| format!("--column {role:?}={header}"));
        let kind = (self.anchor_kind != AnchorKind::default())
            .then(|| format!("--anchor-kind {:?}", self.anchor_kind));
        suffixes.chain(columns).chain(kind).collect()
    }

    pub(crate) fn compute_options(&self) -> ComputeOptions {
        ComputeOptions {
            anchor_kind: self.anchor_kind,
            source_anchor: self.source_anchor,
            upn_suffixes: self.upn_suffixes.clone(),
            anchor_optional: false,
        }
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s.to_ascii_lowercase().as_str() {
        "csv" => Ok(Format::Csv),
        "ldif" | "ldf" => Ok(Format::Ldif),
        "xlsx" | "xls" | "xlsm" | "ods" => Ok(Format::Spreadsheet),
        other => Err(format!("unknown format {other:?}: use csv, ldif or xlsx")),
    }
}

fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "{s:?} is not a one-character delimiter (use , ; | or tab)"
        )),
    }
}

fn parse_column(s: &str) -> Result<(Role, String), String> {
    let (role, header) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ROLE=HEADER, e.g. upn=Login"))?;
    let role = Role::from_name(role.trim()).ok_or_else(|| {
        let known: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
        format!("unknown role {role:?}; known roles: {}", known.join(", "))
    })?;
    Ok((role, header.trim().to_string()))
}

fn parse_suffix(s: &str) -> Result<(String, String), String> {
    let (old, new) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected OLD=NEW, e.g. contoso.local=contoso.com"))?;
    let clean = |d: &str| d.trim().trim_start_matches('@').to_ascii_lowercase();
    match (clean(old), clean(new)) {
        (old, new) if !old.is_empty() && !new.is_empty() => Ok((old, new)),
        _ => Err(format!("{s:?}: both suffixes must be given")),
    }
}
