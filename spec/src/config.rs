//! Every threshold and delay of the spec, validated once (SPEC §3).

use core::time::Duration;

pub mod table;

/// A backoff profile: full jitter between `floor` and a ceiling that doubles per attempt.
///
/// The delay for attempt `n` lies in `[floor, min(cap, floor + initial * 2^n)]`
/// (SPEC §4, [`crate::backoff()`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// The smallest delay the profile ever yields.
    pub floor: Duration,
    /// The width of the jitter window at attempt 0; it doubles per attempt.
    pub initial: Duration,
    /// The largest delay the profile ever yields.
    pub cap: Duration,
}

/// How the device authenticates to its hub (SPEC §1.1). The spec mints and renews SAS tokens;
/// an X.509 device has no token, so it skips the fresh-token retry and the planned renewal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum CredentialKind {
    /// A shared access signature minted from a device key.
    #[default]
    Sas,
    /// An X.509 client certificate presented in the TLS handshake.
    X509,
}

/// The validated parameters of the spec.
///
/// Build one with [`Config::default`] and adjust fields, then call [`Config::validate`];
/// [`crate::step()`] assumes a validated config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// G1: failed hub connects of the unreachable class before the device asks DPS again.
    pub unreachable_threshold: u32,
    /// G3: consecutive CONNACK 3 (or 1) refusals before the device asks DPS again.
    pub unavailable_threshold: u32,
    /// G5: the profile for transient failures (default 1 s to 120 s).
    pub fast: Profile,
    /// G4: the profile while DPS reports the device blocked (default floor 10 min, initial 20 min, cap 1 h).
    /// Its floor is the least time between two attempts while blocked (G4).
    pub slow: Profile,
    /// G7: no two attempt starts come closer than this.
    pub min_attempt_spacing: Duration,
    /// G7: a connection must stay up this long before the backoff resets.
    pub stable_after: Duration,
    /// An attempt (hub CONNECT or DPS request) with no answer after this is abandoned.
    pub attempt_timeout: Duration,
    /// Lifetime of a minted hub SAS token.
    pub token_ttl: Duration,
    /// The token is renewed by a planned reconnect at this percentage of its lifetime.
    pub renew_at_percent: u8,
    /// G6: the jitter added on top of a DPS `retry-after`.
    pub retry_after_jitter: Duration,
    /// The largest `retry-after` honoured; larger values are clamped to it.
    pub max_retry_after: Duration,
    /// The delay before polling a DPS operation when the 202 carries no `retry-after`.
    pub dps_poll_default: Duration,
    /// Fleet pacing: when a hub failure (G1, G2, G3) sends the device back to DPS, the delay
    /// before that registration is drawn from `[floor, max(backoff ceiling, reprovision_spread)]`
    /// instead of the backoff window alone, so that a fleet losing its hub together reaches DPS
    /// spread over this window. Zero (the default) adds nothing. Size it with
    /// [`Config::paced_for_fleet`] (SPEC §4.1).
    #[serde(default)]
    pub reprovision_spread: Duration,
    /// G9: the DPS gate. After DPS sent the device back to the hub that refused it, or did not
    /// answer, the next DPS registration of the incident waits `recheck_delay(rounds)`, drawn
    /// from `[c / 2, c]` with `c = ceiling(rounds, recheck)` (equal jitter, so the gate's lower
    /// bound doubles too). Default: floor 10 min, initial 20 min, cap 4 h.
    pub recheck: Profile,
    /// SAS token or X.509 certificate.
    #[serde(default)]
    pub credential: CredentialKind,
}

/// The headroom [`Config::paced_for_fleet`] leaves under the DPS quota, in percent of N/R: the
/// fleet's registrations are spread over 110 % of the time the quota needs, so the mean load is
/// 91 % of the quota (the Microsoft deploy-at-scale formula `max = (1/load) * N/cps`).
pub const FLEET_HEADROOM_PERCENT: u64 = 110;

