//! The read lag (`--read-lag-ms`): Graph gives no read-after-write guarantee (docs/graph.md),
//! so a read right after a write, or a write right after a purge, can see the state before
//! it. The emulator models that as reads that see each user as it was a fixed window ago:
//! a user's states before its recent writes, and the deleted users purged within the window.
//!
//! Time is the emulator's clock, in emulated seconds; with a window of 0 (the default) every
//! read sees the tenant as it is.

use std::collections::{HashMap, VecDeque};

use crate::tenant::{caseless, User};

/// What reads still see of recent writes and purges.
#[derive(Debug, Default)]
pub(crate) struct Lag {
    /// How long, in emulated seconds, a read sees the state before a write.
    window: f64,
    /// Per user (by caseless id): when each recent write came, and the user before it, oldest
    /// first.
    before_writes: HashMap<String, VecDeque<(f64, User)>>,
    /// Deleted users purged recently, and when.
    purged: VecDeque<(f64, User)>,
}

impl Lag {
    pub(crate) fn new(window_ms: u64) -> Lag {
        Lag {
            window: window_ms as f64 / 1000.0,
            ..Lag::default()
        }
    }

    /// Remembers `before`, the user as it was when a write came at `now`.
    pub(crate) fn written(&mut self, now: f64, before: &User) {
        if self.window <= 0.0 {
            return;
        }
        self.forget_older_than(now);
        self.before_writes
            .entry(caseless(&before.id))
            .or_default()
            .push_back((now, before.clone()));
    }

    /// Remembers a deleted user purged at `now`.
    pub(crate) fn purged(&mut self, now: f64, user: User) {
        if self.window <= 0.0 {
            return;
        }
        self.forget_older_than(now);
        self.purged.push_back((now, user));
    }

    /// `current` as a read at `now` sees it: as it was before the first write within the
    /// window, else as it is.
    pub(crate) fn seen<'a>(&'a self, now: f64, current: &'a User) -> &'a User {
        if self.before_writes.is_empty() {
            return current;
        }
        self.before_writes
            .get(&caseless(&current.id))
            .and_then(|writes| writes.iter().find(|(at, _)| self.within(now, *at)))
            .map_or(current, |(_, before)| before)
    }

    /// The deleted users purged within the window: reads still list them, and they still
    /// reserve their anchors.
    pub(crate) fn recently_purged(&self, now: f64) -> impl Iterator<Item = &User> {
        self.purged
            .iter()
            .filter(move |(at, _)| self.within(now, *at))
            .map(|(_, user)| user)
    }

    fn within(&self, now: f64, at: f64) -> bool {
        now - at < self.window
    }

    fn forget_older_than(&mut self, now: f64) {
        let window = self.window;
        self.purged.retain(|(at, _)| now - at < window);
        self.before_writes.retain(|_, writes| {
            writes.retain(|(at, _)| now - at < window);
            !writes.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(anchor: &str) -> User {
        User {
            id: "u1".into(),
            user_principal_name: "a@contoso.com".into(),
            on_premises_immutable_id: Some(anchor.into()),
            ..User::default()
        }
    }

    #[test]
    fn a_read_sees_the_user_as_it_was_a_window_ago() {
        let mut lag = Lag::new(2000);
        let now = user("C");
        lag.written(10.0, &user("A"));
        lag.written(11.0, &user("B"));
        let seen = |at: f64| lag.seen(at, &now).on_premises_immutable_id.clone();
        assert_eq!(seen(11.5).as_deref(), Some("A"), "before both writes");
        assert_eq!(seen(12.5).as_deref(), Some("B"), "the first write is older");
        assert_eq!(seen(13.5).as_deref(), Some("C"), "both are older");
    }

    #[test]
    fn a_purged_user_is_seen_for_the_window_only() {
        let mut lag = Lag::new(1000);
        lag.purged(5.0, user("A"));
        assert_eq!(lag.recently_purged(5.9).count(), 1);
        assert_eq!(lag.recently_purged(6.0).count(), 0);
    }

    #[test]
    fn without_a_window_nothing_is_remembered() {
        let mut lag = Lag::default();
        lag.written(1.0, &user("A"));
        lag.purged(1.0, user("A"));
        assert_eq!(
            lag.seen(1.0, &user("B"))
                .on_premises_immutable_id
                .as_deref(),
            Some("B")
        );
        assert_eq!(lag.recently_purged(1.0).count(), 0);
    }
}
