//! Deciding situations (SPEC §8.1): what must have happened to one device before a guarantee's
//! "pass" says anything. One refusal does not exercise G1; the threshold being reached, or the
//! device going to DPS after refusals, does. A guarantee whose situation never happened is
//! "not exercised", however clean the trace.

use alloc::vec::Vec;

use crate::Config;
use crate::classify::Class;
use crate::classify::{WireSignal, classify};
use crate::guarantee::Guarantee;

use super::observation::{DpsRequest, Observed, Side};

/// What one device's trace has shown so far, as far as deciding situations go.
#[derive(Debug, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each flag is one pending situation, independent of the others"
)]
pub(super) struct Situations {
    /// Hub refusals (reset, timeout, TLS) in a row since the last accepted connect or DPS request.
    refused_run: u32,
    /// CONNACK 3 in a row, likewise.
    unavailable_run: u32,
    /// A hub-side refusal since the last DPS request.
    hub_refused: bool,
    /// A CONNACK 5 (or 2, 4) not yet followed by an attempt.
    auth_refused: bool,
    /// DPS said blocked, and has not yet assigned a hub since.
    blocked: bool,
    /// DPS throttled, and the device has not yet asked again.
    throttled: bool,
    /// A transient error (CONNACK 3, a drop by the cloud, DPS 5xx) not yet followed by a retry.
    transient: bool,
    /// Transient errors in a row that were each followed by a retry.
    transient_retries: u32,
    /// Any failure not yet followed by an attempt.
    failed: bool,
    /// DPS did not answer (throttled, transient, dropped), and the device has not tried a hub.
    dps_unanswered: bool,
}

impl Situations {
    /// Feeds one observation; returns the guarantees whose deciding situation it completes.
    /// The block and the unblock happened: G4 is decided.
    fn unblocked(&mut self, decided: &mut Vec<Guarantee>) {
        if core::mem::take(&mut self.blocked) {
            decided.push(Guarantee::G4);
        }
    }

    pub(super) fn observe(&mut self, c: &Config, event: &Observed) -> Vec<Guarantee> {
        use Guarantee as G;
        let mut decided = Vec::new();
        match event {
            Observed::HubConnect { .. } => {
                self.attempt(&mut decided);
                if self.transient {
                    self.transient_retries += 1;
                    if self.transient_retries >= 2 {
                        decided.push(G::G5);
                    }
                }
                if self.dps_unanswered {
                    decided.push(G::G10);
                }
                self.transient = false;
                self.dps_unanswered = false;
            }
            Observed::DpsRequest(DpsRequest::Poll) => {
                // Part of a registration already counted; only the retry-after rule applies.
                if self.throttled {
                    decided.push(G::G6);
                }
                self.throttled = false;
            }
            Observed::DpsRequest(DpsRequest::Register) => {
                self.attempt(&mut decided);
                if self.refused_run > 0 {
                    decided.push(G::G1);
                }
                if self.unavailable_run > 0 {
                    decided.push(G::G3);
                }
                if self.hub_refused {
                    decided.push(G::G9);
                }
                if self.throttled {
                    decided.push(G::G6);
                }
                self.refused_run = 0;
                self.unavailable_run = 0;
                self.hub_refused = false;
                self.throttled = false;
            }
            Observed::HubRefused { .. } => {
                self.refused_run += 1;
                if self.refused_run >= c.unreachable_threshold {
                    decided.push(G::G1);
                }
                self.hub_refused = true;
                self.failed = true;
            }
            Observed::ConnAck { code } => match classify(&WireSignal::ConnAck(*code)) {
                Class::Accepted => {
                    self.refused_run = 0;
                    self.unavailable_run = 0;
                    self.transient_retries = 0;
                    // Back on its hub after DPS said blocked.
                    self.unblocked(&mut decided);
                }
                Class::Unavailable => {
                    self.unavailable_run += 1;
                    if self.unavailable_run >= c.unavailable_threshold {
                        decided.push(G::G3);
                    }
                    self.hub_refused = true;
                    self.transient = true;
                    self.failed = true;
                }
                Class::AuthRefused => {
                    self.auth_refused = true;
                    self.hub_refused = true;
                    self.failed = true;
                }
                _ => self.failed = true,
            },
            Observed::Disconnect { by: Side::Cloud } => {
                self.transient = true;
                self.failed = true;
            }
            Observed::DpsResponse(answer) => match answer.class() {
                Class::Blocked => self.blocked = true,
                Class::Assigned(_) => self.unblocked(&mut decided),
                Class::Throttled { .. } => {
                    self.throttled = true;
                    self.dps_unanswered = true;
                    self.failed = true;
                }
                Class::DpsTransient | Class::Dropped => {
                    self.dps_unanswered = true;
                    self.transient = true;
                    self.failed = true;
                }
                _ => {}
            },
            Observed::Disconnect { .. } | Observed::End => {}
        }
        decided
    }

