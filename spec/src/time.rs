//! Time as the spec sees it: a monotonic millisecond count handed in by the driver.

use core::fmt;
use core::time::Duration;

/// A point on the driver's monotonic clock, in milliseconds since an arbitrary epoch.
///
/// The spec never reads a clock: every input carries the current `Millis`, and every
/// deadline the spec arms is a `Millis` on the same clock (SPEC §1.4).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Millis(pub u64);

impl Millis {
    /// The epoch.
    pub const ZERO: Self = Self(0);

    /// `self + d`, saturating at the end of time.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(ms(d)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Moves the point `delta` milliseconds towards the epoch, saturating at zero.
    ///
    /// Used by [`crate::State::shifted`]: the spec is invariant under time translation.
    #[must_use]
    pub fn minus_ms(self, delta: u64) -> Self {
        Self(self.0.saturating_sub(delta))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
