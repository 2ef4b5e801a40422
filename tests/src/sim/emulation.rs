//! Emulations of the retry policies devices ship with today, in the spec's vocabulary.
//!
//! Each is one [`Rules`] value read by one small state machine ([`Emulated`](super::Emulated)): a hub retry
//! schedule, a DPS retry schedule, when the application re-provisions, how `retry-after` is
//! read, and when the token is renewed. They are emulations: the parameters come from the SDKs'
//! code and documents (named in each [`Rules::source`]); what an SDK leaves to the application
//! (re-provisioning) follows the sample or guidance named there. Where a source is silent the
//! choice is stated in the label.

use std::time::Duration;

use hubswap_spec::Draw;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A delay schedule, by consecutive failure number `n` (0 for the first failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// `min(cap, base * 2^(n-1))` with the first retry immediate when `first_immediate`,
    /// times `1 + draw * jitter_percent / 100`.
    Exponential {
        /// Retry the first failure at once.
        first_immediate: bool,
        /// The first non-zero delay.
        base: Duration,
        /// The largest delay.
        cap: Duration,
        /// Jitter added on top, in percent of the delay.
        jitter_percent: u8,
    },
    /// C# v1: `min(cap, min + (2^n - 1) * delta * U(0.8, 1.2))`, no jitter once capped.
    CsharpExponential {
        /// `min`.
        min: Duration,
        /// `delta`.
        delta: Duration,
        /// `max`.
        cap: Duration,
    },
    /// A fixed sequence, the last element repeated; no jitter.
    Sequence(&'static [Duration]),
    /// The same delay every time.
    Fixed(Duration),
}

impl Retry {
    /// The delay after failure number `n`, with the device's draw.
    pub fn delay(self, n: u32, draw: Draw) -> Duration {
        match self {
            Self::Exponential {
                first_immediate,
                base,
                cap,
                jitter_percent,
            } => {
                let k = if first_immediate {
                    if n == 0 {
                        return Duration::ZERO;
                    }
                    n - 1
                } else {
                    n
                };
                let d = base.saturating_mul(1u32 << k.min(20)).min(cap);
                d + draw.scale(d * u32::from(jitter_percent) / 100)
            }
            Self::CsharpExponential { min, delta, cap } => {
                let steps = (1u32 << n.min(20)) - 1;
                let spread = delta * 4 / 10;
                let unit = delta * 8 / 10 + draw.scale(spread);
                (min + unit.saturating_mul(steps)).min(cap)
            }
            Self::Sequence(seq) => {
                let i = usize::try_from(n).unwrap_or(usize::MAX).min(seq.len() - 1);
                seq[i]
            }
            Self::Fixed(d) => d,
        }
    }
}

/// When the application goes back to DPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprovision {
    /// Never: the SDK retries the cached hub for ever.
    Never,
    /// After this many consecutive hub failures of any kind.
    AfterFailures(u32),
    /// On an authentication refusal (CONNACK 2, 4, 5); CONNACK 3 and network errors are retried.
    OnAuthRefused,
    /// When the next hub delay of the schedule would exceed this.
    WhenDelayExceeds(Duration),
    /// On every disconnect and every failed connect, at once.
    EveryFailure,
    /// After the SDK has retried for `after`; then every failure waits
    /// `draw * min(step * k, cap)` (k = outer failures) and registers again.
    AfterElapsed {
        /// How long the SDK retries first.
        after: Duration,
        /// The outer step.
        step: Duration,
        /// The outer cap.
        cap: Duration,
    },
}

/// One emulated policy.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Command-line name.
    pub name: &'static str,
    /// What it does, with its parameters.
    pub label: &'static str,
    /// Where the parameters come from.
    pub source: &'static str,
    /// Reconnects to the cached hub.
    pub hub_retry: Retry,
    /// Register again after a DPS failure (5xx, unreachable, `failed`).
    pub dps_retry: Retry,
    /// When the application re-provisions.
    pub reprovision: Reprovision,
    /// Honoured `retry-after` range (s); outside it, `retry_after_fallback` is used.
    pub retry_after_range: (u64, u64),
    /// The delay used when `retry-after` is missing or out of range.
    pub retry_after_fallback: Duration,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Reconnect for a fresh token this long after minting.
    pub renew_after: Duration,
    /// An attempt with no answer is abandoned after this.
    pub attempt_timeout: Duration,
}

