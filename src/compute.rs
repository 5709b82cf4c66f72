//! The compute stage: every [`Row`] becomes a [`Candidate`] (its ImmutableId, the form it was
//! read in, the UPN to look for in the cloud, or the input outcome that stops it), on all
//! cores with rayon. Then duplicates inside the input are flagged, naming the other lines.
//!
//! Pure functions over the rows: no I/O, so it is as fast as the cores allow.

use std::borrow::Cow;

use rayon::prelude::*;
// A fast non-cryptographic hash: the keys come from the admin's own export, not an attacker.
use rustc_hash::FxHashMap as HashMap;
use uuid::Uuid;

use crate::anchor::{self, AnchorForm, AnchorKind, ImmutableId};
use crate::outcome::{Outcome, Verdict};
use crate::source::{Input, Location, Role, Row};

/// Which attribute the tenant's sync takes its sourceAnchor from (docs/graph.md,
/// "ImmutableId"): `--source-anchor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceAnchor {
    /// Find out from the export's already-synced users; without evidence, as
    /// `consistency-guid`.
    #[default]
    Auto,
    /// mS-DS-ConsistencyGuid when it has a value, else objectGUID (Cloud Sync, current
    /// Entra Connect).
    ConsistencyGuid,
    /// objectGUID alone (Entra Connect installed at 1.1.486 or older, upgraded from DirSync,
    /// or Express with ConsistencyGuid already in use).
    ObjectGuid,
}

#[derive(Clone, Debug, Default)]
pub struct ComputeOptions {
    pub anchor_kind: AnchorKind,
    pub source_anchor: SourceAnchor,
    /// `--upn-suffix old=new` mappings, lowercased, without `@`.
    pub upn_suffixes: Vec<(String, String)>,
    /// `clear` needs no anchor, only a way to find the cloud user.
    pub anchor_optional: bool,
}

/// What the offline stages know about one row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub immutable_id: Option<ImmutableId>,
    pub(crate) form: Option<AnchorForm>,
    /// The column the anchor came from.
    pub anchor_role: Option<Role>,
    /// The row's objectGUID, whichever attribute gave the anchor (`None` for a row without
    /// one, or with a custom string anchor).
    pub guid: Option<Uuid>,
    /// The ImmutableId of the GUID attribute that did not give the anchor (objectGUID when
    /// mS-DS-ConsistencyGuid did, and the other way round), when the row has a usable value:
    /// evidence for `--source-anchor auto`, and the row's own objectGUID for
    /// onPremisesObjectIdentifier.
    pub(crate) other_source: Option<(Role, ImmutableId)>,
    /// The UPN to look for in the cloud: TargetUPN, or the UPN after suffix mapping;
    /// borrowed from the row unless a suffix was mapped.
    pub(crate) target_upn: Option<Cow<'a, str>>,
    /// The input outcome that stops this row, if any.
    pub verdict: Option<Verdict>,
}

impl Candidate<'_> {
    /// The other GUID attribute's ImmutableId when it differs from the anchor: the two
    /// attributes disagree, and which one sync uses matters.
    pub(crate) fn differing_source(&self) -> Option<&(Role, ImmutableId)> {
        self.other_source
            .as_ref()
            .filter(|(_, other)| Some(other) != self.immutable_id.as_ref())
    }
}

/// Computes one candidate per row, in row order, and flags duplicates.
pub fn compute<'a>(input: &Input<'a>, options: &ComputeOptions) -> Vec<Candidate<'a>> {
    let mut candidates = candidates(input, options);
    let location = |i: usize| input.rows[i].location.clone();
    for check in DuplicateCheck::ALL {
        let found = check.find(
            input,
            candidates.len(),
            |i| candidates[i].verdict.is_none(),
            |i| check.key_of(&candidates[i]),
            location,
        );
        for (i, verdict) in found {
            candidates[i].verdict = Some(verdict);
        }
    }
    candidates
}

/// One candidate per row of `input`, in row order, on all cores; duplicates inside the input
/// are not looked for (see [`DuplicateCheck`]), so a caller may compute an export a batch
/// at a time.
pub(crate) fn candidates<'a>(input: &Input<'a>, options: &ComputeOptions) -> Vec<Candidate<'a>> {
    input
        .rows
        .par_iter()
        .map(|row| candidate(input, row, options))
        .collect()
}

