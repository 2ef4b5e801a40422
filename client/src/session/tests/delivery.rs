//! At-least-once delivery across drops, renewals, re-provisioning and hub switches; packet-id
//! bookkeeping; bad input from the hub.

use std::time::Duration;

use hubswap_spec::{self as spec, DpsReply, Millis, Timer};

use super::{Harness, fast, hub};
use crate::SendError;
use crate::session::{Event, HubEvent, Output};

fn ok_handles(h: &Harness) -> Vec<u64> {
    let mut v: Vec<u64> = h
        .settled()
        .into_iter()
        .filter_map(|(handle, r)| r.ok().and(handle))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn messages_survive_a_drop_a_renewal_a_reprovisioning_and_a_hub_switch() {
    let mut h = Harness::new(fast(), Some(hub("a")), 1);
    h.start();
    let mut handles: Vec<u64> = (0..3).map(|i| h.queue(&format!("m{i}"))).collect();
    h.come_online();
    h.write_all();
    // Only the first is acknowledged before the connection drops.
    let first = *h.unacked.keys().next().expect("written");
    h.hub_event(HubEvent::PubAck(first));
    assert_eq!(ok_handles(&h), vec![1]);
    h.hub_event(HubEvent::Lost);
    assert!(h.s.status().kind != crate::StatusKind::Connected);

    // Back on the same hub: the two unacknowledged ones go again, before a new one.
    h.fire_next();
    handles.push(h.queue("m3"));
    h.come_online();
    h.write_all();
    let pending: Vec<String> = h.unacked.values().cloned().collect();
    assert_eq!(pending.len(), 3, "{pending:?}");
    assert!(
        pending[0].ends_with("-2") && pending[1].ends_with("-3"),
        "{pending:?}"
    );

    // A planned renewal: the connection is replaced before any PUBACK.
    let renew =
        h.s.policy()
            .timers
            .get(Timer::Renew)
            .expect("renewal armed");
    h.now = h.now.max(renew);
    h.s.handle_timeout(h.now);
    h.drain();
    h.come_online();
    h.write_all();
    assert_eq!(h.unacked.len(), 3, "resent after the renewal");

    // The application asks to provision again; DPS moves the device to hub b.
    h.feed(Event::Command(spec::Command::ReprovisionNow));
    while h.dps.is_none() {
        h.fire_next();
    }
    h.dps_answer(DpsReply::Assigned(hub("b")));
    let answered = h.now;
    while h.connects().last().map(String::as_str) != Some("b.azure-devices.net") {
        assert!(
            h.now < answered.plus(Duration::from_mins(1)),
            "never connected to b"
        );
        h.fire_next();
    }
    h.come_online();
    h.write_all();
    assert_eq!(h.unacked.len(), 3, "resent on the new hub");
    h.ack_all();
    assert_eq!(ok_handles(&h), handles);
    assert_eq!(h.s.outbox_len(), 0);
    assert_eq!(h.settled().len(), 4, "each message settled exactly once");
}

#[test]
fn a_puback_settles_only_its_own_message_and_only_once() {
    let mut h = Harness::new(fast(), Some(hub("a")), 2);
    h.start();
    h.queue("x");
    h.queue("y");
    h.come_online();
    h.write_all();
    let (p1, p2) = (1u16, 2u16);
    h.hub_event(HubEvent::PubAck(9));
    assert!(
        h.settled().is_empty(),
        "an unknown packet id settles nothing"
    );
    h.hub_event(HubEvent::PubAck(p2));
    h.hub_event(HubEvent::PubAck(p2));
    let settled = h.settled();
    assert_eq!(settled.len(), 1);
    assert!(
        settled[0].1.as_ref().is_ok_and(|m| m.ends_with("-2")),
        "{settled:?}"
    );
    h.hub_event(HubEvent::PubAck(p1));
    assert_eq!(h.settled().len(), 2);
}

#[test]
fn events_of_an_abandoned_connection_change_nothing() {
    let mut h = Harness::new(fast(), Some(hub("a")), 3);
    h.start();
    h.queue("x");
    h.come_online();
    h.write_all();
    let old = h.generation;
    h.hub_event(HubEvent::Lost);
    h.fire_next();
    assert!(h.generation > old, "a new connection attempt");
    // The old connection's PUBACK and CONNACK arrive late.
    h.feed(Event::Hub {
        generation: old,
        event: HubEvent::PubAck(1),
    });
    h.feed(Event::Hub {
        generation: old,
        event: HubEvent::ConnAck(0),
    });
    assert!(h.settled().is_empty());
    assert!(matches!(h.s.policy().phase, spec::Phase::Connecting { .. }));
    // A stale DPS answer is ignored too.
    h.feed(Event::Dps {
        attempt: 99,
        signal: spec::WireSignal::Dps(DpsReply::Assigned(hub("z"))),
    });
    assert!(!h.connects().iter().any(|c| c.starts_with('z')));
}

#[test]
fn a_message_expires_while_it_waits_and_the_timeout_says_when() {
    let mut h = Harness::new(fast(), None, 4);
    h.start();
    h.next_ttl_queue("short", Duration::from_secs(2));
    let deadline = Millis(2_000);
    assert!(h.s.poll_timeout().is_some_and(|t| t <= deadline));
    while h.settled().is_empty() {
        assert!(h.now <= deadline, "not expired by its deadline");
        h.fire_next();
    }
    assert_eq!(h.settled()[0].1, Err(SendError::Expired));
    assert!(h.now >= deadline);
}

#[test]
fn shutdown_settles_every_message_and_request() {
    let mut h = Harness::new(fast(), Some(hub("a")), 5);
    h.start();
    h.queue("x");
    h.feed(Event::Twin {
        handle: 50,
        op: crate::session::TwinOp::Get,
    });
    let outs = h.feed(Event::Command(spec::Command::Stop));
    assert!(outs.contains(&Output::AbortDps));
    assert_eq!(h.settled(), vec![(Some(1), Err(SendError::Shutdown))]);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::TwinAnswered { handle: 50, .. }))
    );
    // After stop, new work is refused at once.
    h.queue("late");
    assert_eq!(h.settled().len(), 2);
    assert_eq!(h.s.status().kind, crate::StatusKind::Stopped);
}

