//! The monitor at its boundaries: exact bounds, normalization, grading once per fault.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::Monitor;
use crate::config::Config;
use crate::guarantee::Guarantee;
use crate::time::Millis;
use crate::trace::{
    Credential, DpsAnswer, DpsRequest, Observation, Observed, Side, TraceCheck, grade,
    validate_trace_with,
};

fn check() -> TraceCheck {
    TraceCheck {
        config: Config::default(),
        tolerance: Duration::from_millis(50),
    }
}

fn ms(v: u64) -> Millis {
    Millis(v)
}

fn connect(hub: &str, fp: u64) -> Observed {
    Observed::HubConnect {
        hub: hub.into(),
        credential: Some(Credential {
            fingerprint: fp,
            valid_for: Duration::from_hours(1),
        }),
    }
}

fn trace(events: &[(u64, Observed)]) -> Vec<Observation> {
    events
        .iter()
        .map(|(at, event)| Observation {
            at: ms(*at),
            device: String::from("dev"),
            event: event.clone(),
        })
        .collect()
}

/// Assigned to hub-a and connected at 3 s.
fn provisioned() -> Vec<(u64, Observed)> {
    alloc::vec![
        (0, Observed::DpsRequest(DpsRequest::Register)),
        (
            100,
            Observed::DpsResponse(DpsAnswer::Assigned {
                hub: "hub-a".into()
            })
        ),
        (1_000, connect("hub-a", 1)),
        (1_100, Observed::ConnAck { code: 0 }),
    ]
}

fn verdict(events: &[(u64, Observed)]) -> Option<Guarantee> {
    validate_trace_with(&check(), &trace(events))
        .err()
        .map(|d| d.guarantee)
}

#[test]
fn the_silence_bound_is_exact() {
    let c = check();
    let bound = c.config.longest_delay() + c.config.attempt_timeout + c.config.spacing(true);
    let at = 10_000 + crate::time::ms(bound + c.tolerance);
    let mut t = provisioned();
    t.push((10_000, Observed::Disconnect { by: Side::Cloud }));
    let mut ok = t.clone();
    ok.push((at, Observed::End));
    assert_eq!(verdict(&ok), None, "exactly at the bound");
    t.push((at + 1, Observed::End));
    assert_eq!(verdict(&t), Some(Guarantee::G7), "1 ms past it");
}

#[test]
fn a_blocked_device_retries_within_one_slow_period_exactly() {
    let c = check();
    let bound = c.config.slow.cap + c.config.spacing(true) + c.tolerance;
    let blocked = alloc::vec![
        (0, Observed::DpsRequest(DpsRequest::Register)),
        (
            100,
            Observed::DpsResponse(DpsAnswer::Failed {
                error_code: 400_209
            })
        ),
    ];
    let at = 100 + crate::time::ms(bound);
    let mut ok = blocked.clone();
    ok.push((at, Observed::DpsRequest(DpsRequest::Register)));
    assert_eq!(verdict(&ok), None);
    let mut late = blocked;
    late.push((at + 1, Observed::DpsRequest(DpsRequest::Register)));
    assert_eq!(verdict(&late), Some(Guarantee::G4));
}

#[test]
fn a_connection_may_last_until_its_token_expires_and_no_longer() {
    let c = check();
    let expiry = 1_100 + 3_600_000 + crate::time::ms(c.tolerance);
    let mut t = provisioned();
    t.push((expiry, Observed::Disconnect { by: Side::Device }));
    assert_eq!(verdict(&t), None);
    let mut t = provisioned();
    t.push((expiry + 1, Observed::Disconnect { by: Side::Device }));
    assert_eq!(verdict(&t), Some(Guarantee::G7));
}

#[test]
fn divergences_name_what_was_skipped() {
    let mut t = provisioned();
    t.extend([
        (
            10_000,
            Observed::HubRefused {
                hub: "hub-a".into(),
            },
        ),
        (11_000, connect("hub-a", 2)),
        (
            11_100,
            Observed::HubRefused {
                hub: "hub-a".into(),
            },
        ),
        (12_000, connect("hub-a", 3)),
    ]);
    let d = validate_trace_with(&check(), &trace(&t)).expect_err("G1");
    assert!(d.reason.contains("unreachable"), "{}", d.reason);
    let mut t = provisioned();
    t.extend([
        (10_000, Observed::Disconnect { by: Side::Cloud }),
        (11_000, connect("hub-a", 1)),
        (11_100, Observed::ConnAck { code: 5 }),
        (12_000, connect("hub-a", 2)),
        (12_100, Observed::ConnAck { code: 5 }),
        (13_000, connect("hub-a", 3)),
    ]);
    let d = validate_trace_with(&check(), &trace(&t)).expect_err("G2");
    assert_eq!(d.guarantee, Guarantee::G2);
    assert!(d.reason.contains("auth"), "{}", d.reason);
}

