//! One test binary for the whole crate (ripgrep's habit): each module drives the real
//! `hardmatch` binary, and the emulator over real HTTP on 127.0.0.1.

mod apply;
mod convert;
mod emulator;
mod hostile_input;
mod ids;
mod security;
mod sign_in;
mod snapshot;
mod util;
mod writer;
