//! The fault side of a live hub session: SAS expiry while connected (judged on the cloud's
//! clock, with the grace and revocations of the fault options), blackhole silence, and IoT Hub
//! fault injection (`AzIoTHub_FaultOperationType` in telemetry, spec/PROTOCOL.md §6).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use super::connect::TokenInfo;
use crate::fault::{Fault, FaultId, Inject, InjectKind};
use crate::log::FaultPhase;
use crate::overlay::Refusal;
use crate::registry::CloseHow;
use crate::shared::Shared;

/// What the hub learnt at CONNECT about an accepted connection.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub hub: String,
    pub conn: u64,
    pub device: String,
    pub model_id: Option<String>,
    pub token: Option<TokenInfo>,
}

/// Per-session fault state.
#[derive(Debug, Default)]
pub(crate) struct SessionFaults {
    token: Option<TokenInfo>,
    expiry: Option<Instant>,
    /// Blackholed: read and discard, never answer.
    pub silent: bool,
    inject: Option<(Instant, Inject, FaultId)>,
}

impl SessionFaults {
    pub(crate) fn new(shared: &Shared, token: Option<TokenInfo>) -> Self {
        let mut s = Self {
            token,
            ..Self::default()
        };
        s.arm(shared);
        s
    }

    /// When the token expires on the cloud's clock (with grace), if expiry drops connections.
    fn arm(&mut self, shared: &Shared) {
        let (grace, drop) = {
            let o = shared.faults.options();
            (o.token_grace_secs, o.drop_on_expiry)
        };
        self.expiry = self.token.filter(|_| drop).map(|t| {
            let now = i128::from(shared.clock.unix_secs());
            let left = i128::from(t.expiry) + i128::from(grace) - now;
            let left = u64::try_from(left.max(0)).unwrap_or(u64::MAX);
            Instant::now()
                .checked_add(Duration::from_secs(left))
                .unwrap_or_else(far_future)
        });
    }

    /// The next moment something must be checked.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (self.expiry, self.inject.as_ref().map(|i| i.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Re-judges the token: `Some` ends the connection.
    pub(crate) fn recheck(&mut self, shared: &Shared, device: &str) -> Option<(CloseHow, String)> {
        let t = self.token?;
        let revoked = shared.faults.lock().revoked(device, t.fingerprint);
        if revoked {
            return Some((CloseHow::Drop, "SAS token expired (forced)".into()));
        }
        self.arm(shared);
        self.expiry
            .filter(|e| *e <= Instant::now())
            .map(|_| (CloseHow::Drop, "SAS token expired".into()))
    }

    /// At [`SessionFaults::deadline`]: fire a due fault injection or re-judge the token.
    pub(crate) fn on_deadline(
        &mut self,
        shared: &Shared,
        device: &str,
    ) -> Option<(CloseHow, String)> {
        if self.inject.as_ref().is_some_and(|i| i.0 <= Instant::now())
            && let Some((_, inject, id)) = self.inject.take()
        {
            return Some(fire(shared, device, &inject, id));
        }
        self.recheck(shared, device)
    }

    /// Schedules a fault injection after its delay.
    pub(crate) fn schedule(&mut self, inject: Inject, id: FaultId) {
        let at = Instant::now() + inject.delay.unwrap_or_default();
        self.inject = Some((at, inject, id));
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_hours(24 * 365)
}

/// Reads the fault-injection properties of a telemetry message, if it carries them.
pub(crate) fn inject_from_properties(
    device: &str,
    props: &BTreeMap<String, String>,
) -> Option<Inject> {
    let kind = InjectKind::from_property(props.get("AzIoTHub_FaultOperationType")?)?;
    let secs = |k: &str| {
        props
            .get(k)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    };
    Some(Inject {
        device: device.to_owned(),
        kind,
        delay: secs("AzIoTHub_FaultOperationDelayInSecs"),
        duration: secs("AzIoTHub_FaultOperationDurationInSecs"),
        reason: props.get("AzIoTHub_FaultOperationCloseReason").cloned(),
    })
}

/// Logs a telemetry-triggered injection as applied and returns its id.
pub(crate) fn applied_from_telemetry(shared: &Shared, inject: &Inject) -> FaultId {
    let id = shared.faults.lock().next_id();
    shared.faults.log_fault(
        FaultPhase::Applied,
        id,
        &Fault::Inject(inject.clone()),
        "from telemetry properties".into(),
    );
    id
}

/// Fires an injection: how to close, why; in strict mode, refuses reconnects for its duration.
fn fire(shared: &Shared, device: &str, inject: &Inject, id: FaultId) -> (CloseHow, String) {
    let (how, code) = match inject.kind {
        InjectKind::KillTcp => (CloseHow::Reset, None),
        InjectKind::ShutDownMqtt => (CloseHow::Graceful, None),
        InjectKind::InvokeThrottling | InjectKind::InvokeMaxMessageQuota => {
            (CloseHow::Drop, Some(3))
        }
        InjectKind::InvokeAuthError => (CloseHow::Drop, Some(5)),
    };
    let mut detail = format!("{:?}: connection closed ({how:?})", inject.kind);
    {
        let mut faults = shared.faults.lock();
        if faults.options.inject_strict
            && let (Some(code), Some(d)) = (code, inject.duration)
        {
            faults.refusals.insert(
                device.to_owned(),
                Refusal {
                    until: std::time::Instant::now() + d,
                    code,
                },
            );
            let _ = write!(detail, "; reconnects refused with CONNACK {code} for {d:?}");
        }
    }
    shared.faults.log_fault(
        FaultPhase::Triggered,
        id,
        &Fault::Inject(inject.clone()),
        detail,
    );
    (how, format!("fault injection {:?}", inject.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_properties_parse_like_the_sdk_e2e_tests_send_them() {
        let props: BTreeMap<String, String> = [
            ("AzIoTHub_FaultOperationType", "KillTcp"),
            ("AzIoTHub_FaultOperationCloseReason", "boom"),
            ("AzIoTHub_FaultOperationDelayInSecs", "1"),
            ("AzIoTHub_FaultOperationDurationInSecs", "20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let i = inject_from_properties("d", &props).expect("a fault message");
        assert_eq!(i.kind, InjectKind::KillTcp);
        assert_eq!(i.delay, Some(Duration::from_secs(1)));
        assert_eq!(i.duration, Some(Duration::from_secs(20)));
        assert_eq!(i.reason.as_deref(), Some("boom"));
        assert!(inject_from_properties("d", &BTreeMap::new()).is_none());
    }
}
