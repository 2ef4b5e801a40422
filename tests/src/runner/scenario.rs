//! The conformance scenarios: one per seed error type, failover and failback, DPS throttling,
//! a restart with the cached assignment, and steady-state telemetry.

use std::time::Duration;

use clap::ValueEnum;
use hubswap_mock_cloud::Event;
use hubswap_mock_cloud::MockCloud;
use hubswap_mock_cloud::fault::{
    Block, ClockOffset, DeviceOnHub, DpsError, ExpireToken, Failover, Fault, HubDown, HubError,
    HubErrorMode, Lifetime, OptionsPatch, OutageMode, RefuseAt,
};
use hubswap_mock_cloud::log::Endpoint;
use hubswap_spec::Guarantee;
use serde::Serialize;

use super::cloud::{mark, wait_connected};

/// How a scenario's problem starts when the device did not reconnect within the recovery
/// bound once the cloud behaved again: a G8 (liveness) failure.
pub const NOT_RECOVERED: &str = "did not reconnect within";

/// A scenario the runner can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
pub enum Scenario {
    /// Connect and send telemetry; nothing goes wrong.
    #[value(name = "steady-telemetry")]
    Steady,
    /// Stop the device and start it again: it must use its cached assignment, not DPS.
    #[value(name = "restart-with-cached-assignment")]
    RestartCached,
    /// Seed error: the hub becomes unreachable (reset at accept); DPS assigns the other hub.
    #[value(name = "unreachable-hub")]
    UnreachableHub,
    /// Seed error: the device's token expires. The cloud's clock moves just past the `se` of the
    /// token in use: the hub drops the connection and refuses that token (CONNACK 5), while a
    /// token minted now is valid. An X.509 device has its credential invalidated instead.
    #[value(name = "expired-token")]
    ExpiredToken,
    /// Seed error, the reprovision branch: the token expires as in `expired-token`, and the
    /// hub identity accepts no token of the device until it registers with DPS again, so the
    /// fresh token is refused too and only DPS brings the device back.
    #[value(name = "expired-token-reprovision")]
    ExpiredTokenReprovision,
    /// Seed error: the device is disabled on its hub (dropped; CONNACK 3), then enabled.
    #[value(name = "device-disabled")]
    DeviceDisabled,
    /// The hub refuses the device with CONNACK 5 (not authorized) while DPS still assigns it
    /// that hub, then accepts it again: a fresh token does not help, and DPS's answer is the
    /// only evidence that the refusal is the hub's.
    #[value(name = "blocked-at-hub")]
    BlockedAtHub,
    /// Seed error: an IoT Central operator blocks the device, then unblocks it.
    #[value(name = "operator-blocked")]
    OperatorBlocked,
    /// Seed error: internal errors — hub drops and CONNACK 3, DPS 500s.
    #[value(name = "internal-error-500")]
    InternalError,
    /// IoT Central failover of the device's hub, then failback.
    #[value(name = "failover-and-failback")]
    FailoverFailback,
    /// DPS answers 429 with retry-after while the device must reprovision.
    #[value(name = "dps-throttling")]
    DpsThrottling,
}

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Self; 11] = [
        Self::Steady,
        Self::RestartCached,
        Self::UnreachableHub,
        Self::ExpiredToken,
        Self::ExpiredTokenReprovision,
        Self::DeviceDisabled,
        Self::BlockedAtHub,
        Self::OperatorBlocked,
        Self::InternalError,
        Self::FailoverFailback,
        Self::DpsThrottling,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady-telemetry",
            Self::RestartCached => "restart-with-cached-assignment",
            Self::UnreachableHub => "unreachable-hub",
            Self::ExpiredToken => "expired-token",
            Self::ExpiredTokenReprovision => "expired-token-reprovision",
            Self::DeviceDisabled => "device-disabled",
            Self::BlockedAtHub => "blocked-at-hub",
            Self::OperatorBlocked => "operator-blocked",
            Self::InternalError => "internal-error-500",
            Self::FailoverFailback => "failover-and-failback",
            Self::DpsThrottling => "dps-throttling",
        }
    }
}