/// Applies the first matching `--upn-suffix` mapping to a UPN's domain.
pub(crate) fn map_upn<'a>(upn: Cow<'a, str>, suffixes: &[(String, String)]) -> Cow<'a, str> {
    if let Some((local, domain)) = upn.rsplit_once('@') {
        if let Some((_, new)) = suffixes
            .iter()
            .find(|(old, _)| old.eq_ignore_ascii_case(domain))
        {
            return Cow::Owned(format!("{local}@{new}"));
        }
    }
    upn
}

/// One row's candidate (see [`candidates`]).
pub(crate) fn candidate<'a>(
    input: &Input<'a>,
    row: &Row<'a>,
    options: &ComputeOptions,
) -> Candidate<'a> {
    let mut candidate = Candidate {
        target_upn: text_of(row, Role::TargetUpn)
            .or_else(|| text_of(row, Role::Upn).map(|upn| map_upn(upn, &options.upn_suffixes))),
        ..Candidate::default()
    };
    let anchor = resolve_anchor(input, row, options.anchor_kind, options.source_anchor);
    if options.anchor_kind == AnchorKind::Guid {
        candidate.guid = object_guid(row, anchor.as_ref().ok().and_then(Option::as_ref));
    }
    match anchor {
        Ok(Some((role, parsed))) => {
            candidate.other_source = other_source(row, role, options.anchor_kind);
            candidate.immutable_id = Some(parsed.id);
            candidate.form = Some(parsed.form);
            candidate.anchor_role = Some(role);
        }
        Ok(None) if !options.anchor_optional => {
            candidate.verdict = Some(Verdict::new(
                Outcome::MissingField,
                format!(
                    "{}: no anchor: the row has no objectGUID, mS-DS-ConsistencyGuid or ImmutableId value",
                    input.place(row, None)
                ),
            ));
        }
        Ok(None) => {}
        Err(verdict) => candidate.verdict = Some(verdict),
    }
    if candidate.verdict.is_none() && !has_target(row) {
        candidate.verdict = Some(Verdict::new(
            Outcome::MissingField,
            format!(
                "{}: nothing to find the cloud user by: no UserPrincipalName, TargetUPN, mail or CloudObjectId value",
                input.place(row, None)
            ),
        ));
    }
    // A reader problem (not-a-user, a mangled cell) is the row's first and final word.
    if let Some(problem) = &row.problem {
        candidate.verdict = Some(problem.clone());
    }
    candidate
}

/// [`Row::value`] for as long as the file's text lives: borrowed when the row borrows the
/// value, copied when the reader had to decode it.
fn text_of<'a>(row: &Row<'a>, role: Role) -> Option<Cow<'a, str>> {
    let value = &row.get(role)?.value;
    if value.trim().is_empty() {
        return None;
    }
    Some(match value {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) => Cow::Owned(text.trim().to_string()),
    })
}

fn has_target(row: &Row) -> bool {
    [Role::Upn, Role::TargetUpn, Role::Mail, Role::CloudObjectId]
        .into_iter()
        .any(|role| row.value(role).is_some())
}

type Resolved = Option<(Role, anchor::Parsed)>;

/// The other GUID attribute's ImmutableId, when the anchor came from one of them and the row
/// has a usable value in the other (an unusable one is no error: it is not the anchor).
fn other_source(row: &Row, anchor_role: Role, kind: AnchorKind) -> Option<(Role, ImmutableId)> {
    let other = match anchor_role {
        Role::ConsistencyGuid => Role::ObjectGuid,
        Role::ObjectGuid => Role::ConsistencyGuid,
        _ => return None,
    };
    let value = row.get(other).filter(|f| !f.value.trim().is_empty())?;
    let parsed = anchor::parse(&value.value, kind).ok()?;
    Some((other, parsed.id))
}

