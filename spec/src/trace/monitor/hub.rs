//! The monitor's hub side: the start of every hub attempt, whether it reached CONNECT or was
//! refused at TCP accept (G1, G2 and the thresholds of G3).

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use super::{Broken, Monitor, Pending};
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::time::Millis;
use crate::trace::observation::Credential;

impl Monitor {
    pub(super) fn hub_connect(
        &mut self,
        cfg: &Config,
        tol: Duration,
        at: Millis,
        hub: &str,
        credential: Option<Credential>,
    ) -> Result<(), Broken> {
        let refused = self.refused_fingerprint.take();
        self.hub_attempt(cfg, tol, at, hub)?;
        if let (Some(fp), Some(c)) = (refused, credential)
            && c.fingerprint == fp
        {
            return Err((
                Guarantee::G2,
                String::from("reconnected with the token the hub refused"),
            ));
        }
        self.pending = Some(Pending { credential });
        Ok(())
    }

    /// A hub attempt starts at `at`: spacing and floors, a DPS question that is due, and the
    /// hub DPS assigned.
    pub(super) fn hub_attempt(
        &mut self,
        cfg: &Config,
        tol: Duration,
        at: Millis,
        hub: &str,
    ) -> Result<(), Broken> {
        self.attempt_start(cfg, tol, at, true)?;
        if let Some((due, g)) = self.question_due
            && !self.asked
            && at > due.plus(tol)
        {
            let what = match g {
                Guarantee::G1 => "unreachable failures",
                Guarantee::G2 => "auth refusals (the fresh token too)",
                _ => "CONNACK 3 refusals",
            };
            return Err((
                g,
                format!("hub connect after the threshold of {what} without DPS"),
            ));
        }
        if let Some(assigned) = self.assigned.take()
            && assigned != hub
        {
            return Err((
                Guarantee::G1,
                format!("connected to {hub}, but DPS assigned {assigned}"),
            ));
        }
        self.known_hub = Some(String::from(hub));
        Ok(())
    }
}