impl Scenario {
    /// The guarantees the scenario exists to exercise: when their deciding situations do not
    /// happen, the run is inconclusive.
    pub fn exercises(self) -> &'static [Guarantee] {
        use Guarantee as G;
        match self {
            Self::Steady | Self::RestartCached => &[],
            Self::UnreachableHub => &[G::G1, G::G8],
            Self::ExpiredToken | Self::ExpiredTokenReprovision | Self::BlockedAtHub => {
                &[G::G2, G::G8]
            }
            Self::DeviceDisabled | Self::FailoverFailback => &[G::G3, G::G8],
            Self::OperatorBlocked => &[G::G4, G::G8],
            Self::InternalError => &[G::G5, G::G8],
            Self::DpsThrottling => &[G::G6, G::G10, G::G8],
        }
    }
}

/// The timing a scenario works with.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a fault is held before it is cleared.
    pub hold: Duration,
    /// How long the device gets to reconnect once the cloud behaves again.
    pub recovery: Duration,
    /// How long the device gets to recover from an operator block (the slow profile).
    pub blocked_recovery: Duration,
}

/// What a scenario step needs: the cloud, the device id, and where the device is connected.
pub struct Ctx<'a> {
    /// The cloud.
    pub cloud: &'a MockCloud,
    /// The device under test.
    pub device: &'a str,
    /// The hub it is connected to when the fault starts.
    pub hub: String,
    /// The other hub.
    pub other: String,
    /// Timing.
    pub timing: Timing,
    /// When a hub that became unreachable resets a connection.
    pub refuse_at: RefuseAt,
}

impl Ctx<'_> {
    async fn apply(&self, fault: Fault) -> Result<(), String> {
        self.cloud
            .apply(fault)
            .await
            .map(|_| ())
            .map_err(|e| format!("applying a fault: {e}"))
    }

    /// Waits until the device is connected again (after log position `after`).
    async fn recovered(&self, after: u64, within: Duration, what: &str) -> Result<String, String> {
        wait_connected(self.cloud, self.device, after, within)
            .await
            .ok_or_else(|| format!("{NOT_RECOVERED} {within:?} after {what}"))
    }

    /// Holds the fault for the configured time, noting whether the device stayed put.
    async fn hold(&self) {
        // Holding is waiting on the device's own schedule; nothing to synchronise with.
        tokio::time::sleep(self.timing.hold).await;
    }
}

/// Plays the fault part of `scenario` (the device is connected when it starts). Restarts are
/// handled by the runner; this covers the cloud-side faults. Returns problems, if any.
pub async fn play(scenario: Scenario, cx: &Ctx<'_>) -> Result<(), String> {
    let device = cx.device.to_owned();
    match scenario {
        Scenario::Steady | Scenario::RestartCached => {
            cx.hold().await;
            Ok(())
        }
        Scenario::UnreachableHub => unreachable_hub(cx).await,
        Scenario::ExpiredToken => expired_token(cx, device, false).await,
        Scenario::ExpiredTokenReprovision => expired_token(cx, device, true).await,
        Scenario::DeviceDisabled => device_disabled(cx, 3).await,
        Scenario::BlockedAtHub => device_disabled(cx, 5).await,
        Scenario::OperatorBlocked => operator_blocked(cx).await,
        Scenario::InternalError => internal_error(cx).await,
        Scenario::FailoverFailback => failover_failback(cx).await,
        Scenario::DpsThrottling => dps_throttling(cx).await,
    }
}