    /// Any attempt: a refused token and any failure are now followed by one.
    fn attempt(&mut self, decided: &mut Vec<Guarantee>) {
        if self.auth_refused {
            decided.push(Guarantee::G2);
        }
        if self.failed {
            decided.push(Guarantee::G7);
        }
        self.auth_refused = false;
        self.failed = false;
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use core::time::Duration;

    use super::super::observation::DpsAnswer;
    use super::*;

    fn decided(events: &[Observed]) -> Vec<Guarantee> {
        let c = Config::default();
        let mut s = Situations::default();
        let mut all: Vec<Guarantee> = events.iter().flat_map(|e| s.observe(&c, e)).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn connect() -> Observed {
        Observed::HubConnect {
            hub: "h".to_string(),
            credential: None,
        }
    }

    fn refused() -> Observed {
        Observed::HubRefused {
            hub: "h".to_string(),
        }
    }

    fn register() -> Observed {
        Observed::DpsRequest(DpsRequest::Register)
    }

    fn answer(a: DpsAnswer) -> Observed {
        Observed::DpsResponse(a)
    }

    fn assigned() -> Observed {
        answer(DpsAnswer::Assigned {
            hub: "h".to_string(),
        })
    }

    #[test]
    fn one_refusal_decides_nothing_but_the_threshold_or_dps_decides_g1() {
        assert_eq!(decided(&[connect(), refused()]), []);
        let threshold = Config::default().unreachable_threshold as usize;
        let mut run = alloc::vec![connect()];
        for _ in 0..threshold {
            run.extend([refused(), connect()]);
        }
        assert!(decided(&run).contains(&Guarantee::G1));
        assert!(decided(&[connect(), refused(), register()]).contains(&Guarantee::G1));
    }

    #[test]
    fn a_block_decides_g4_once_dps_assigns_again_or_the_hub_accepts() {
        let blocked = answer(DpsAnswer::Failed {
            error_code: 400_209,
        });
        assert!(!decided(&[register(), blocked.clone(), register()]).contains(&Guarantee::G4));
        assert!(
            decided(&[register(), blocked.clone(), register(), assigned()])
                .contains(&Guarantee::G4)
        );
        let accepted = Observed::ConnAck { code: 0 };
        assert!(!decided(&[register(), blocked.clone(), connect()]).contains(&Guarantee::G4));
        assert!(decided(&[register(), blocked, connect(), accepted]).contains(&Guarantee::G4));
    }

    #[test]
    fn a_throttled_answer_decides_g6_with_the_next_request() {
        let throttled = answer(DpsAnswer::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(2)),
        });
        assert!(!decided(&[register(), throttled.clone()]).contains(&Guarantee::G6));
        let then = decided(&[register(), throttled, register()]);
        assert!(then.contains(&Guarantee::G6));
    }

    #[test]
    fn growth_needs_two_transient_errors_each_retried() {
        let refuse3 = Observed::ConnAck { code: 3 };
        assert!(!decided(&[connect(), refuse3.clone(), connect()]).contains(&Guarantee::G5));
        let twice = [connect(), refuse3.clone(), connect(), refuse3, connect()];
        assert!(decided(&twice).contains(&Guarantee::G5));
    }

    #[test]
    fn a_refused_token_decides_g2_with_the_next_attempt_and_any_failure_g7() {
        let refuse5 = Observed::ConnAck { code: 5 };
        assert_eq!(decided(&[connect(), refuse5.clone()]), []);
        let d = decided(&[connect(), refuse5, connect()]);
        assert!(d.contains(&Guarantee::G2) && d.contains(&Guarantee::G7));
    }
}
