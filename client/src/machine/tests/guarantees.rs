//! One walk per guarantee of SPEC §5, each step checked against `spec::step` by [`Walk::feed`].

use std::time::Duration;

use hubswap_spec as spec;
use spec::{Action as SpecAction, ConnectFailure, DpsReply, Draw, Next, WireSignal};

use super::{Walk, hub};
use crate::machine::{Action, State};

fn is_attempt(a: &SpecAction) -> bool {
    matches!(a, SpecAction::Register | SpecAction::ConnectHub(_))
}

/// G7's spacing, checked over everything a walk emitted.
fn assert_spacing(w: &Walk) {
    let starts: Vec<_> = w
        .log
        .iter()
        .filter(|(_, a)| is_attempt(a))
        .map(|(t, _)| *t)
        .collect();
    for pair in starts.windows(2) {
        assert!(
            pair[1].since(pair[0]) >= w.cfg.min_attempt_spacing,
            "attempts too close: {pair:?}"
        );
    }
}

fn waiting_for(w: &Walk, next: &Next) -> Duration {
    let State::Waiting { next: n } = w.m.state() else {
        panic!("not waiting: {:?}", w.m.state())
    };
    assert_eq!(n, next);
    let at =
        w.m.abstraction()
            .timers
            .get(spec::Timer::Wake)
            .expect("wake armed");
    at.since(w.now)
}

#[test]
fn g1_unreachable_hub_reprovisions_after_threshold_failed_connects() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    for i in 1..=w.cfg.unreachable_threshold {
        assert!(
            w.is(|s| matches!(s, State::Connecting { .. })),
            "attempt {i}: {:?}",
            w.m.state()
        );
        w.signal(WireSignal::ConnectFailed(ConnectFailure::Refused));
        if i < w.cfg.unreachable_threshold {
            waiting_for(&w, &Next::Connect);
            w.wake();
        }
    }
    assert_eq!(
        w.count(|a| matches!(a, SpecAction::ConnectHub(_))),
        w.cfg.unreachable_threshold as usize
    );
    // G10: asking DPS is a question; the cache stays.
    assert_eq!(w.count(|a| *a == SpecAction::InvalidateAssignment), 0);
    waiting_for(&w, &Next::Register);
    w.wake();
    assert!(w.is(|s| matches!(s, State::Registering {})));
    assert_spacing(&w);
}

#[test]
fn g2_refused_fresh_token_goes_to_dps_at_once() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    assert_eq!(w.m.state(), &State::Connecting { fresh_token: true });
    w.signal(WireSignal::ConnAck(5));
    // A fresh token was refused: no second token; ask DPS after a jittered backoff.
    let d = waiting_for(&w, &Next::Register);
    assert!(d >= w.cfg.fast.floor && d <= w.cfg.fast.cap, "{d:?}");
    assert_eq!(w.count(|a| matches!(a, SpecAction::MintToken { .. })), 1);
}

#[test]
fn g2_stale_token_is_renewed_once_then_dps_once_then_backoff() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    w.now = w.now.plus(Duration::from_secs(5));
    w.signal(WireSignal::ConnectionLost);
    w.wake();
    assert_eq!(w.m.state(), &State::Connecting { fresh_token: false });
    w.signal(WireSignal::ConnAck(5));
    w.wake();
    // The retry carries a freshly minted token.
    assert_eq!(w.m.state(), &State::Connecting { fresh_token: true });
    assert_eq!(w.count(|a| matches!(a, SpecAction::MintToken { .. })), 2);
    w.signal(WireSignal::ConnAck(5));
    // The fresh token was refused too: DPS, after a jittered backoff.
    let d = waiting_for(&w, &Next::Register);
    assert!(d >= w.cfg.fast.floor, "{d:?}");
    w.wake();
    w.signal(WireSignal::Dps(DpsReply::Assigned(hub("a"))));
    // Sent back to the hub that refused: back off on it, and DPS only when the gate opens.
    let d = waiting_for(&w, &Next::Connect);
    assert!(d >= w.cfg.fast.floor, "{d:?}");
    w.wake();
    w.signal(WireSignal::ConnAck(5));
    waiting_for(&w, &Next::Connect);
    assert_spacing(&w);
}

#[test]
fn g3_connack_3_reprovisions_within_threshold() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    for i in 1..=w.cfg.unavailable_threshold {
        w.signal(WireSignal::ConnAck(3));
        if i < w.cfg.unavailable_threshold {
            waiting_for(&w, &Next::Connect);
            w.wake();
        }
    }
    waiting_for(&w, &Next::Register);
    assert_eq!(w.count(|a| *a == SpecAction::InvalidateAssignment), 0);
    assert_spacing(&w);
}

#[test]
fn g4_blocked_device_uses_the_slow_profile_and_never_gives_up() {
    let mut w = Walk::new(None);
    w.draw = Draw::MIN;
    w.start();
    for _ in 0..6 {
        assert!(
            w.is(|s| matches!(s, State::Registering {})),
            "{:?}",
            w.m.state()
        );
        w.signal(WireSignal::Dps(DpsReply::Failed {
            error_code: 400_209,
        }));
        let d = waiting_for(&w, &Next::Register);
        assert!(d >= w.cfg.slow.floor && d <= w.cfg.slow.cap, "{d:?}");
        w.wake();
    }
    assert_eq!(w.m.status().reason, Some(crate::status::Reason::DpsBlocked));
    w.signal(WireSignal::Dps(DpsReply::Assigned(hub("a"))));
    w.connect_fully();
    assert!(!w.m.abstraction().blocked);
    assert_spacing(&w);
}