/// Picks the row's anchor. With the ConsistencyGuid rule (`--source-anchor auto` and
/// `consistency-guid`), mS-DS-ConsistencyGuid wins over objectGUID when it has a value
/// (after an inter-forest move it holds the old forest's objectGUID, which the cloud user
/// already knows), and an unusable ConsistencyGuid is an error, never a silent fallback.
/// With `object-guid`, objectGUID alone, as that sync presents it.
/// An ImmutableId column is the anchor when there is no GUID, and must agree when there is.
fn resolve_anchor(
    input: &Input,
    row: &Row,
    kind: AnchorKind,
    source: SourceAnchor,
) -> Result<Resolved, Verdict> {
    let parse_role = |role: Role, kind: AnchorKind| -> Result<Resolved, Verdict> {
        let Some(field) = row.get(role).filter(|f| !f.value.trim().is_empty()) else {
            return Ok(None);
        };
        anchor::parse(&field.value, kind)
            .map(|parsed| Some((role, parsed)))
            .map_err(|e| invalid(input, row, role, e))
    };
    if kind == AnchorKind::String {
        return parse_role(Role::ImmutableId, kind);
    }
    let guid_anchor = match source {
        SourceAnchor::ObjectGuid => match parse_role(Role::ObjectGuid, kind)? {
            Some(found) => Some(found),
            None if row.value(Role::ConsistencyGuid).is_some() => {
                return Err(Verdict::new(
                    Outcome::MissingField,
                    format!(
                        "{}: the tenant's sync takes its anchor from objectGUID, and the row has only an mS-DS-ConsistencyGuid; export objectGUID too",
                        input.place(row, None)
                    ),
                ))
            }
            None => None,
        },
        SourceAnchor::Auto | SourceAnchor::ConsistencyGuid => {
            match parse_role(Role::ConsistencyGuid, kind)? {
                Some(found) => Some(found),
                None => parse_role(Role::ObjectGuid, kind)?,
            }
        }
    };
    let listed = parse_role(Role::ImmutableId, kind)?;
    match (guid_anchor, listed) {
        (Some((role, from_guid)), Some((_, listed))) if from_guid.id != listed.id => {
            Err(Verdict::new(
                Outcome::InvalidAnchor,
                format!(
                    "{}: the export's ImmutableId {} disagrees with the {} column, whose ImmutableId is {}; check how the ImmutableId column was computed",
                    input.place(row, Some(Role::ImmutableId)),
                    listed.id,
                    input.header(role).unwrap_or("GUID"),
                    from_guid.id
                ),
            ))
        }
        (Some(found), _) => Ok(Some(found)),
        (None, listed) => Ok(listed),
    }
}

/// The row's objectGUID: the anchor's own GUID when objectGUID gave it (no second parse for
/// the common case), else the objectGUID column's, when it has a usable one.
fn object_guid(row: &Row, resolved: Option<&(Role, anchor::Parsed)>) -> Option<Uuid> {
    match resolved {
        Some((Role::ObjectGuid, parsed)) => parsed.id.guid(),
        _ => anchor::parse(row.value(Role::ObjectGuid)?, AnchorKind::Guid)
            .ok()?
            .id
            .guid(),
    }
}

/// Which attribute gave a row's ImmutableId, for the report's `anchor_source` column: the AD
/// attribute's name for the GUID columns, the header as written for an ImmutableId column.
pub(crate) fn anchor_source<'i>(input: &'i Input, role: Role) -> &'i str {
    match role {
        Role::ObjectGuid => "objectGUID",
        Role::ConsistencyGuid => "mS-DS-ConsistencyGuid",
        other => input.header(other).unwrap_or(other.name()),
    }
}

fn invalid(input: &Input, row: &Row, role: Role, error: anchor::AnchorError) -> Verdict {
    Verdict::new(
        Outcome::InvalidAnchor,
        format!("{}: {error}", input.place(row, Some(role))),
    )
}

/// The two checks for rows that must not share a key, in the order they run: a row the first
/// flags takes no part in the second. One implementation for a whole [`Input`] in memory
/// ([`compute`]) and for an export computed a batch at a time (`crate::ids`), which keeps
/// only compact rows: the check sees rows through their index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DuplicateCheck {
    /// Two rows that would stamp the same ImmutableId.
    Anchor,
    /// Two rows that would stamp the same cloud user.
    Target,
}

impl DuplicateCheck {
    pub(crate) const ALL: [DuplicateCheck; 2] = [DuplicateCheck::Anchor, DuplicateCheck::Target];

    fn outcome(self) -> Outcome {
        match self {
            DuplicateCheck::Anchor => Outcome::DuplicateAnchorInInput,
            DuplicateCheck::Target => Outcome::DuplicateTargetInInput,
        }
    }

