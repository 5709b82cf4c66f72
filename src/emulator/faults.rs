//! Seeded, reproducible faults (`--faults`): 5xx answers, connections reset mid-response,
//! slow responses, tokens expiring early, and 429s below the limits (which Graph sends when
//! the service is loaded).
//!
//! Syntax: comma-separated `KIND=RATE`, e.g. `503=0.05,reset=0.02,slow=0.01,429=0.01,seed=7`.
//! Kinds: `500`, `503`, `504`, `reset`, `slow` (adds `slow-ms`, default 5000 emulated ms),
//! `429`, `expire` (every issued token expires), and `seed`.

use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub(crate) statuses: Vec<(u16, f64)>,
    pub(crate) reset: f64,
    pub(crate) slow: f64,
    pub(crate) slow_ms: u64,
    pub(crate) throttle: f64,
    pub(crate) expire: f64,
    pub(crate) seed: u64,
}

/// One injected fault.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fault {
    Status(u16),
    Reset,
    Slow(u64),
    Throttle,
    ExpireToken,
}

impl FromStr for Faults {
    type Err = String;

    fn from_str(spec: &str) -> Result<Faults, String> {
        let mut faults = Faults {
            slow_ms: 5000,
            ..Faults::default()
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected KIND=RATE"))?;
            let rate = || -> Result<f64, String> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{part:?}: the rate must be between 0 and 1"))
            };
            match kind {
                "500" | "503" | "504" => faults.statuses.push((kind.parse().expect("digits"), rate()?)),
                "reset" => faults.reset = rate()?,
                "slow" => faults.slow = rate()?,
                "slow-ms" => faults.slow_ms = value.parse().map_err(|_| format!("{part:?}: milliseconds"))?,
                "429" => faults.throttle = rate()?,
                "expire" => faults.expire = rate()?,
                "seed" => faults.seed = value.parse().map_err(|_| format!("{part:?}: a number"))?,
                _ => return Err(format!("unknown fault kind {kind:?}: use 500, 503, 504, reset, slow, slow-ms, 429, expire, seed")),
            }
        }
        Ok(faults)
    }
}

impl Faults {
    pub(crate) fn dice(&self) -> Dice {
        Dice {
            faults: self.clone(),
            rng: SmallRng::seed_from_u64(self.seed),
        }
    }
}

/// The seeded random source behind the faults and the latency model.
#[derive(Debug)]
pub(crate) struct Dice {
    faults: Faults,
    rng: SmallRng,
}

impl Dice {
    /// At most one fault for a request, each kind with its own rate.
    pub(crate) fn roll(&mut self) -> Option<Fault> {
        let mut candidates: Vec<(f64, Fault)> = self
            .faults
            .statuses
            .iter()
            .map(|(status, rate)| (*rate, Fault::Status(*status)))
            .collect();
        candidates.push((self.faults.reset, Fault::Reset));
        candidates.push((self.faults.slow, Fault::Slow(self.faults.slow_ms)));
        candidates.push((self.faults.throttle, Fault::Throttle));
        candidates.push((self.faults.expire, Fault::ExpireToken));
        let roll: f64 = self.rng.random();
        let mut edge = 0.0;
        for (rate, fault) in candidates {
            edge += rate;
            if roll < edge {
                return Some(fault);
            }
        }
        None
    }

    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        self.rng.random_range(low..=high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rolls_reproducibly() {
        let faults: Faults = "503=0.5,reset=0.25,seed=9".parse().unwrap();
        assert_eq!(faults.statuses, [(503, 0.5)]);
        let rolls = |n| {
            let mut dice = faults.dice();
            (0..n).map(|_| dice.roll()).collect::<Vec<_>>()
        };
        assert_eq!(
            rolls(200),
            rolls(200),
            "the same seed gives the same faults"
        );
        let all = rolls(2000);
        let resets = all.iter().filter(|f| **f == Some(Fault::Reset)).count();
        assert!((400..600).contains(&resets), "{resets}");
        assert!("503=2".parse::<Faults>().is_err());
        assert!("boom=0.1".parse::<Faults>().is_err());
    }
}