#[test]
fn registrations_outside_an_incident_are_not_gated() {
    let mut t = provisioned();
    let no = DpsAnswer::Status {
        status: 503,
        retry_after: None,
    };
    t.extend([
        (100_000, Observed::DpsRequest(DpsRequest::Register)),
        (100_100, Observed::DpsResponse(no)),
        (101_000, connect("hub-a", 2)),
        (101_100, Observed::ConnAck { code: 0 }),
        (102_000, Observed::DpsRequest(DpsRequest::Register)),
    ]);
    assert_eq!(verdict(&t), None, "no failure, so no gate");
}

#[test]
fn dps_right_after_a_drop_breaks_g5() {
    let mut t = provisioned();
    t.extend([
        (10_000, Observed::Disconnect { by: Side::Cloud }),
        (11_000, Observed::DpsRequest(DpsRequest::Register)),
    ]);
    assert_eq!(verdict(&t), Some(Guarantee::G5));
}

#[test]
fn an_assignment_must_be_used_within_spacing_and_timeout_exactly() {
    let c = check();
    let bound = c.config.spacing(false) + c.config.attempt_timeout + c.tolerance;
    let assigned = alloc::vec![
        (0, Observed::DpsRequest(DpsRequest::Register)),
        (
            100,
            Observed::DpsResponse(DpsAnswer::Assigned {
                hub: "hub-a".into()
            })
        ),
    ];
    let mut ok = assigned.clone();
    ok.push((100 + crate::time::ms(bound), Observed::End));
    assert_eq!(verdict(&ok), None);
    let mut late = assigned;
    late.push((101 + crate::time::ms(bound), Observed::End));
    assert_eq!(verdict(&late), Some(Guarantee::G8));
}

#[test]
fn a_fault_is_graded_once_even_when_later_events_repeat_it() {
    let c = check();
    let bound = c.config.longest_delay() + c.config.attempt_timeout + c.config.spacing(true);
    let late = 10_000 + crate::time::ms(bound) + 10_000;
    let mut t = provisioned();
    t.extend([
        (10_000, Observed::Disconnect { by: Side::Cloud }),
        (late, connect("hub-a", 1)),
        (late + 100, Observed::ConnAck { code: 0 }),
        (late + 200, Observed::End),
    ]);
    let grades = grade(&c, &trace(&t));
    let g7 = grades
        .iter()
        .find(|g| g.guarantee == Guarantee::G7)
        .expect("G7 graded");
    assert_eq!(g7.divergences.len(), 1, "{:?}", g7.divergences);
}

#[test]
fn normalization_keeps_deadlines_that_can_still_matter() {
    let c = check();
    let mut m = Monitor::default();
    for (at, ev) in provisioned() {
        m.observe(&c, ms(at), &ev).expect("provisioned");
    }
    m.observe(&c, ms(10_000), &Observed::Disconnect { by: Side::Cloud })
        .expect("a drop");
    assert_eq!(m.normalized(&c, ms(10_200)).awaiting(), Some(Guarantee::G5));
    assert_eq!(m.normalized(&c, ms(11_000)).awaiting(), None);
    let mut m = Monitor::default();
    m.observe(&c, ms(0), &Observed::DpsRequest(DpsRequest::Register))
        .expect("register");
    let throttled = DpsAnswer::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(5)),
    };
    m.observe(&c, ms(100), &Observed::DpsResponse(throttled))
        .expect("429");
    assert_eq!(m.normalized(&c, ms(3_000)).awaiting(), Some(Guarantee::G6));
    assert_eq!(m.normalized(&c, ms(6_000)).awaiting(), None);
    // A normalized monitor judges the rest of a trace as the original does.
    let early = Observed::DpsRequest(DpsRequest::Register);
    let mut a = m.clone();
    let mut b = m.normalized(&c, ms(3_000));
    assert_eq!(
        a.observe(&c, ms(3_000), &early).map_err(|e| e.0),
        b.observe(&c, ms(3_000), &early).map_err(|e| e.0)
    );
}

#[test]
fn an_attempt_counts_as_in_flight_until_its_timeout_exactly() {
    let c = check();
    let timeout = crate::time::ms(c.config.attempt_timeout) - crate::time::ms(c.tolerance);
    let first = (0, Observed::DpsRequest(DpsRequest::Register));
    let ok = [
        first.clone(),
        (timeout, Observed::DpsRequest(DpsRequest::Register)),
    ];
    assert_eq!(verdict(&ok), None, "abandoned at the timeout");
    let early = [
        first,
        (timeout - 1, Observed::DpsRequest(DpsRequest::Register)),
    ];
    assert_eq!(verdict(&early), Some(Guarantee::G7));
}

