//! The backoff function (SPEC §4): pure, told the attempt number and a random draw.

use core::time::Duration;

use crate::config::Profile;
use crate::time::ms;

/// A uniform random draw, handed in by the driver (the spec never draws OS randomness).
///
/// `Draw(0)` is the shortest possible delay, `Draw(u32::MAX)` the longest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Draw(pub u32);

impl Draw {
    /// The draw that yields the shortest delay.
    pub const MIN: Self = Self(0);
    /// The draw that yields the longest delay.
    pub const MAX: Self = Self(u32::MAX);

    /// `d * draw / u32::MAX`, exact in integer milliseconds.
    pub fn scale(self, d: Duration) -> Duration {
        let scaled = u128::from(ms(d)) * u128::from(self.0) / u128::from(u32::MAX);
        Duration::from_millis(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// A server-sent `retry-after`, already clamped to `Config::max_retry_after`, with the
/// jitter to add on top (G6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// The server's value.
    pub value: Duration,
    /// The most jitter added on top.
    pub jitter: Duration,
}

/// The ceiling of the jitter window for attempt `n`: `min(cap, floor + initial * 2^n)`.
pub fn ceiling(attempt: u32, profile: &Profile) -> Duration {
    let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
    let width = ms(profile.initial).saturating_mul(factor);
    Duration::from_millis(ms(profile.floor).saturating_add(width)).min(profile.cap)
}

/// The gate after round `round`: equal jitter, `c / 2 + draw * c / 2` with
/// `c = ceiling(round, recheck)`, so its lower bound doubles each round (SPEC §4.2).
pub fn recheck_delay(round: u32, recheck: &Profile, draw: Draw) -> Duration {
    let c = ceiling(round, recheck);
    let half = c / 2;
    half + draw.scale(c.saturating_sub(half))
}

/// The attempt number after which the ceiling no longer grows; counters saturate here.
pub fn saturation(profile: &Profile) -> u32 {
    (0..64)
        .find(|&n| ceiling(n, profile) >= profile.cap)
        .unwrap_or(63)
}

/// The delay before the next attempt.
///
/// Full jitter: `floor + draw * (ceiling(attempt) - floor)`. With a `retry-after`, the delay
/// is at least `retry_after.value + draw * retry_after.jitter` (G6).
///
/// Bounds (property-tested): `floor <= d <= cap` without retry-after; with it,
/// `value <= d <= max(cap, value + jitter)`.
pub fn backoff(
    attempt: u32,
    profile: &Profile,
    retry_after: Option<RetryAfter>,
    draw: Draw,
) -> Duration {
    let top = ceiling(attempt, profile);
    let exp = profile.floor + draw.scale(top.saturating_sub(profile.floor));
    match retry_after {
        Some(ra) => exp.max(ra.value + draw.scale(ra.jitter)),
        None => exp,
    }
}

/// [`backoff`] with a seeded mutant (SPEC §7.3); only with the `verification` feature.
#[cfg(feature = "verification")]
pub fn backoff_mutated(
    attempt: u32,
    profile: &Profile,
    retry_after: Option<RetryAfter>,
    draw: Draw,
    mutation: crate::mutation::Mutation,
) -> Duration {
    use crate::mutation::Mutation;
    let retry_after = retry_after.filter(|_| mutation != Mutation::IgnoreRetryAfter);
    if mutation == Mutation::DropJitterAtCap && ceiling(attempt, profile) >= profile.cap {
        return retry_after.map_or(profile.cap, |ra| {
            profile.cap.max(ra.value + draw.scale(ra.jitter))
        });
    }
    backoff(attempt, profile, retry_after, draw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fast() -> Profile {
        Profile {
            floor: Duration::from_millis(500),
            initial: Duration::from_secs(1),
            cap: Duration::from_mins(2),
        }
    }

    #[test]
    fn first_attempt_window_is_floor_to_floor_plus_initial() {
        assert_eq!(
            backoff(0, &fast(), None, Draw::MIN),
            Duration::from_millis(500)
        );
        assert_eq!(
            backoff(0, &fast(), None, Draw::MAX),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn saturation_is_where_the_ceiling_meets_the_cap() {
        let p = fast();
        let n = saturation(&p);
        assert_eq!(ceiling(n, &p), p.cap);
        assert!(ceiling(n - 1, &p) < p.cap);
    }

    #[test]
    fn jitter_survives_at_the_cap() {
        let p = fast();
        assert_eq!(backoff(40, &p, None, Draw::MIN), p.floor);
        assert_eq!(backoff(40, &p, None, Draw::MAX), p.cap);
    }

    #[test]
    fn retry_after_is_a_lower_bound() {
        let ra = RetryAfter {
            value: Duration::from_secs(10),
            jitter: Duration::from_secs(2),
        };
        assert_eq!(
            backoff(0, &fast(), Some(ra), Draw::MIN),
            Duration::from_secs(10)
        );
        assert_eq!(
            backoff(0, &fast(), Some(ra), Draw::MAX),
            Duration::from_secs(12)
        );
    }

    fn profile() -> impl Strategy<Value = Profile> {
        (1u64..5_000, 1u64..10_000, 0u64..2_000_000).prop_map(|(floor, initial, extra)| Profile {
            floor: Duration::from_millis(floor),
            initial: Duration::from_millis(initial),
            cap: Duration::from_millis(floor + extra),
        })
    }

    proptest! {
        #[test]
        fn delay_stays_within_floor_and_cap(attempt in 0u32..200, p in profile(), draw in any::<u32>()) {
            let d = backoff(attempt, &p, None, Draw(draw));
            prop_assert!(p.floor <= d && d <= p.cap, "{d:?} outside [{:?}, {:?}]", p.floor, p.cap);
            prop_assert!(d <= ceiling(attempt, &p));
        }

        #[test]
        fn delay_grows_with_the_draw(attempt in 0u32..80, p in profile(), a in any::<u32>(), b in any::<u32>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(backoff(attempt, &p, None, Draw(lo)) <= backoff(attempt, &p, None, Draw(hi)));
        }

        #[test]
        fn ceiling_never_shrinks(attempt in 0u32..80, p in profile()) {
            prop_assert!(ceiling(attempt, &p) <= ceiling(attempt + 1, &p));
        }

        #[test]
        fn full_jitter_spans_the_window_at_every_attempt(attempt in 0u32..200, p in profile()) {
            prop_assert_eq!(backoff(attempt, &p, None, Draw::MIN), p.floor);
            prop_assert_eq!(backoff(attempt, &p, None, Draw::MAX), ceiling(attempt, &p));
        }

        #[test]
        fn retry_after_bounds_hold(
            attempt in 0u32..80, p in profile(), draw in any::<u32>(),
            value in 0u64..100_000, jitter in 0u64..10_000,
        ) {
            let ra = RetryAfter { value: Duration::from_millis(value), jitter: Duration::from_millis(jitter) };
            let d = backoff(attempt, &p, Some(ra), Draw(draw));
            prop_assert!(d >= ra.value);
            prop_assert!(d <= p.cap.max(ra.value + ra.jitter));
        }
    }
}
