//! The client's own states and events: subscriptions, twin resync, the outbox gate.

use hubswap_spec as spec;
use spec::{Action as SpecAction, Millis, WireSignal};

use super::{Walk, has, hub};
use crate::machine::{Action, ClientTimer, Event, State};
use crate::status::StatusKind;

#[test]
fn connack_opens_the_outbox_and_subscribes_then_twin_get_then_ready() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    assert_eq!(w.m.status().kind, StatusKind::Connecting);
    let out = w.signal(WireSignal::ConnAck(0));
    assert!(has(&out, &Action::Subscribe) && has(&out, &Action::OpenOutbox));
    assert_eq!(
        w.m.state(),
        &State::Subscribing {
            since: Millis::ZERO
        }
    );
    assert_eq!(w.m.status().kind, StatusKind::Syncing);
    let out = w.feed(&Event::Subscribed);
    assert_eq!(out, vec![Action::GetTwin]);
    let out = w.feed(&Event::TwinSynced);
    assert!(out.is_empty());
    assert_eq!(w.m.status().kind, StatusKind::Connected);
}

#[test]
fn twin_get_failures_are_retried_with_the_spec_backoff_and_keep_the_connection() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.signal(WireSignal::ConnAck(0));
    w.feed(&Event::Subscribed);
    let out = w.signal(WireSignal::TwinStatus(503));
    let Some(Action::ArmClientTimer {
        timer: ClientTimer::TwinRetry,
        at,
    }) = out.first().cloned()
    else {
        panic!("{out:?}")
    };
    let d = at.since(w.now);
    assert_eq!(d, spec::backoff(0, &w.cfg.fast, None, w.draw));
    assert!(w.is(|s| matches!(s, State::Syncing { .. })));
    w.now = at;
    assert_eq!(
        w.feed(&Event::ClientTimerFired(ClientTimer::TwinRetry)),
        vec![Action::GetTwin]
    );
    // A malformed twin body counts as a failed request too; the attempt number grows.
    let out = w.feed(&Event::TwinMalformed);
    let Some(Action::ArmClientTimer { at: at2, .. }) = out.first().cloned() else {
        panic!("{out:?}")
    };
    assert_eq!(
        at2.since(w.now),
        spec::backoff(1, &w.cfg.fast, None, w.draw)
    );
    w.feed(&Event::TwinSynced);
    assert!(w.is(|s| matches!(s, State::Ready { .. })));
}

#[test]
fn a_twin_2xx_status_changes_nothing() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    assert!(w.signal(WireSignal::TwinStatus(204)).is_empty());
}

#[test]
fn leaving_online_suspends_the_outbox_and_cancels_the_twin_retry() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    let out = w.signal(WireSignal::ConnectionLost);
    assert!(has(&out, &Action::SuspendOutbox));
    assert!(has(
        &out,
        &Action::CancelClientTimer(ClientTimer::TwinRetry)
    ));
    assert!(has(&out, &Action::Offline));
    // Spec actions come first, then the exit and entry actions.
    let first_client = out
        .iter()
        .position(|a| !matches!(a, Action::Policy(_)))
        .expect("client action");
    assert!(
        out[first_client..]
            .iter()
            .all(|a| !matches!(a, Action::Policy(_)))
    );
}

#[test]
fn stale_client_events_are_ignored_offline() {
    let mut w = Walk::new(None);
    w.start();
    for ev in [
        Event::Subscribed,
        Event::TwinSynced,
        Event::TwinMalformed,
        Event::ClientTimerFired(ClientTimer::TwinRetry),
    ] {
        assert!(w.feed(&ev).is_empty());
        assert_eq!(w.m.state(), &State::Registering {});
    }
}

#[test]
fn duplicate_client_events_online_are_ignored() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    assert!(w.feed(&Event::Subscribed).is_empty());
    assert!(w.feed(&Event::TwinSynced).is_empty());
    assert!(w.is(|s| matches!(s, State::Ready { .. })));
}

#[test]
fn reprovision_now_from_ready_closes_and_registers() {
    let mut w = Walk::new(Some(hub("a")));
    w.start();
    w.connect_fully();
    w.now = w.now.plus(std::time::Duration::from_secs(1));
    let out = w.feed(&Event::command(spec::Command::ReprovisionNow));
    assert!(has(&out, &Action::Policy(SpecAction::Close)));
    assert!(has(&out, &Action::Policy(SpecAction::InvalidateAssignment)));
    assert!(has(&out, &Action::Policy(SpecAction::Register)));
    assert_eq!(w.m.state(), &State::Registering {});
}