    fn what(self) -> &'static str {
        match self {
            DuplicateCheck::Anchor => "ImmutableId",
            DuplicateCheck::Target => "target UPN",
        }
    }

    /// A candidate's key for this check, if it has one.
    pub(crate) fn key_of<'c>(self, candidate: &'c Candidate<'_>) -> Option<Key<'c>> {
        match self {
            DuplicateCheck::Anchor => candidate
                .immutable_id
                .as_ref()
                .map(|id| self.key(id.as_str())),
            DuplicateCheck::Target => candidate.target_upn.as_deref().map(|upn| self.key(upn)),
        }
    }

    /// The key of a value: ImmutableIds compare exactly, UPNs without regard to case.
    pub(crate) fn key(self, text: &str) -> Key<'_> {
        match self {
            DuplicateCheck::Anchor => Key::Exact(text),
            DuplicateCheck::Target => Key::Caseless(text),
        }
    }

    /// The verdict of every open row (of `count`) whose key another open row shares, naming
    /// the other rows' lines; `location(i)` is row `i`'s place in `input`'s file.
    ///
    /// Keys are hashed and the hashes sorted, both in parallel; only rows whose hash repeats
    /// are then grouped by their real key. A million scattered strings are read once, by both
    /// cores, instead of being chased through a hash map on one. Each hash is sorted with its
    /// row in one `u64` ([`Tagged`]): half the bytes to sort of a `(u64, usize)` pair.
    pub(crate) fn find<'k>(
        self,
        input: &Input,
        count: usize,
        open: impl Fn(usize) -> bool + Sync,
        key: impl Fn(usize) -> Option<Key<'k>> + Sync,
        location: impl Fn(usize) -> Option<Location>,
    ) -> Vec<(usize, Verdict)> {
        let tagged = Tagged::for_rows(count);
        let mut hashes: Vec<u64> = (0..count)
            .into_par_iter()
            .filter(|&i| open(i))
            .filter_map(|i| key(i).map(|k| tagged.tag(hash_of(&k), i)))
            .collect();
        hashes.par_sort_unstable();
        let mut groups: HashMap<Key<'k>, Vec<usize>> = HashMap::default();
        for run in hashes
            .chunk_by(|&a, &b| tagged.hash(a) == tagged.hash(b))
            .filter(|run| run.len() > 1)
        {
            for i in run.iter().map(|&t| tagged.row(t)) {
                groups
                    .entry(key(i).expect("hashed above"))
                    .or_default()
                    .push(i);
            }
        }
        let line_of = |i: usize| {
            location(i).map_or_else(|| format!("row {}", i + 1), |l| l.line().to_string())
        };
        let mut found = Vec::new();
        for (shown, rows) in groups.into_iter().filter(|(_, rows)| rows.len() > 1) {
            for &i in &rows {
                let others: Vec<String> = rows
                    .iter()
                    .filter(|&&j| j != i)
                    .take(10)
                    .map(|&j| line_of(j))
                    .collect();
                let more = rows.len().saturating_sub(11);
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                let detail = format!(
                    "{}: the {} {} is also on line {}{tail}; keep one row per user",
                    input.place_at(location(i)),
                    self.what(),
                    shown.text(),
                    others.join(", ")
                );
                found.push((i, Verdict::new(self.outcome(), detail)));
            }
        }
        found
    }
}

/// A duplicate-detection key borrowed from a row's values: ImmutableIds compare exactly (they
/// are case-sensitive), UPNs without regard to case. Borrowing keeps a million-row input from
/// allocating a million keys.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Key<'a> {
    Exact(&'a str),
    Caseless(&'a str),
}

impl Key<'_> {
    fn text(&self) -> &str {
        match self {
            Key::Exact(t) | Key::Caseless(t) => t,
        }
    }
}

/// UPNs compare as the planner compares them ([`crate::tenant::caseless`]).
fn folded(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().map(crate::tenant::fold)
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Key::Exact(a), Key::Exact(b)) => a == b,
            (Key::Caseless(a), Key::Caseless(b)) if a.is_ascii() && b.is_ascii() => {
                a.eq_ignore_ascii_case(b)
            }
            (Key::Caseless(a), Key::Caseless(b)) => folded(a).eq(folded(b)),
            _ => false,
        }
    }
}

impl Eq for Key<'_> {}

