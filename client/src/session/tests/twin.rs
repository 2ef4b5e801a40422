//! The application's twin requests: retried on 429 and 5xx with the spec's backoff, rejected at
//! once on other 4xx, resent after a reconnect.

use hubswap_spec::Millis;

use super::{Harness, fast, hub};
use crate::error::ClientError;
use crate::session::twin::MAX_TRIES;
use crate::session::{Event, HubEvent, Output, TwinOp, TwinResult};

/// The `$rid` of the last reported-properties PATCH handed to the link.
fn last_patch_rid(h: &Harness) -> Option<String> {
    h.log.iter().rev().find_map(|o| match o {
        Output::Publish { topic, .. } => topic
            .strip_prefix("$iothub/twin/PATCH/properties/reported/?$rid=")
            .map(str::to_owned),
        _ => None,
    })
}

fn answer(h: &mut Harness, rid: &str, status: u16) -> Vec<Output> {
    h.hub_event(HubEvent::Publish {
        topic: format!("$iothub/twin/res/{status}/?$rid={rid}&$version=7"),
        payload: Vec::new(),
    })
}

fn answered(outs: &[Output]) -> Option<TwinResult> {
    outs.iter().find_map(|o| match o {
        Output::TwinAnswered { handle: 9, result } => Some(result.clone()),
        _ => None,
    })
}

fn ready_with_patch() -> Harness {
    let mut h = Harness::new(fast(), Some(hub("a")), 11);
    h.start();
    h.feed(Event::Twin {
        handle: 9,
        op: TwinOp::Patch(serde_json::json!({"t": 1})),
    });
    assert!(last_patch_rid(&h).is_none(), "nothing is sent before ready");
    h.come_online();
    h
}

#[test]
fn a_throttled_patch_is_retried_after_a_backoff_and_then_succeeds() {
    let mut h = ready_with_patch();
    let rid = last_patch_rid(&h).expect("sent once ready");
    let at = h.now;
    assert!(answered(&answer(&mut h, &rid, 429)).is_none());
    // Not sent again before the fast profile's floor.
    assert_eq!(last_patch_rid(&h).as_deref(), Some(rid.as_str()));
    let release = h.s.poll_timeout().expect("a retry is armed");
    assert!(release >= at.plus(fast().fast.floor), "{release:?}");
    h.fire_next();
    let again = last_patch_rid(&h).expect("sent again");
    assert_ne!(again, rid, "a retry carries a new $rid");
    let got = answered(&answer(&mut h, &again, 204));
    assert_eq!(got, Some(TwinResult::Reported(Ok(Some(7)))));
    assert!(h.s.policy().phase != hubswap_spec::Phase::Idle);
}

#[test]
fn other_4xx_are_rejected_at_once_and_5xx_after_the_last_try() {
    let mut h = ready_with_patch();
    let rid = last_patch_rid(&h).expect("sent");
    let got = answered(&answer(&mut h, &rid, 400));
    assert_eq!(
        got,
        Some(TwinResult::Reported(Err(ClientError::Rejected {
            status: 400
        })))
    );

    let mut h = ready_with_patch();
    let mut sends = 0;
    let result = loop {
        let rid = last_patch_rid(&h).expect("sent");
        sends += 1;
        if let Some(r) = answered(&answer(&mut h, &rid, 503)) {
            break r;
        }
        while last_patch_rid(&h).as_deref() == Some(rid.as_str()) {
            h.fire_next();
        }
    };
    assert_eq!(sends, MAX_TRIES);
    assert_eq!(
        result,
        TwinResult::Reported(Err(ClientError::Rejected { status: 503 }))
    );
}

#[test]
fn an_unanswered_request_is_resent_on_the_next_connection() {
    let mut h = ready_with_patch();
    let rid = last_patch_rid(&h).expect("sent");
    h.hub_event(HubEvent::Lost);
    // Its late answer on the old connection is dropped with the connection.
    answer(&mut h, &rid, 204);
    h.fire_next();
    h.come_online();
    let again = last_patch_rid(&h).expect("resent");
    assert_ne!(again, rid);
    assert!(answered(&answer(&mut h, &again, 200)).is_some());
    assert!(h.now > Millis::ZERO);
}
