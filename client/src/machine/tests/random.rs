//! Random event sequences: every step must be one `spec::step` allows (a small version of the
//! conformance suite's randomised refinement check).

use std::time::Duration;

use hubswap_spec as spec;
use proptest::prelude::*;
use spec::{ConnectFailure, DpsReply, Draw, Timer, WireSignal};

use super::{Walk, hub};
use crate::machine::{ClientTimer, Event};

#[derive(Debug, Clone)]
enum Step {
    Feed(Event),
    /// Advance to the earliest spec timer and fire it.
    FireNext,
    /// Advance the clock.
    Sleep(u64),
}

fn signal() -> impl Strategy<Value = WireSignal> {
    prop_oneof![
        (0u8..7).prop_map(WireSignal::ConnAck),
        Just(WireSignal::ConnectFailed(ConnectFailure::Refused)),
        Just(WireSignal::ConnectFailed(ConnectFailure::Timeout)),
        Just(WireSignal::ConnectionLost),
        Just(WireSignal::DpsUnreachable),
        Just(WireSignal::TokenNearExpiry),
        prop_oneof![Just(200u16), Just(204), Just(429), Just(500)].prop_map(WireSignal::TwinStatus),
        prop_oneof![Just("a"), Just("b")].prop_map(|h| WireSignal::Dps(DpsReply::Assigned(hub(h)))),
        (0u64..5).prop_map(|s| WireSignal::Dps(DpsReply::Assigning {
            operation: "op".into(),
            retry_after: Some(Duration::from_secs(s)),
        })),
        Just(WireSignal::Dps(DpsReply::Failed {
            error_code: 400_209
        })),
        Just(WireSignal::Dps(DpsReply::Disabled)),
        prop_oneof![Just(401u16), Just(429), Just(500)].prop_map(|status| WireSignal::Dps(
            DpsReply::Status {
                status,
                retry_after: None
            }
        )),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => signal().prop_map(|s| Step::Feed(Event::signal(s))),
        3 => Just(Step::FireNext),
        1 => (0u64..120_000).prop_map(Step::Sleep),
        1 => prop_oneof![
            Just(Event::Subscribed),
            Just(Event::TwinSynced),
            Just(Event::TwinMalformed),
            Just(Event::ClientTimerFired(ClientTimer::TwinRetry)),
        ].prop_map(Step::Feed),
        1 => prop_oneof![
            Just(Event::command(spec::Command::ReprovisionNow)),
            Just(Event::timer(Timer::Wake)),
            Just(Event::timer(Timer::Renew)),
        ].prop_map(Step::Feed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_client_step_is_a_spec_step(
        cached in any::<bool>(),
        steps in proptest::collection::vec((step(), any::<u32>()), 1..60),
        stop_at_end in any::<bool>(),
    ) {
        let mut w = Walk::new(cached.then(|| hub("a")));
        w.start();
        for (s, draw) in steps {
            w.draw = Draw(draw);
            match s {
                Step::Feed(ev) => { w.feed(&ev); }
                Step::FireNext => if w.m.abstraction().timers.earliest().is_some() { w.fire_next(); },
                Step::Sleep(ms) => w.now = w.now.plus(Duration::from_millis(ms)),
            }
        }
        if stop_at_end {
            w.feed(&Event::command(spec::Command::Stop));
            prop_assert!(w.m.abstraction().timers.is_empty());
        }
    }
}
