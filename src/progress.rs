//! Progress on stderr, only when stderr is a terminal (indicatif draws nothing otherwise), so
//! logs and CI output stay clean.
//!
//! Every visible bar belongs to one [`MultiProgress`], so that `-v` log lines can be printed
//! between redraws ([`suspend`]) instead of tearing through a bar.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

fn visible(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// The bars on screen. Created on first use, drawing to stderr.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Runs `f` (which writes to stderr) with the bars cleared, and redraws them after.
pub(crate) fn suspend<R>(f: impl FnOnce() -> R) -> R {
    bars().suspend(f)
}

/// A spinner with a message, for reads of unknown length.
pub(crate) fn spinner(message: &str) -> ProgressBar {
    let bar = if visible(false) {
        bars().add(ProgressBar::new_spinner())
    } else {
        ProgressBar::hidden()
    };
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar for the writer: write requests done (a federated hop is three, a purge and stamp
/// two), requests per second, ETA, and the throttled count in the message.
pub(crate) fn rows(len: u64, quiet: bool) -> ProgressBar {
    if !visible(quiet) {
        return ProgressBar::hidden();
    }
    let bar = bars().add(ProgressBar::new(len));
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} writes  {per_sec}  ETA {eta}  {msg}")
            .expect("a valid template"),
    );
    bar
}