impl std::hash::Hash for Key<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Key::Exact(t) => state.write(t.as_bytes()),
            Key::Caseless(t) if t.is_ascii() => write_lowercase(t.as_bytes(), state),
            // Rare: fold first, then hash the same way, so equal keys hash equal.
            Key::Caseless(t) => write_lowercase(folded(t).collect::<String>().as_bytes(), state),
        }
    }
}

/// A key's hash and its row in one `u64`: the hash's top bits, then the row in the low
/// `row_bits`. Rows whose kept bits agree are grouped by their real key afterwards, so a
/// hash cut short costs at most a few extra comparisons, never a wrong verdict (a million
/// rows keep 44 bits: about one such pair in thirty runs).
#[derive(Clone, Copy)]
struct Tagged {
    row_bits: u32,
}

impl Tagged {
    fn for_rows(count: usize) -> Tagged {
        Tagged {
            row_bits: usize::BITS - count.leading_zeros(),
        }
    }

    fn tag(self, hash: u64, row: usize) -> u64 {
        (hash & !self.row_mask()) | row as u64
    }

    /// The kept bits of a hash, or of a tagged hash (the same either way).
    fn hash(self, tagged: u64) -> u64 {
        tagged.checked_shr(self.row_bits).unwrap_or(0)
    }

    fn row(self, tagged: u64) -> usize {
        (tagged & self.row_mask()) as usize
    }

    fn row_mask(self) -> u64 {
        1u64.checked_shl(self.row_bits)
            .map_or(u64::MAX, |bit| bit - 1)
    }
}