#[test]
fn bad_hub_input_is_dropped_and_queued_telemetry_survives() {
    let mut h = Harness::new(fast(), Some(hub("a")), 6);
    h.start();
    for i in 0..3 {
        h.queue(&format!("m{i}"));
    }
    h.hub_event(HubEvent::ConnAck(0));
    h.hub_event(HubEvent::SubAck { refused: true });
    let rid = h.twin_rid.clone().expect("resync GET");
    // Invalid twin JSON: retried after a backoff; the connection stands.
    h.hub_event(HubEvent::Publish {
        topic: format!("$iothub/twin/res/200/?$rid={rid}"),
        payload: b"{not a twin".to_vec(),
    });
    let bad: [(&str, Vec<u8>); 6] = [
        ("some/other/topic", b"x".to_vec()),
        ("$iothub/methods/POST//?$rid=1", b"{}".to_vec()),
        ("devices/someone-else/messages/devicebound/", b"x".to_vec()),
        (
            "$iothub/twin/PATCH/properties/desired/?$version=2",
            b"[1,2".to_vec(),
        ),
        (
            "devices/dev1/messages/devicebound/",
            vec![b'x'; crate::MAX_MESSAGE + 1],
        ),
        ("$iothub/twin/res/200/?$rid=unknown", b"{}".to_vec()),
    ];
    for (topic, payload) in bad {
        let outs = h.hub_event(HubEvent::Publish {
            topic: topic.into(),
            payload,
        });
        assert!(
            !outs
                .iter()
                .any(|o| matches!(o, Output::Deliver(_) | Output::Settled(_))),
            "{topic}: {outs:?}"
        );
    }
    assert_eq!(h.s.outbox_len(), 3, "no queued message was lost");
    assert!(matches!(h.s.policy().phase, spec::Phase::Connected { .. }));
    // The retry gets a valid twin.
    while h.twin_rid.as_deref() == Some(rid.as_str()) {
        h.fire_next();
    }
    h.answer_resync();
}

#[test]
fn a_fresh_token_always_expires_later_than_the_refused_one() {
    let mut h = Harness::new(fast(), Some(hub("a")), 7);
    h.start();
    h.hub_event(HubEvent::ConnAck(5));
    while h.connects().len() < 2 {
        h.fire_next();
    }
    let expiries: Vec<Millis> = h
        .log
        .iter()
        .filter_map(|o| match o {
            Output::Connect {
                token_expires_at, ..
            } => Some(*token_expires_at),
            _ => None,
        })
        .collect();
    assert!(expiries.len() >= 2, "{expiries:?}");
    assert!(expiries[1].0 >= expiries[0].0 + 1_000, "{expiries:?}");
}
