//! The policies a simulated device can run, behind one small trait.
//!
//! Every policy speaks the spec's vocabulary: it is handed [`Input`]s (commands, timer firings,
//! wire signals) with the time and a random draw, and answers with [`Action`]s. hubswap's policy
//! *is* `hubswap_spec::step`; the others are emulations of what the official SDKs and samples
//! do ([`super::emulation`]), each labelled with its parameters and their source.

use std::time::Duration;

use hubswap_spec::{Action, Assignment, Config, Env, Input, State};
use serde::Serialize;

/// What a report says about the policy it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    /// The name used on the command line.
    pub name: String,
    /// What it is, with its parameters.
    pub label: String,
    /// Where the parameters come from.
    pub source: String,
}

/// A device's retry policy, as the simulator drives it.
pub trait Policy {
    /// What the policy remembers per device.
    type State;
    /// The policy's name, parameters and sources.
    fn info(&self) -> PolicyInfo;
    /// The state before `Command::Start`, with the cache as the device's store holds it.
    fn init(&self, cache: Option<Assignment>) -> Self::State;
    /// One input at `env.now`; the actions go to `out`, in order.
    fn step(&self, state: &mut Self::State, input: &Input, env: Env, out: &mut Vec<Action>);
    /// How long after minting a token the device reconnects to renew it.
    fn renew_after(&self) -> Duration;
}

/// hubswap's policy: `hubswap_spec::step` itself, with a validated config.
#[derive(Debug, Clone)]
pub struct Hubswap {
    /// The config every device runs.
    pub config: Config,
    /// `hubswap` or `hubswap-paced`.
    pub name: &'static str,
}

impl Policy for Hubswap {
    type State = State;

    fn info(&self) -> PolicyInfo {
        let c = &self.config;
        let pacing = if c.reprovision_spread.is_zero() {
            String::from("no fleet pacing")
        } else {
            format!(
                "fleet pacing: the first question of an incident spread over {:.0} s (SPEC 4.1)",
                c.reprovision_spread.as_secs_f64()
            )
        };
        PolicyInfo {
            name: self.name.to_owned(),
            label: format!(
                "hubswap_spec::step: full jitter {:.1} s..{:.0} s, DPS after {} unreachable / {} CONNACK 3, \
                 then only when the gate opens ({:.0} s, doubling), the cache kept, \
                 fresh-token retry on CONNACK 5, blocked profile {:.0} s..{:.0} s, retry-after + 0..{:.0} s, {pacing}",
                c.fast.floor.as_secs_f64(),
                c.fast.cap.as_secs_f64(),
                c.unreachable_threshold,
                c.unavailable_threshold,
                c.recheck_floor(0).as_secs_f64(),
                c.slow.floor.as_secs_f64(),
                c.slow.cap.as_secs_f64(),
                c.retry_after_jitter.as_secs_f64(),
            ),
            source: String::from("spec/SPEC.md; the policy itself, not an emulation"),
        }
    }

    fn init(&self, cache: Option<Assignment>) -> State {
        State::new(cache)
    }

    fn step(&self, state: &mut State, input: &Input, env: Env, out: &mut Vec<Action>) {
        let owned = std::mem::replace(state, State::new(None));
        let next = hubswap_spec::step_owned(&self.config, owned, input, env);
        *state = next.state;
        out.extend(next.actions);
    }

    fn renew_after(&self) -> Duration {
        self.config.renew_after()
    }
}