/// The C SDK's default (`EXPONENTIAL_BACKOFF_WITH_JITTER`) with the Embedded C retry flow.
pub fn c_sdk() -> Rules {
    Rules {
        name: "c-sdk",
        label: "emulation: C SDK default, immediate first retry then 1 s doubling to 30 s, +0-5 % jitter, unlimited; \
                DPS after 10 consecutive hub failures (Embedded C retry flow); retry-after kept only in 1..300 s, else 1 s; \
                token 1 h renewed at 80 %",
        source: "azure-iot-sdk-c iothub_client_retry_control.c, prov_transport.h, iothubtransport_mqtt_common.c; \
                 azure-sdk-for-c iot_retry_flow.puml (MAX_HUB_RETRY 10)",
        hub_retry: Retry::Exponential {
            first_immediate: true,
            base: MS(1_000),
            cap: MS(30_000),
            jitter_percent: 5,
        },
        dps_retry: Retry::Exponential {
            first_immediate: true,
            base: MS(1_000),
            cap: MS(30_000),
            jitter_percent: 5,
        },
        reprovision: Reprovision::AfterFailures(10),
        retry_after_range: (1, 300),
        retry_after_fallback: MS(1_000),
        token_ttl: Duration::from_hours(1),
        renew_after: Duration::from_mins(48),
        attempt_timeout: Duration::from_secs(30),
    }
}

/// The C# SDK v1 default (`ExponentialBackoff(100 ms, 10 s, 100 ms)`).
pub fn csharp() -> Rules {
    Rules {
        name: "csharp",
        label: "emulation: C# v1 default, 100 ms + (2^n-1) x 80..120 ms to 10 s, no jitter at the cap, unlimited; \
                CONNACK 3 and network errors retried for ever; CONNACK 5 is non-transient, so the application \
                re-provisions; DPS retry-after honoured; token 1 h renewed at 85 %",
        source: "azure-iot-sdk-csharp ExponentialBackoffRetryStrategy.cs, RetryDelegatingHandler.cs, \
                 DeviceAuthenticationWithTokenRefresh.cs (15 % buffer)",
        hub_retry: Retry::CsharpExponential {
            min: MS(100),
            delta: MS(100),
            cap: MS(10_000),
        },
        dps_retry: Retry::CsharpExponential {
            min: MS(100),
            delta: MS(100),
            cap: MS(10_000),
        },
        reprovision: Reprovision::OnAuthRefused,
        retry_after_range: (0, u64::MAX),
        retry_after_fallback: MS(2_000),
        token_ttl: Duration::from_hours(1),
        renew_after: Duration::from_mins(51),
        attempt_timeout: Duration::from_mins(1),
    }
}

/// The Python SDK's re-provisioning sample (3, 9, 27, 81 s, then DPS).
pub fn python_sample() -> Rules {
    const SEQ: &[Duration] = &[
        Duration::ZERO,
        Duration::from_secs(3),
        Duration::from_secs(9),
        Duration::from_secs(27),
        Duration::from_secs(81),
        Duration::from_secs(243),
    ];
    Rules {
        name: "python-sample",
        label: "emulation: Python SDK re-provisioning sample, immediate first try then 3, 9, 27, 81 s, no jitter; \
                re-provisions when the next delay would exceed 90 s, whatever the error; DPS retried on the same \
                schedule, retry-after honoured, else 2 s; token 1 h renewed 120 s before expiry",
        source: "azure-iot-sdk-python branch ok/dps-reprovision-sample (PR #1109); abstract_clients.py (sastoken_ttl)",
        hub_retry: Retry::Sequence(SEQ),
        dps_retry: Retry::Sequence(SEQ),
        reprovision: Reprovision::WhenDelayExceeds(Duration::from_secs(90)),
        retry_after_range: (0, u64::MAX),
        retry_after_fallback: MS(2_000),
        token_ttl: Duration::from_hours(1),
        renew_after: Duration::from_mins(58),
        attempt_timeout: Duration::from_secs(30),
    }
}

