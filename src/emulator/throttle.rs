//! Graph's identity-and-access throttling model (docs/graph.md, "Throttling"): token buckets
//! for resource units per app and tenant (sized by tenant), writes per app and tenant, and
//! writes per tenant across apps; the documented request costs; and the rule that a request
//! sent before its Retry-After has passed is throttled again.
//!
//! Time is the emulator's [`Clock`], which can run faster than the wall clock; every number
//! here is in emulated seconds, and only the Retry-After header is converted back.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The emulator's clock: wall time since start, times the time scale. tokio's Instant, so that
/// tests can pause and advance it.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    start: tokio::time::Instant,
    scale: f64,
}

impl Clock {
    pub(crate) fn new(scale: f64) -> Clock {
        Clock {
            start: tokio::time::Instant::now(),
            scale: scale.max(1e-6),
        }
    }

    /// Emulated seconds since start.
    pub(crate) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.scale
    }

    pub(crate) fn scale(&self) -> f64 {
        self.scale
    }

    /// Emulated seconds as real seconds (what a client must wait).
    pub(crate) fn to_real(&self, emulated: f64) -> f64 {
        emulated / self.scale
    }
}

/// Every quota, changeable (`hardmatch emulator --ru-per-10s ...`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Quotas {
    /// Resource units per 10 s per app and tenant; `None` sizes it by the tenant's users
    /// (S <50: 3,500, M 50-500: 5,000, L >500: 8,000).
    pub resource_units_per_10s: Option<f64>,
    /// Writes per 150 s per app and tenant (3,000).
    pub app_writes_per_150s: f64,
    /// How many of those writes may come at once: the app's write bucket. `None` is the
    /// whole window (Graph's token bucket); a smaller bucket holds a run to the rate from
    /// the start, as a bucket that Entra Connect or an earlier run has drained does.
    #[serde(default)]
    pub app_write_burst: Option<f64>,
    /// Writes per 5 min per tenant, all apps together (18,000).
    pub tenant_writes_per_5min: f64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            resource_units_per_10s: None,
            app_writes_per_150s: 3000.0,
            app_write_burst: None,
            tenant_writes_per_5min: 18000.0,
        }
    }
}

/// The resource-unit budget Graph gives a tenant of this many users.
pub(crate) fn resource_units_for(users: usize) -> f64 {
    match users {
        0..50 => 3500.0,
        50..=500 => 5000.0,
        _ => 8000.0,
    }
}

/// A token bucket: `capacity` tokens, refilled evenly over `window` seconds.
#[derive(Clone, Debug)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: f64,
}

impl Bucket {
    fn new(capacity: f64, window: f64) -> Bucket {
        Bucket::holding(capacity, capacity / window)
    }

    /// A bucket of `capacity` tokens refilled at `per_second`.
    fn holding(capacity: f64, per_second: f64) -> Bucket {
        Bucket {
            capacity,
            per_second,
            tokens: capacity,
            last: 0.0,
        }
    }

    fn refill(&mut self, now: f64) {
        self.tokens = (self.tokens + (now - self.last) * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Seconds until `n` tokens are there (0 when they are now).
    fn wait_for(&mut self, now: f64, n: f64) -> f64 {
        self.refill(now);
        if self.tokens >= n {
            0.0
        } else {
            (n - self.tokens) / self.per_second
        }
    }

    fn used_fraction(&self) -> f64 {
        1.0 - self.tokens / self.capacity
    }
}

/// What the throttle decided about one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    Allowed {
        resource_units: u32,
        /// `x-ms-throttle-limit-percentage`, sent only above 80% use.
        limit_percentage: Option<f64>,
    },
    Throttled {
        /// Emulated seconds to wait.
        retry_after: f64,
        scope: String,
        information: &'static str,
    },
}