impl Default for Config {
    fn default() -> Self {
        Self {
            unreachable_threshold: 2,
            unavailable_threshold: 2,
            fast: Profile {
                floor: Duration::from_millis(500),
                initial: Duration::from_secs(1),
                cap: Duration::from_mins(2),
            },
            slow: Profile {
                floor: Duration::from_mins(10),
                initial: Duration::from_mins(20),
                cap: Duration::from_hours(1),
            },
            min_attempt_spacing: Duration::from_millis(500),
            stable_after: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(30),
            token_ttl: Duration::from_hours(1),
            renew_at_percent: 85,
            retry_after_jitter: Duration::from_secs(2),
            max_retry_after: Duration::from_mins(30),
            dps_poll_default: Duration::from_secs(2),
            reprovision_spread: Duration::ZERO,
            recheck: Profile {
                floor: Duration::from_mins(10),
                initial: Duration::from_mins(20),
                cap: Duration::from_hours(4),
            },
            credential: CredentialKind::Sas,
        }
    }
}

/// A rule a [`Config`] breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A threshold is zero; the device would ask DPS on the first refusal of any kind.
    #[error("{name} must be at least 1")]
    ZeroThreshold {
        /// The field.
        name: &'static str,
    },
    /// A profile is empty or inverted.
    #[error("profile {name}: need 0 < floor <= cap and initial > 0")]
    BadProfile {
        /// `fast` or `slow`.
        name: &'static str,
    },
    /// A profile floor is below the attempt spacing, so backoff could not be honoured.
    #[error("profile {name}: floor must be at least min_attempt_spacing")]
    FloorBelowSpacing {
        /// `fast` or `slow`.
        name: &'static str,
    },
    /// A duration that must be positive is zero.
    #[error("{name} must be positive")]
    ZeroDuration {
        /// The field.
        name: &'static str,
    },
    /// `renew_at_percent` is outside 1..=99.
    #[error("renew_at_percent must be within 1..=99, got {0}")]
    RenewPercent(u8),
    /// The token would need renewing before the connection counts as stable.
    #[error("the token renewal point must come after stable_after")]
    RenewBeforeStable,
    /// `max_retry_after` is shorter than the poll default.
    #[error("max_retry_after must be at least dps_poll_default")]
    RetryAfterCap,
}