/// IoT Central's high-availability client samples.
pub fn ha_sample() -> Rules {
    Rules {
        name: "ha-sample",
        label: "emulation: IoT Central high-availability samples, DPS on every disconnect and failed connect, no backoff \
                (C# NoRetry); the samples have no DPS retry loop, so a failed registration is retried after the DPS \
                client's 2 s poll default (our assumption); retry-after honoured; token 1 h renewed at 85 %",
        source: "Azure-Samples iot-central-high-availability-clients (README: connect is not optimized for caching)",
        hub_retry: Retry::Fixed(Duration::ZERO),
        dps_retry: Retry::Fixed(MS(2_000)),
        reprovision: Reprovision::EveryFailure,
        retry_after_range: (0, u64::MAX),
        retry_after_fallback: MS(2_000),
        token_ttl: Duration::from_hours(1),
        renew_after: Duration::from_mins(51),
        attempt_timeout: Duration::from_secs(30),
    }
}

/// IoT Central's device bridge (transparent hub move).
pub fn device_bridge() -> Rules {
    Rules {
        name: "device-bridge",
        label: "emulation: IoT Central device bridge, the C# SDK retries the cached hub for 5 min, then DPS; after \
                that every failure waits rand(0, min(5 min x n, 30 min)) and registers again; retry-after honoured; \
                token 1 h renewed at 85 %",
        source: "Azure iot-central-bidirectional-device-bridge ConnectionManager.cs, SubscriptionScheduler.cs (PR #17)",
        hub_retry: Retry::CsharpExponential {
            min: MS(100),
            delta: MS(100),
            cap: MS(10_000),
        },
        dps_retry: Retry::Fixed(Duration::from_mins(5)),
        reprovision: Reprovision::AfterElapsed {
            after: Duration::from_mins(5),
            step: Duration::from_mins(5),
            cap: Duration::from_mins(30),
        },
        retry_after_range: (0, u64::MAX),
        retry_after_fallback: MS(2_000),
        token_ttl: Duration::from_hours(1),
        renew_after: Duration::from_mins(51),
        attempt_timeout: Duration::from_mins(1),
    }
}

/// SDK retries only: the C SDK's default schedule, never back to DPS.
pub fn sdk_only() -> Rules {
    Rules {
        name: "sdk-only",
        label: "emulation: SDK retries only, never re-provisions; C SDK default schedule (immediate, then 1 s doubling \
                to 30 s, +0-5 %); token 1 h renewed at 80 %",
        source: "azure-iot-sdk-c iothub_client_retry_control.c; any SDK without application re-provisioning",
        reprovision: Reprovision::Never,
        ..c_sdk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(r: Retry, draw: Draw) -> Vec<u64> {
        (0..12)
            .map(|n| u64::try_from(r.delay(n, draw).as_millis()).unwrap_or(u64::MAX))
            .collect()
    }

    #[test]
    fn the_c_sdk_retries_at_once_then_doubles_to_30_s_with_up_to_5_percent() {
        let r = c_sdk().hub_retry;
        assert_eq!(
            schedule(r, Draw::MIN),
            [
                0, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000,
                30_000
            ]
        );
        assert_eq!(schedule(r, Draw::MAX)[1], 1_050);
        assert_eq!(schedule(r, Draw::MAX)[11], 31_500);
    }

    #[test]
    fn csharp_grows_from_100_ms_to_10_s_with_no_jitter_at_the_cap() {
        let r = csharp().hub_retry;
        let lo = schedule(r, Draw::MIN);
        let hi = schedule(r, Draw::MAX);
        assert_eq!(lo[0], 100);
        assert_eq!((lo[1], hi[1]), (180, 220));
        assert_eq!((lo[11], hi[11]), (10_000, 10_000));
    }

    #[test]
    fn the_python_sample_follows_its_sequence_and_goes_to_dps_after_81_s() {
        let r = python_sample();
        assert_eq!(
            schedule(r.hub_retry, Draw::MAX)[..6],
            [0, 3_000, 9_000, 27_000, 81_000, 243_000]
        );
        assert_eq!(
            r.reprovision,
            Reprovision::WhenDelayExceeds(Duration::from_secs(90))
        );
    }

    #[test]
    fn every_emulation_names_its_source_and_says_it_is_one() {
        for r in [
            c_sdk(),
            csharp(),
            python_sample(),
            ha_sample(),
            device_bridge(),
            sdk_only(),
        ] {
            assert!(r.label.starts_with("emulation: "), "{}", r.name);
            assert!(!r.source.is_empty(), "{}", r.name);
        }
    }
}