#[test]
fn g5_internal_errors_back_off_exponentially_on_the_same_hub() {
    let mut w = Walk::new(Some(hub("a")));
    w.draw = Draw::MAX;
    w.start();
    w.connect_fully();
    let mut delays = Vec::new();
    for _ in 0..8 {
        w.now = w.now.plus(Duration::from_secs(1));
        w.signal(WireSignal::ConnectionLost);
        assert!(matches!(
            w.feed(&crate::machine::Event::Subscribed).as_slice(),
            []
        ));
        delays.push(waiting_for(&w, &Next::Connect));
        w.connect_fully();
    }
    assert_eq!(w.count(|a| *a == SpecAction::Register), 0, "no early DPS");
    for pair in delays.windows(2) {
        assert!(pair[1] >= pair[0], "{delays:?}");
    }
    assert!(
        delays
            .iter()
            .all(|d| *d >= w.cfg.fast.floor && *d <= w.cfg.fast.cap),
        "{delays:?}"
    );
    assert!(delays.last() > delays.first(), "{delays:?}");
}

#[test]
fn g5_dps_500_retries_the_same_request() {
    let mut w = Walk::new(None);
    w.start();
    w.signal(WireSignal::Dps(DpsReply::Status {
        status: 500,
        retry_after: None,
    }));
    waiting_for(&w, &Next::Register);
    w.wake();
    w.signal(WireSignal::Dps(DpsReply::Assigning {
        operation: "op1".into(),
        retry_after: None,
    }));
    w.wake();
    assert_eq!(
        w.m.state(),
        &State::Polling {
            operation: "op1".into()
        }
    );
    w.signal(WireSignal::Dps(DpsReply::Status {
        status: 503,
        retry_after: None,
    }));
    waiting_for(
        &w,
        &Next::Poll {
            operation: "op1".into(),
        },
    );
}

#[test]
fn g6_dps_429_waits_at_least_retry_after() {
    let mut w = Walk::new(None);
    w.draw = Draw::MIN;
    w.start();
    let ra = Duration::from_secs(10);
    w.signal(WireSignal::Dps(DpsReply::Status {
        status: 429,
        retry_after: Some(ra),
    }));
    let d = waiting_for(&w, &Next::Register);
    assert!(d >= ra, "{d:?}");
    assert_eq!(
        w.m.status().reason,
        Some(crate::status::Reason::DpsThrottled)
    );
}

#[test]
fn g7_stop_is_final() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    let out = w.feed(&crate::machine::Event::command(spec::Command::Stop));
    assert!(out.contains(&Action::Policy(SpecAction::Close)));
    assert!(out.contains(&Action::SuspendOutbox));
    assert_eq!(w.m.state(), &State::Stopped {});
    for ev in [
        crate::machine::Event::command(spec::Command::Start),
        crate::machine::Event::command(spec::Command::ReprovisionNow),
        crate::machine::Event::timer(spec::Timer::Wake),
        crate::machine::Event::signal(WireSignal::ConnAck(0)),
        crate::machine::Event::Subscribed,
    ] {
        assert!(w.feed(&ev).is_empty(), "{ev:?}");
    }
}

#[test]
fn g7_token_is_renewed_by_a_planned_reconnect_and_stable_resets_backoff() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    let (t, _) = w.fire_next();
    assert_eq!(t, spec::Timer::Stable);
    assert_eq!(w.m.abstraction().attempt, 0);
    let (t, out) = w.fire_next();
    assert_eq!(t, spec::Timer::Renew);
    assert_eq!(w.now.since(spec::Millis::ZERO), w.cfg.renew_after());
    let pos = |a: &Action| out.iter().position(|x| x == a);
    let close = pos(&Action::Policy(SpecAction::Close)).expect("close");
    let connect = pos(&Action::Policy(SpecAction::ConnectHub(hub("a")))).expect("reconnect");
    assert!(close < connect);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Policy(SpecAction::MintToken { .. })))
    );
    // The outbox is suspended (and requeues what is unacked), so the renewal loses nothing.
    assert!(out.contains(&Action::SuspendOutbox));
    assert_eq!(w.m.state(), &State::Connecting { fresh_token: true });
    assert_eq!(
        w.m.status().reason,
        Some(crate::status::Reason::TokenRenewal)
    );
    w.connect_fully();
}

#[test]
fn g8_connects_once_the_cloud_behaves() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    // Two failed connects, then DPS throttles the question: back to the cached hub.
    for f in [
        WireSignal::ConnectFailed(ConnectFailure::Timeout),
        WireSignal::ConnectFailed(ConnectFailure::Reset),
    ] {
        w.signal(f);
        w.wake();
    }
    assert!(w.is(|s| matches!(s, State::Registering {})));
    w.signal(WireSignal::Dps(DpsReply::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(3)),
    }));
    waiting_for(&w, &Next::Connect);
    let start = w.now;
    w.connect_fully();
    assert!(w.now.since(start) <= w.cfg.recovery_bound());
    assert_eq!(w.m.abstraction().cache, Some(hub("a")));
    assert_spacing(&w);
}

#[test]
fn attempt_timeout_abandons_a_stalled_connect() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    let (t, out) = w.fire_next();
    assert_eq!(t, spec::Timer::AttemptTimeout);
    assert!(out.contains(&Action::Policy(SpecAction::Close)));
    assert_eq!(
        w.m.status().reason,
        Some(crate::status::Reason::AttemptTimeout)
    );
}
