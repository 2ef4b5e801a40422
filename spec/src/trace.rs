//! Trace validation (SPEC §8): is a run the cloud recorded a behaviour the spec allows?
//!
//! The vocabulary holds only what a cloud can see — DPS requests and answers, hub connects,
//! their CONNACK codes, refusals and disconnects, each with a timestamp — so the same check
//! grades devices that hubswap did not write. Each device is checked by a [`Monitor`], an
//! observer automaton whose rules are the cloud-visible parts of G1–G10.

use alloc::collections::BTreeMap;
use alloc::string::String;

pub mod grade;
mod monitor;
mod observation;
mod situations;

pub use grade::{GuaranteeGrade, Verdict, grade};
pub use monitor::Monitor;
pub use observation::{
    Credential, Divergence, DpsAnswer, DpsRequest, Observation, Observed, Side, TraceCheck,
};

/// Checks a trace against the default [`Config`](crate::Config) with a 100 ms tolerance.
pub fn validate_trace(observations: &[Observation]) -> Result<(), Divergence> {
    validate_trace_with(&TraceCheck::default(), observations)
}

/// Checks a trace, device by device, in timestamp order within each device.
pub fn validate_trace_with(
    check: &TraceCheck,
    observations: &[Observation],
) -> Result<(), Divergence> {
    let mut monitors: BTreeMap<&str, Monitor> = BTreeMap::new();
    let end = observations
        .iter()
        .filter(|o| o.event == Observed::End)
        .map(|o| o.at)
        .max();
    for (i, o) in observations.iter().enumerate() {
        if o.event == Observed::End {
            continue;
        }
        let m = monitors.entry(o.device.as_str()).or_default();
        m.observe(check, o.at, &o.event)
            .map_err(|(g, reason)| Divergence {
                guarantee: g,
                step: i,
                at: o.at,
                device: o.device.clone(),
                reason,
            })?;
    }
    if let Some(end) = end {
        for (device, m) in &mut monitors {
            m.observe(check, end, &Observed::End)
                .map_err(|(g, reason)| Divergence {
                    guarantee: g,
                    step: observations.len().saturating_sub(1),
                    at: end,
                    device: String::from(*device),
                    reason,
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