/// The buckets of one emulated tenant.
#[derive(Debug)]
pub(crate) struct Throttle {
    quotas: Quotas,
    tenant_id: String,
    resource_units: HashMap<String, Bucket>,
    app_writes: HashMap<String, Bucket>,
    tenant_writes: Bucket,
    /// Per app and scope, the emulated time before which every request is throttled again.
    blocked_until: HashMap<(String, &'static str), f64>,
    ru_capacity: f64,
}

impl Throttle {
    pub(crate) fn new(quotas: Quotas, tenant_id: &str, users: usize) -> Throttle {
        let ru_capacity = quotas
            .resource_units_per_10s
            .unwrap_or_else(|| resource_units_for(users));
        Throttle {
            tenant_writes: Bucket::new(quotas.tenant_writes_per_5min, 300.0),
            quotas,
            tenant_id: tenant_id.to_string(),
            resource_units: HashMap::new(),
            app_writes: HashMap::new(),
            blocked_until: HashMap::new(),
            ru_capacity,
        }
    }

    /// Charges a request of `cost` resource units (and one write if `write`) to `app`.
    pub(crate) fn charge(&mut self, now: f64, app: &str, cost: u32, write: bool) -> Decision {
        if write {
            if let Some(d) = self.blocked(now, app, "Write") {
                return d;
            }
        }
        if let Some(d) = self.blocked(now, app, "ResourceUnit") {
            return d;
        }
        let ru_capacity = self.ru_capacity;
        let ru = self
            .resource_units
            .entry(app.to_string())
            .or_insert_with(|| Bucket::new(ru_capacity, 10.0));
        let ru_wait = ru.wait_for(now, f64::from(cost));
        if ru_wait > 0.0 {
            return self.block(
                now,
                app,
                "ResourceUnit",
                ru_wait,
                "ResourceUnitLimitExceeded",
            );
        }
        if write {
            let per_app = self.quotas.app_writes_per_150s;
            let burst = self.quotas.app_write_burst.unwrap_or(per_app);
            let writes = self
                .app_writes
                .entry(app.to_string())
                .or_insert_with(|| Bucket::holding(burst, per_app / 150.0));
            let write_wait = writes
                .wait_for(now, 1.0)
                .max(self.tenant_writes.wait_for(now, 1.0));
            if write_wait > 0.0 {
                return self.block(now, app, "Write", write_wait, "WriteLimitExceeded");
            }
            writes.tokens -= 1.0;
            self.tenant_writes.tokens -= 1.0;
        }
        let ru = self.resource_units.get_mut(app).expect("inserted above");
        ru.tokens -= f64::from(cost);
        let used = ru.used_fraction();
        Decision::Allowed {
            resource_units: cost,
            limit_percentage: (used > 0.8).then_some(used),
        }
    }

    fn blocked(&self, now: f64, app: &str, scope: &'static str) -> Option<Decision> {
        let until = *self.blocked_until.get(&(app.to_string(), scope))?;
        (now < until).then(|| Decision::Throttled {
            retry_after: until - now,
            scope: self.scope(app, scope),
            information: if scope == "Write" {
                "WriteLimitExceeded"
            } else {
                "ResourceUnitLimitExceeded"
            },
        })
    }

    fn block(
        &mut self,
        now: f64,
        app: &str,
        scope: &'static str,
        wait: f64,
        information: &'static str,
    ) -> Decision {
        self.blocked_until
            .insert((app.to_string(), scope), now + wait);
        Decision::Throttled {
            retry_after: wait,
            scope: self.scope(app, scope),
            information,
        }
    }

