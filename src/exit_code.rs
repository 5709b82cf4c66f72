//! The exit codes, as a type: every command returns one, and [`ExitCode::code`] is the one
//! place that maps them to the numbers scripts test for (README "Exit codes").
//!
//! Per-row problems never stop a run: they set [`ExitCode::NeedsAttention`]. Only what stops a
//! whole command is [`ExitCode::Failure`], which `main` picks when a command returns an error.

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: every row succeeded or needed nothing (or the reader of stdout closed the pipe).
    Success,
    /// 1: the command ran to the end, and some rows need attention (see the report).
    NeedsAttention,
    /// 2: the command could not start, or something stopped the whole run.
    Failure,
    /// 130 (128 + SIGINT): stopped by Ctrl-C; the writes in flight finished and the report
    /// has every row.
    Interrupted,
    /// 143 (128 + SIGTERM): stopped by SIGTERM (systemd, `timeout`, a container stopping),
    /// like [`ExitCode::Interrupted`] otherwise.
    Terminated,
}

impl ExitCode {
    /// The number the process exits with.
    pub(crate) fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::NeedsAttention => 1,
            ExitCode::Failure => 2,
            ExitCode::Interrupted => 130,
            ExitCode::Terminated => 143,
        }
    }

    /// [`ExitCode::Success`] when every row is fine, else [`ExitCode::NeedsAttention`].
    pub(crate) fn for_rows(all_fine: bool) -> ExitCode {
        if all_fine {
            ExitCode::Success
        } else {
            ExitCode::NeedsAttention
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_numbers() {
        let codes = [
            ExitCode::Success,
            ExitCode::NeedsAttention,
            ExitCode::Failure,
            ExitCode::Interrupted,
            ExitCode::Terminated,
        ]
        .map(ExitCode::code);
        assert_eq!(codes, [0, 1, 2, 130, 143]);
        assert_eq!(ExitCode::for_rows(true), ExitCode::Success);
        assert_eq!(ExitCode::for_rows(false), ExitCode::NeedsAttention);
    }
}