async fn unreachable_hub(cx: &Ctx<'_>) -> Result<(), String> {
    // IoT Central's disaster recovery: the hub's devices move (DPS assigns the other
    // hub), and the hub itself stops answering (reset at accept).
    let failover = Failover {
        hub: Some(cx.hub.clone()),
        to: cx.other.clone(),
        ..Failover::default()
    };
    cx.apply(Fault::Failover(failover)).await?;
    let m = mark(cx.cloud);
    let down = HubDown {
        hub: cx.hub.clone(),
        mode: OutageMode::Refuse,
        refuse_at: cx.refuse_at,
        ..HubDown::default()
    };
    cx.apply(Fault::HubDown(down)).await?;
    let on = cx
        .recovered(m, cx.timing.recovery, "its hub became unreachable")
        .await?;
    if on == cx.hub {
        return Err(format!("reconnected to the unreachable hub {on}"));
    }
    let restore = hubswap_mock_cloud::fault::HubArg {
        hub: cx.hub.clone(),
    };
    cx.apply(Fault::HubRestore(restore)).await
}

/// The token `device` connected with last: how long it was valid for, and when the cloud saw it.
fn current_token(cx: &Ctx<'_>, device: &str) -> Option<(Duration, hubswap_spec::Millis)> {
    cx.cloud
        .log()
        .records()
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::Connect {
                endpoint: Endpoint::Hub(_),
                credential: Some(c),
                ..
            } if r.device.as_deref() == Some(device) => Some((c.valid_for, r.at)),
            _ => None,
        })
}

/// The cloud's clock now, as its log last saw it.
fn cloud_now(cx: &Ctx<'_>) -> hubswap_spec::Millis {
    cx.cloud
        .log()
        .records()
        .last()
        .map_or(hubswap_spec::Millis::ZERO, |r| r.at)
}

async fn expired_token(cx: &Ctx<'_>, device: String, reprovision: bool) -> Result<(), String> {
    let m = mark(cx.cloud);
    let expire = |device: String| {
        Fault::ExpireToken(ExpireToken {
            device,
            until_reprovisioned: reprovision,
        })
    };
    let Some((valid_for, seen)) = current_token(cx, &device) else {
        cx.apply(expire(device)).await?;
        return cx
            .recovered(m, cx.timing.recovery, "its credential was invalidated")
            .await
            .map(|_| ());
    };
    // A fresh token outlives the jump by about the age of the one in use, less the whole
    // seconds `se` is rounded to: 5 s leaves a fresh token several seconds of validity.
    let age = |at: hubswap_spec::Millis| Duration::from_millis(at.0.saturating_sub(seen.0));
    let young = Duration::from_secs(5).saturating_sub(age(cloud_now(cx)));
    // Waiting for the token to age is the scenario's timeline; nothing to synchronise with.
    tokio::time::sleep(young).await;
    let left = valid_for.saturating_sub(age(cloud_now(cx)));
    let jump = i64::try_from(left.as_secs() + 1).unwrap_or(i64::MAX);
    let m = mark(cx.cloud);
    if reprovision {
        cx.apply(expire(device)).await?;
    }
    cx.apply(Fault::ClockOffset(ClockOffset { secs: jump }))
        .await?;
    let back = cx
        .recovered(
            m,
            cx.timing.recovery,
            "its token expired (the cloud's clock passed its se)",
        )
        .await
        .map(|_| ());
    cx.apply(Fault::ClockOffset(ClockOffset { secs: 0 }))
        .await?;
    back
}

async fn internal_error(cx: &Ctx<'_>) -> Result<(), String> {
    let dps = DpsError {
        status: 500,
        count: Some(2),
        ..DpsError::default()
    };
    cx.apply(Fault::DpsError(dps)).await?;
    let hub = HubError {
        hub: cx.hub.clone(),
        mode: HubErrorMode::Drop,
        count: Some(1),
        ..HubError::default()
    };
    cx.apply(Fault::HubError(hub)).await?;
    let refuse = HubError {
        hub: cx.hub.clone(),
        mode: HubErrorMode::Connack,
        code: Some(3),
        lifetime: Lifetime::lasting(cx.timing.hold),
        ..HubError::default()
    };
    cx.apply(Fault::HubError(refuse)).await?;
    cx.hold().await;
    let m = mark(cx.cloud);
    cx.recovered(m, cx.timing.recovery, "the internal errors stopped")
        .await
        .map(|_| ())
}