#[test]
fn after_dps_was_asked_a_plain_500_may_be_followed_by_dps() {
    // DPS was asked in this incident and the connection that followed was not stable: the
    // gate, not G5, decides when DPS is asked next.
    let mut t = provisioned();
    t.extend([
        (
            10_000,
            Observed::HubRefused {
                hub: "hub-a".into(),
            },
        ),
        (11_000, connect("hub-a", 2)),
        (
            11_100,
            Observed::HubRefused {
                hub: "hub-a".into(),
            },
        ),
        (12_000, Observed::DpsRequest(DpsRequest::Register)),
        (
            12_100,
            Observed::DpsResponse(DpsAnswer::Assigned {
                hub: "hub-a".into(),
            }),
        ),
        (13_000, connect("hub-a", 3)),
        (13_100, Observed::ConnAck { code: 0 }),
        (14_000, Observed::Disconnect { by: Side::Cloud }),
        (15_000, connect("hub-a", 3)),
        (15_100, Observed::ConnAck { code: 3 }),
        (913_000, Observed::DpsRequest(DpsRequest::Register)),
    ]);
    assert_eq!(verdict(&t), None);
}

#[test]
fn the_g9_floor_survives_normalization_once_the_gate_is_saturated() {
    // A device that keeps failing on its hub and gets no answer from DPS: each question at
    // exactly its round's floor, trying the hub every minute in between, and the ninth one a
    // minute early, when the gate is long saturated.
    let c = check();
    let mut t = provisioned();
    let mut at = 10_000u64;
    t.push((
        at,
        Observed::HubRefused {
            hub: "hub-a".into(),
        },
    ));
    at += 1_000;
    t.push((at, connect("hub-a", 2)));
    t.push((
        at + 100,
        Observed::HubRefused {
            hub: "hub-a".into(),
        },
    ));
    at += 1_000;
    for round in 0..9u32 {
        t.push((at, Observed::DpsRequest(DpsRequest::Register)));
        let no = DpsAnswer::Status {
            status: 503,
            retry_after: None,
        };
        t.push((at + 100, Observed::DpsResponse(no)));
        let mut next = at + crate::time::ms(c.config.recheck_floor(round));
        if round == 7 {
            next -= 60_000;
        }
        let mut try_at = at + 1_000;
        while try_at + 1_000 < next {
            t.push((try_at, connect("hub-a", 3)));
            let refused = Observed::HubRefused {
                hub: "hub-a".into(),
            };
            t.push((try_at + 100, refused));
            try_at += 60_000;
        }
        at = next;
    }
    assert_eq!(verdict(&t), Some(Guarantee::G9), "batch");
    let mut m = Monitor::default();
    let mut got = None;
    for (when, ev) in &t {
        if let Err((g, _)) = m.observe(&c, ms(*when), ev) {
            got = Some(g);
            break;
        }
        m = m.normalized(&c, ms(*when));
    }
    assert_eq!(got, Some(Guarantee::G9), "normalized after every event");
}

#[test]
fn a_duplicate_disconnect_changes_nothing() {
    let mut t = provisioned();
    t.extend([
        (10_000, Observed::Disconnect { by: Side::Cloud }),
        (10_500, Observed::Disconnect { by: Side::Cloud }),
        (11_000, Observed::DpsRequest(DpsRequest::Register)),
    ]);
    assert_eq!(verdict(&t), Some(Guarantee::G5), "still a drop, then DPS");
}

fn refused(hub: &str) -> Observed {
    Observed::HubRefused { hub: hub.into() }
}

#[test]
fn refusals_at_accept_are_attempts_with_floors_and_a_threshold() {
    let c = check().config;
    let floor = crate::time::ms(c.fast.floor);
    let mut t = provisioned();
    t.push((10_000, Observed::Disconnect { by: Side::Cloud }));
    // A device hot-looping against a hub that resets at accept: no CONNECT, still graded.
    let mut hot = t.clone();
    for i in 0..5 {
        hot.push((10_000 + floor + i * 5, refused("hub-a")));
    }
    assert_eq!(verdict(&hot), Some(Guarantee::G7), "5 ms apart");
    // Spaced attempts past the threshold, without DPS: G1.
    let mut stuck = t.clone();
    for i in 0..4 {
        stuck.push((10_000 + (i + 1) * 3 * floor, refused("hub-a")));
    }
    assert_eq!(verdict(&stuck), Some(Guarantee::G1));
    // Two refusals, then DPS: conforms.
    let mut ok = t;
    ok.push((10_000 + 2 * floor, refused("hub-a")));
    ok.push((10_000 + 6 * floor, refused("hub-a")));
    ok.push((
        10_000 + 12 * floor,
        Observed::DpsRequest(DpsRequest::Register),
    ));
    ok.push((10_000 + 12 * floor + 50, Observed::End));
    assert_eq!(verdict(&ok), None);
}