impl Config {
    /// Checks every rule; the spec's guarantees hold only for a valid config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("unreachable_threshold", self.unreachable_threshold),
            ("unavailable_threshold", self.unavailable_threshold),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroThreshold { name });
            }
        }
        for (name, p) in [
            ("fast", self.fast),
            ("slow", self.slow),
            ("recheck", self.recheck),
        ] {
            if p.floor.is_zero() || p.initial.is_zero() || p.floor > p.cap {
                return Err(ConfigError::BadProfile { name });
            }
            if p.floor < self.min_attempt_spacing {
                return Err(ConfigError::FloorBelowSpacing { name });
            }
        }
        for (name, d) in [
            ("min_attempt_spacing", self.min_attempt_spacing),
            ("stable_after", self.stable_after),
            ("attempt_timeout", self.attempt_timeout),
            ("token_ttl", self.token_ttl),
            ("dps_poll_default", self.dps_poll_default),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration { name });
            }
        }
        if !(1..=99).contains(&self.renew_at_percent) {
            return Err(ConfigError::RenewPercent(self.renew_at_percent));
        }
        if self.renew_after() <= self.stable_after {
            return Err(ConfigError::RenewBeforeStable);
        }
        if self.max_retry_after < self.dps_poll_default {
            return Err(ConfigError::RetryAfterCap);
        }
        Ok(())
    }

    /// Every delay divided by `factor` (thresholds unchanged), for tests and drills that run the
    /// real policy in compressed time. The attempt timeout is kept at 2 s or more, so that a
    /// TLS handshake on a loaded machine is not mistaken for an unreachable hub.
    #[must_use]
    pub fn scaled_down(&self, factor: u32) -> Self {
        let f = factor.max(1);
        let d = |x: Duration| x / f;
        let p = |x: Profile| Profile {
            floor: d(x.floor),
            initial: d(x.initial),
            cap: d(x.cap),
        };
        Self {
            fast: p(self.fast),
            slow: p(self.slow),
            min_attempt_spacing: d(self.min_attempt_spacing),
            stable_after: d(self.stable_after),
            attempt_timeout: d(self.attempt_timeout)
                .max(Duration::from_secs(2).min(self.attempt_timeout)),
            token_ttl: d(self.token_ttl),
            retry_after_jitter: d(self.retry_after_jitter),
            max_retry_after: d(self.max_retry_after),
            dps_poll_default: d(self.dps_poll_default),
            reprovision_spread: d(self.reprovision_spread),
            recheck: p(self.recheck),
            ..self.clone()
        }
    }

    /// This config with `reprovision_spread` sized for a fleet of `devices` that may have to
    /// re-register together under a DPS quota of `registrations_per_minute`: N/R, plus
    /// [`FLEET_HEADROOM_PERCENT`] headroom. A zero quota leaves the config unchanged.
    ///
    /// ```
    /// # use core::time::Duration;
    /// let c = hubswap_spec::Config::default().paced_for_fleet(1_000, 500);
    /// assert_eq!(c.reprovision_spread, Duration::from_secs(132)); // 2 min x 110 %
    /// ```
    #[must_use]
    pub fn paced_for_fleet(self, devices: u32, registrations_per_minute: u32) -> Self {
        if registrations_per_minute == 0 {
            return self;
        }
        let ms = 60_000 * u64::from(devices) * FLEET_HEADROOM_PERCENT
            / (100 * u64::from(registrations_per_minute));
        Self {
            reprovision_spread: Duration::from_millis(ms),
            ..self
        }
    }

    /// How long after minting a token the planned reconnect renews it.
    pub fn renew_after(&self) -> Duration {
        self.token_ttl * u32::from(self.renew_at_percent) / 100
    }

    /// The profile in force: `slow` while DPS reports the device blocked, else `fast`.
    pub fn profile(&self, blocked: bool) -> &Profile {
        if blocked { &self.slow } else { &self.fast }
    }

    /// The spacing between attempt starts in force (G4, G7).
    pub fn spacing(&self, blocked: bool) -> Duration {
        if blocked {
            self.slow.floor.max(self.min_attempt_spacing)
        } else {
            self.min_attempt_spacing
        }
    }

    /// The longest delay the spec can ever arm between a failure and the next attempt.
    pub fn longest_delay(&self) -> Duration {
        self.fast
            .cap
            .max(self.slow.cap)
            .max(self.max_retry_after + self.retry_after_jitter)
            .max(self.reprovision_spread)
    }

    /// G8: once the cloud behaves (DPS assigns a hub that accepts the device, and both answer
    /// within `attempt_timeout`), the device is connected within this long: the longest
    /// delay it can have armed, the blocked spacing, one DPS registration with a poll after
    /// at most `max_retry_after`, and one hub connect.
    pub fn recovery_bound(&self) -> Duration {
        self.longest_delay() + self.spacing(true) + self.max_retry_after + self.attempt_timeout * 3
    }

    /// G9: the shortest wait before DPS registration `round + 1` of an incident, after
    /// `round + 1` registrations were answered with the hub that refused or not at all: half
    /// the gate's ceiling.
    pub fn recheck_floor(&self, round: u32) -> Duration {
        crate::backoff::ceiling(round, &self.recheck) / 2
    }

    /// G9, the DPS budget: the most DPS registrations a hub-side failure that persists for
    /// `d` costs the device. One at the threshold, then one more each time the gate opens:
    /// `B(d) = 1 + #{k >= 1 : recheck_floor(0) + ... + recheck_floor(k - 1) <= d}`. The gate
    /// doubles until its cap, so `B` grows as `log2(d)` until then and by one per
    /// `recheck.cap / 2` after.
    pub fn dps_budget(&self, d: Duration) -> u32 {
        let mut spent = Duration::ZERO;
        let mut budget = 1u32;
        for round in 0..u32::MAX {
            spent += self.recheck_floor(round);
            if spent > d || self.recheck_floor(round).is_zero() {
                break;
            }
            budget += 1;
        }
        budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn scaled_defaults_stay_valid() {
        for f in [1, 10, 100, 1000] {
            let c = Config::default().scaled_down(f);
            assert_eq!(c.validate(), Ok(()), "scale {f}");
            assert!(c.attempt_timeout >= Duration::from_secs(2));
        }
        assert_eq!(
            Config::default().scaled_down(100).fast.cap,
            Duration::from_millis(1200)
        );
    }

    #[test]
    fn fleet_pacing_spreads_over_n_over_r_with_headroom() {
        let c = Config::default().paced_for_fleet(100, 50);
        assert_eq!(c.reprovision_spread, Duration::from_secs(132));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.longest_delay(), Duration::from_hours(1));
        let big = Config::default().paced_for_fleet(100_000, 1_000);
        assert_eq!(big.reprovision_spread, Duration::from_mins(110));
        assert_eq!(big.longest_delay(), Duration::from_mins(110));
        assert_eq!(Config::default().paced_for_fleet(10, 0), Config::default());
        assert_eq!(
            big.scaled_down(10).reprovision_spread,
            Duration::from_mins(11)
        );
    }

    /// SPEC §4.2 and §5 quote these numbers.
    #[test]
    fn the_dps_budget_and_the_recovery_bound_are_as_stated() {
        let c = Config::default();
        let floors: Vec<u64> = (0..6).map(|r| c.recheck_floor(r).as_secs() / 60).collect();
        assert_eq!(floors, [15, 25, 45, 85, 120, 120]);
        let b = |mins: u64| c.dps_budget(Duration::from_mins(mins));
        assert_eq!([b(10), b(60), b(120), b(360), b(1440)], [1, 3, 4, 6, 15]);
        for mins in [1, 10, 100, 1000, 10_000] {
            assert!(b(mins) <= b(mins * 2), "B is monotone");
        }
        assert_eq!(c.recovery_bound(), Duration::from_secs(6_090));
    }

    #[test]
    fn every_profile_rule_is_enforced_at_its_boundary() {
        let mut c = Config::default();
        c.fast.initial = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::BadProfile { name: "fast" }));
        let mut c = Config::default();
        c.recheck.floor = Duration::ZERO;
        assert_eq!(
            c.validate(),
            Err(ConfigError::BadProfile { name: "recheck" })
        );
        let mut c = Config::default();
        c.slow.cap = c.slow.floor;
        assert_eq!(
            c.validate(),
            Ok(()),
            "floor == cap is a fixed delay, and valid"
        );
        let c = Config {
            max_retry_after: Duration::from_secs(2),
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Ok(()),
            "max_retry_after == dps_poll_default is valid"
        );
        let c = Config {
            max_retry_after: Duration::from_millis(1_999),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::RetryAfterCap));
    }

    #[test]
    fn scaling_divides_every_delay() {
        let c = Config::default();
        let s = c.scaled_down(10);
        assert_eq!(s.fast.cap, c.fast.cap / 10);
        assert_eq!(s.slow.floor, c.slow.floor / 10);
        assert_eq!(s.slow.initial, c.slow.initial / 10);
        assert_eq!(s.slow.cap, c.slow.cap / 10);
        assert_eq!(s.recheck.initial, c.recheck.initial / 10);
        assert_eq!(s.recheck.cap, c.recheck.cap / 10);
        assert_eq!(s.attempt_timeout, Duration::from_secs(3));
        assert_eq!(s.token_ttl, c.token_ttl / 10);
        assert_eq!(s.retry_after_jitter, c.retry_after_jitter / 10);
        assert_eq!(s.max_retry_after, c.max_retry_after / 10);
        assert_eq!(s.unreachable_threshold, c.unreachable_threshold);
    }

    #[test]
    fn the_longest_delay_counts_the_retry_after_jitter() {
        let c = Config {
            max_retry_after: Duration::from_hours(2),
            ..Config::default()
        };
        assert_eq!(
            c.longest_delay(),
            Duration::from_hours(2) + Duration::from_secs(2)
        );
    }

    #[test]
    fn the_budget_counts_a_gate_that_opens_exactly_at_d() {
        let c = Config::default();
        assert_eq!(c.dps_budget(Duration::from_mins(15)), 2);
        assert_eq!(
            c.dps_budget(Duration::from_mins(15) - Duration::from_millis(1)),
            1
        );
    }

    #[test]
    fn zero_threshold_is_rejected() {
        let c = Config {
            unreachable_threshold: 0,
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroThreshold {
                name: "unreachable_threshold"
            })
        );
    }

    #[test]
    fn inverted_profile_is_rejected() {
        let mut c = Config::default();
        c.slow.floor = c.slow.cap + Duration::from_secs(1);
        assert_eq!(c.validate(), Err(ConfigError::BadProfile { name: "slow" }));
    }

    #[test]
    fn renewal_before_stable_is_rejected() {
        let c = Config {
            token_ttl: Duration::from_secs(20),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::RenewBeforeStable));
    }

    #[test]
    fn floor_below_spacing_is_rejected() {
        let c = Config {
            min_attempt_spacing: Duration::from_secs(2),
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::FloorBelowSpacing { name: "fast" })
        );
    }
}