async fn failover_failback(cx: &Ctx<'_>) -> Result<(), String> {
    let device = cx.device.to_owned();
    let m = mark(cx.cloud);
    let failover = Failover {
        device: Some(device.clone()),
        to: cx.other.clone(),
        ..Failover::default()
    };
    cx.apply(Fault::Failover(failover)).await?;
    let on = cx.recovered(m, cx.timing.recovery, "a failover").await?;
    if on != cx.other {
        return Err(format!(
            "after failover connected to {on}, not {}",
            cx.other
        ));
    }
    let m = mark(cx.cloud);
    let back = hubswap_mock_cloud::fault::Failback {
        device: Some(device),
        ..Default::default()
    };
    cx.apply(Fault::Failback(back)).await?;
    let on = cx.recovered(m, cx.timing.recovery, "a failback").await?;
    if on == cx.hub {
        Ok(())
    } else {
        Err(format!("after failback connected to {on}, not {}", cx.hub))
    }
}

async fn dps_throttling(cx: &Ctx<'_>) -> Result<(), String> {
    let device = cx.device.to_owned();
    let throttle = DpsError {
        status: 429,
        retry_after: Some(2),
        count: Some(2),
        ..DpsError::default()
    };
    cx.apply(Fault::DpsError(throttle)).await?;
    let m = mark(cx.cloud);
    let failover = Failover {
        device: Some(device),
        to: cx.other.clone(),
        ..Failover::default()
    };
    cx.apply(Fault::Failover(failover)).await?;
    cx.recovered(
        m,
        cx.timing.recovery + Duration::from_secs(6),
        "a throttled failover",
    )
    .await
    .map(|_| ())
}

async fn operator_blocked(cx: &Ctx<'_>) -> Result<(), String> {
    let device = cx.device.to_owned();
    let blocked_at = mark(cx.cloud);
    cx.apply(Fault::Block(Block {
        device: device.clone(),
        lifetime: Lifetime::default(),
    }))
    .await?;
    // G4 is about what the device does once DPS has told it that it is blocked: the block
    // lasts `hold` past that answer (a device that never asks DPS is graded on what it did).
    let told = |r: &hubswap_mock_cloud::LogRecord| {
        r.seq >= blocked_at
            && r.device.as_deref() == Some(device.as_str())
            && matches!(&r.event, Event::DpsResponse { status, operation_status, .. }
                if *status == 401 || matches!(operation_status.as_deref(), Some("failed" | "disabled")))
    };
    let _ = cx.cloud.log().wait_for(cx.timing.recovery, told).await;
    cx.hold().await;
    let m = mark(cx.cloud);
    cx.apply(Fault::Unblock(hubswap_mock_cloud::fault::DeviceArg {
        device,
    }))
    .await?;
    cx.recovered(m, cx.timing.blocked_recovery, "it was unblocked")
        .await
        .map(|_| ())
}

/// The device is disabled on its hub, which answers its CONNECTs with `connack` (3: server
/// unavailable, as IoT Hub does for a disabled device; 5: not authorized, as for a device whose
/// hub identity refuses it), while DPS keeps assigning that hub.
async fn device_disabled(cx: &Ctx<'_>, connack: u8) -> Result<(), String> {
    let device = cx.device.to_owned();
    let with = |code| {
        Fault::Options(OptionsPatch {
            disabled_connack: Some(code),
            ..OptionsPatch::default()
        })
    };
    cx.apply(with(connack)).await?;
    let fault = DeviceOnHub {
        device: device.clone(),
        hub: Some(cx.hub.clone()),
        lifetime: Lifetime::default(),
    };
    cx.apply(Fault::Disable(fault.clone())).await?;
    cx.hold().await;
    let m = mark(cx.cloud);
    cx.apply(Fault::Enable(fault)).await?;
    let back = cx
        .recovered(m, cx.timing.recovery, "it was enabled again")
        .await
        .map(|_| ());
    cx.apply(with(3)).await?;
    back
}