    fn scope(&self, app: &str, scope: &str) -> String {
        format!("Tenant_Application/{scope}/{app}/{}", self.tenant_id)
    }
}

/// The documented cost of a request in resource units (docs/graph.md): a list of users 2, any
/// other GET 1, a write 1 (plus the write itself); `$select` -1, `$expand` +1, `$top` under 20
/// -1; never below 1.
pub(crate) fn cost(
    method: &str,
    is_list: bool,
    select: bool,
    expand: bool,
    top: Option<u32>,
) -> u32 {
    let base: i32 = if method == "GET" && is_list { 2 } else { 1 };
    let adjusted =
        base - i32::from(select) + i32::from(expand) - i32::from(top.is_some_and(|t| t < 20));
    adjusted.max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_costs() {
        assert_eq!(cost("GET", true, false, false, None), 2);
        assert_eq!(cost("GET", true, true, false, Some(999)), 1);
        assert_eq!(cost("GET", false, true, false, None), 1, "never below 1");
        assert_eq!(cost("PATCH", false, false, false, None), 1);
        assert_eq!(cost("GET", true, false, true, Some(5)), 2);
    }

    #[test]
    fn write_quota_arithmetic() {
        let quotas = Quotas {
            app_writes_per_150s: 30.0,
            ..Quotas::default()
        };
        let mut throttle = Throttle::new(quotas, "t", 10);
        for _ in 0..30 {
            assert!(matches!(
                throttle.charge(0.0, "app", 1, true),
                Decision::Allowed { .. }
            ));
        }
        let Decision::Throttled {
            retry_after,
            scope,
            information,
        } = throttle.charge(0.0, "app", 1, true)
        else {
            panic!("the 31st write in the window is throttled");
        };
        // 30 per 150 s refills one write every 5 s.
        assert!((retry_after - 5.0).abs() < 1e-9, "{retry_after}");
        assert_eq!(
            (scope.as_str(), information),
            ("Tenant_Application/Write/app/t", "WriteLimitExceeded")
        );
        // Early retries are throttled again, with what is left of the wait.
        let Decision::Throttled { retry_after, .. } = throttle.charge(2.0, "app", 1, true) else {
            panic!()
        };
        assert!((retry_after - 3.0).abs() < 1e-9);
        assert!(matches!(
            throttle.charge(5.0, "app", 1, true),
            Decision::Allowed { .. }
        ));
        // Another app has its own write bucket.
        assert!(matches!(
            throttle.charge(5.0, "other", 1, true),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn resource_units_by_tenant_size_and_limit_percentage() {
        assert_eq!(resource_units_for(49), 3500.0);
        assert_eq!(resource_units_for(500), 5000.0);
        assert_eq!(resource_units_for(501), 8000.0);
        let mut throttle = Throttle::new(
            Quotas {
                resource_units_per_10s: Some(10.0),
                ..Quotas::default()
            },
            "t",
            10,
        );
        for expected in [None, None, None, None, Some(1.0)] {
            let Decision::Allowed {
                limit_percentage, ..
            } = throttle.charge(0.0, "a", 2, false)
            else {
                panic!()
            };
            assert_eq!(
                limit_percentage.map(|p| (p * 10.0).round() / 10.0),
                expected
            );
        }
        assert!(matches!(
            throttle.charge(0.0, "a", 1, false),
            Decision::Throttled {
                information: "ResourceUnitLimitExceeded",
                ..
            }
        ));
    }

    #[test]
    fn a_small_write_bucket_holds_writes_to_the_rate_from_the_start() {
        let quotas = Quotas {
            app_writes_per_150s: 3000.0,
            app_write_burst: Some(2.0),
            ..Quotas::default()
        };
        let mut throttle = Throttle::new(quotas, "t", 10);
        for _ in 0..2 {
            assert!(matches!(
                throttle.charge(0.0, "app", 1, true),
                Decision::Allowed { .. }
            ));
        }
        let Decision::Throttled { retry_after, .. } = throttle.charge(0.0, "app", 1, true) else {
            panic!("a third write at once overflows a bucket of two");
        };
        // Still 20 writes a second: one every 50 ms.
        assert!((retry_after - 0.05).abs() < 1e-9, "{retry_after}");
    }

    #[test]
    fn the_tenant_write_quota_spans_apps() {
        let quotas = Quotas {
            app_writes_per_150s: 100.0,
            tenant_writes_per_5min: 4.0,
            ..Quotas::default()
        };
        let mut throttle = Throttle::new(quotas, "t", 10);
        for app in ["a", "b", "a", "b"] {
            assert!(matches!(
                throttle.charge(0.0, app, 1, true),
                Decision::Allowed { .. }
            ));
        }
        let Decision::Throttled {
            retry_after,
            information,
            ..
        } = throttle.charge(0.0, "c", 1, true)
        else {
            panic!("a fifth write from a third app exceeds the tenant's quota");
        };
        // 4 per 300 s: one every 75 s.
        assert!((retry_after - 75.0).abs() < 1e-9, "{retry_after}");
        assert_eq!(information, "WriteLimitExceeded");
    }
}
