//! One test binary for the whole crate (ripgrep's habit): each module drives the real
//! `hardmatch` binary, and the emulator over real HTTP on 127.0.0.1.

mod apply;
mod convert;
mod diagnosis;
mod emulator;
mod errors;
mod exact_anchors;
mod federated;
mod hostile_input;
mod ids;
mod linked;
mod plan_file;
mod safety;
mod security;
mod sign_in;
mod small_print;
mod snapshot;
mod stale_reads;
mod sync_plan;
/// The test kit, shared with the benches.
#[path = "../kit/mod.rs"]
mod util;
mod verify;
mod workbook;
mod writer;