fn hash_of(key: &Key<'_>) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// ASCII-lowercases into a stack buffer, 64 bytes at a time: no allocation per key.
fn write_lowercase<H: std::hash::Hasher>(bytes: &[u8], state: &mut H) {
    let mut buffer = [0u8; 64];
    for chunk in bytes.chunks(buffer.len()) {
        let lower = &mut buffer[..chunk.len()];
        lower.copy_from_slice(chunk);
        lower.make_ascii_lowercase();
        state.write(lower);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::source::{Field, Format, Location};

    #[test]
    fn a_tagged_hash_keeps_its_row_and_its_hash_bits() {
        for (count, row) in [(1, 0), (1_000_000, 999_999), (1 << 40, (1 << 40) - 1)] {
            let tagged = Tagged::for_rows(count);
            let hash = 0xDEAD_BEEF_1234_5678;
            let tag = tagged.tag(hash, row);
            assert_eq!(tagged.row(tag), row);
            assert_eq!(tagged.hash(tag), tagged.hash(hash));
            assert_ne!(tagged.hash(tag), tagged.hash(hash ^ (1 << 63)));
        }
        // Rows sort by hash first: equal hashes end up side by side.
        let tagged = Tagged::for_rows(3);
        let mut tags = [
            tagged.tag(9 << 60, 0),
            tagged.tag(1 << 60, 1),
            tagged.tag(9 << 60, 2),
        ];
        tags.sort_unstable();
        assert_eq!(tags.map(|t| tagged.row(t)), [1, 0, 2]);
    }

    fn row<'a>(line: u64, cells: &[(Role, &'a str)]) -> Row<'a> {
        let mut row = Row::new(Location::Line(line));
        for (i, (role, value)) in cells.iter().enumerate() {
            row.set(
                *role,
                Field {
                    value: Cow::Borrowed(value),
                    column: i as u32,
                },
            );
        }
        row
    }

    /// Every role's header is its name: `ConsistencyGuid`.
    fn input(rows: Vec<Row>) -> Input {
        Input {
            name: "users.csv".into(),
            format: Format::Csv,
            headers: vec![],
            columns: Role::ALL
                .map(|role| (role, Arc::from(format!("{role:?}"))))
                .to_vec(),
            rows,
            notes: Vec::new(),
        }
    }

    fn outcomes(candidates: &[Candidate]) -> Vec<Option<Outcome>> {
        candidates
            .iter()
            .map(|c| c.verdict.as_ref().map(|v| v.outcome))
            .collect()
    }

    const ALICE: &str = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38";
    const BOB: &str = "3ab39606-c642-489b-84b6-58c038d3ef39";

    #[test]
    fn consistency_guid_wins_and_a_lost_one_is_an_error() {
        let input = input(vec![
            row(
                2,
                &[
                    (Role::Upn, "a@x.com"),
                    (Role::ObjectGuid, ALICE),
                    (Role::ConsistencyGuid, BOB),
                ],
            ),
            row(
                3,
                &[
                    (Role::Upn, "b@x.com"),
                    (Role::ObjectGuid, ALICE),
                    (Role::ConsistencyGuid, "System.Byte[]"),
                ],
            ),
        ]);
        let out = compute(&input, &ComputeOptions::default());
        assert_eq!(
            out[0].immutable_id.as_ref().unwrap().as_str(),
            "BpazOkLGm0iEtljAONPvOQ=="
        );
        assert_eq!(out[0].anchor_role, Some(Role::ConsistencyGuid));
        assert_eq!(
            out[0].guid.map(|g| g.to_string()).as_deref(),
            Some(ALICE),
            "the objectGUID, not the mS-DS-ConsistencyGuid that gave the anchor"
        );
        assert_eq!(
            anchor_source(&input, Role::ConsistencyGuid),
            "mS-DS-ConsistencyGuid"
        );
        assert_eq!(anchor_source(&input, Role::ImmutableId), "ImmutableId");
        let verdict = out[1].verdict.as_ref().unwrap();
        assert_eq!(verdict.outcome, Outcome::InvalidAnchor);
        assert!(
            verdict
                .detail
                .starts_with("users.csv:3 column ConsistencyGuid: the export lost the value"),
            "{}",
            verdict.detail
        );
    }

    #[test]
    fn missing_fields_and_disagreeing_immutable_id() {
        let input = input(vec![
            row(2, &[(Role::Upn, "a@x.com")]),
            row(3, &[(Role::ObjectGuid, ALICE)]),
            row(
                4,
                &[
                    (Role::Upn, "c@x.com"),
                    (Role::ObjectGuid, ALICE),
                    (Role::ImmutableId, "BpazOkLGm0iEtljAONPvOQ=="),
                ],
            ),
            row(
                5,
                &[
                    (Role::Upn, "d@x.com"),
                    (Role::ImmutableId, "BpazOkLGm0iEtljAONPvOQ=="),
                ],
            ),
        ]);
        let out = compute(&input, &ComputeOptions::default());
        assert_eq!(
            outcomes(&out),
            [
                Some(Outcome::MissingField),
                Some(Outcome::MissingField),
                Some(Outcome::InvalidAnchor),
                None
            ]
        );
    }

    #[test]
    fn duplicates_name_the_other_lines() {
        let input = input(vec![
            row(2, &[(Role::Upn, "a@x.com"), (Role::ObjectGuid, ALICE)]),
            row(3, &[(Role::Upn, "b@x.com"), (Role::ObjectGuid, ALICE)]),
            row(4, &[(Role::Upn, "C@x.com"), (Role::ObjectGuid, BOB)]),
            row(
                5,
                &[
                    (Role::TargetUpn, "c@X.com"),
                    (Role::ObjectGuid, "8c4ac332-975f-4717-ad7b-ba4a4e968fff"),
                ],
            ),
        ]);
        let out = compute(&input, &ComputeOptions::default());
        use Outcome::*;
        assert_eq!(
            outcomes(&out),
            [
                Some(DuplicateAnchorInInput),
                Some(DuplicateAnchorInInput),
                Some(DuplicateTargetInInput),
                Some(DuplicateTargetInInput)
            ]
        );
        assert!(out[0]
            .verdict
            .as_ref()
            .unwrap()
            .detail
            .contains("also on line 3"));
        assert!(out[3]
            .verdict
            .as_ref()
            .unwrap()
            .detail
            .contains("also on line 4"));
    }

    #[test]
    fn upn_suffix_mapping() {
        let map = vec![("contoso.local".to_string(), "contoso.com".to_string())];
        assert_eq!(
            map_upn("Alice@Contoso.Local".into(), &map),
            "Alice@contoso.com"
        );
        assert_eq!(
            map_upn("bob@sub.contoso.local".into(), &map),
            "bob@sub.contoso.local"
        );
        let input = input(vec![row(
            2,
            &[(Role::Upn, "a@contoso.local"), (Role::ObjectGuid, ALICE)],
        )]);
        let out = compute(
            &input,
            &ComputeOptions {
                upn_suffixes: map,
                ..Default::default()
            },
        );
        assert_eq!(out[0].target_upn.as_deref(), Some("a@contoso.com"));
    }
}
