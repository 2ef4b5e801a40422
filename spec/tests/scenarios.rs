//! Golden scenarios: each guarantee walked step by step through `step` with the default
//! config. They double as executable documentation of SPEC §3.

use std::time::Duration;

use hubswap_spec::{
    Action, Assignment, Command, Config, ConnectFailure, DpsReply, Draw, Env, Input, Millis, Next,
    Phase, State, Timer, WireSignal, step, step_owned,
};

struct Dev {
    cfg: Config,
    s: State,
    now: Millis,
    draw: Draw,
}

fn hub(h: &str) -> Assignment {
    Assignment {
        hub: h.into(),
        device_id: "dev".into(),
    }
}

impl Dev {
    fn new(cache: Option<Assignment>) -> Self {
        Self {
            cfg: Config::default(),
            s: State::new(cache),
            now: Millis(1_000_000),
            draw: Draw::MIN,
        }
    }
    fn input(&mut self, i: &Input) -> Vec<Action> {
        let env = Env {
            now: self.now,
            draw: self.draw,
        };
        let out = step(&self.cfg, &self.s, i, env);
        let owned = step_owned(&self.cfg, self.s.clone(), i, env);
        assert_eq!(owned, out, "step_owned is step without the copy");
        hubswap_spec::invariants::check(&self.cfg, &out.state).expect("invariants hold");
        self.s = out.state;
        out.actions
    }
    fn signal(&mut self, w: WireSignal) -> Vec<Action> {
        self.input(&Input::Signal(w))
    }
    /// Advances the clock to the earliest timer and fires it.
    fn fire_next(&mut self) -> (Timer, Duration, Vec<Action>) {
        let (t, at) = self.s.timers.earliest().expect("a timer is armed");
        let waited = at.since(self.now);
        self.now = at;
        (t, waited, self.input(&Input::TimerFired(t)))
    }
    fn connected(start_cache: Option<Assignment>) -> Self {
        let mut d = Self::new(start_cache);
        d.input(&Input::Command(Command::Start));
        if d.s.phase == Phase::Registering {
            d.signal(WireSignal::Dps(DpsReply::Assigned(hub("hub-a"))));
            if matches!(d.s.phase, Phase::Waiting { .. }) {
                d.fire_next();
            }
        }
        d.signal(WireSignal::ConnAck(0));
        assert!(matches!(d.s.phase, Phase::Connected { .. }));
        d
    }
}

fn has(actions: &[Action], pred: impl Fn(&Action) -> bool) -> bool {
    actions.iter().any(pred)
}

#[test]
fn a_cached_assignment_is_used_at_start_without_dps() {
    let mut d = Dev::new(Some(hub("hub-a")));
    let a = d.input(&Input::Command(Command::Start));
    assert!(has(&a, |x| matches!(x, Action::MintToken { .. })));
    assert!(has(&a, |x| *x == Action::ConnectHub(hub("hub-a"))));
    assert!(!has(&a, |x| *x == Action::Register));
}

#[test]
fn no_cache_registers_then_persists_and_connects() {
    let mut d = Dev::new(None);
    assert_eq!(
        d.input(&Input::Command(Command::Start))[0],
        Action::Register
    );
    let a = d.signal(WireSignal::Dps(DpsReply::Assigned(hub("hub-b"))));
    assert_eq!(a[1], Action::PersistAssignment(hub("hub-b")));
    let (_, waited, a) = d.fire_next();
    assert!(waited <= d.cfg.min_attempt_spacing);
    assert!(has(&a, |x| *x == Action::ConnectHub(hub("hub-b"))));
}

#[test]
fn g1_unreachable_hub_reprovisions_after_the_threshold() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.signal(WireSignal::ConnectionLost);
    d.fire_next();
    let a = d.signal(WireSignal::ConnectFailed(ConnectFailure::Refused));
    assert_eq!(
        d.s.phase,
        Phase::Waiting {
            next: Next::Connect
        }
    );
    assert!(!has(&a, |x| *x == Action::InvalidateAssignment));
    d.fire_next();
    let a = d.signal(WireSignal::ConnectFailed(ConnectFailure::Tls));
    assert!(!has(&a, |x| *x == Action::InvalidateAssignment), "G10");
    let (_, _, a) = d.fire_next();
    assert_eq!(a[0], Action::Register);
    assert_eq!(d.s.cache, Some(hub("hub-a")), "asking DPS is a question");
}

/// G9: DPS sends the device back to the hub that refused: it backs off on that hub and the
/// next registration waits for the gate, which doubles.
#[test]
fn g9_sent_back_to_the_same_hub_the_device_backs_off_and_the_gate_doubles() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.signal(WireSignal::ConnectionLost);
    let mut registrations = Vec::new();
    let started = d.now;
    while d.now.since(started) < Duration::from_hours(3) {
        let (_, _, a) = d.fire_next();
        if has(&a, |x| *x == Action::Register) {
            registrations.push(d.now.since(started));
            d.signal(WireSignal::Dps(DpsReply::Assigned(hub("hub-a"))));
            assert!(
                matches!(
                    d.s.phase,
                    Phase::Waiting {
                        next: Next::Connect
                    }
                ),
                "backs off on the hub first"
            );
        } else if has(&a, |x| matches!(x, Action::ConnectHub(_))) {
            d.signal(WireSignal::ConnAck(3));
        }
    }
    let budget = d.cfg.dps_budget(Duration::from_hours(3));
    assert!(
        registrations.len() <= budget as usize,
        "{} registrations in 3 h, budget {budget}: {registrations:?}",
        registrations.len()
    );
    for (k, w) in registrations.windows(2).enumerate() {
        let floor = d.cfg.recheck_floor(u32::try_from(k).unwrap_or(u32::MAX));
        assert!(
            w[1].saturating_sub(w[0]) >= floor,
            "round {k}: {:?} < {floor:?}",
            w[1].saturating_sub(w[0])
        );
    }
    assert_eq!(d.s.cache, Some(hub("hub-a")));
}

/// G10: while DPS does not answer, the device keeps trying the cached hub, and reconnects
/// when the hub comes back.
#[test]
fn g10_dps_down_the_device_goes_back_to_its_cached_hub() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.signal(WireSignal::ConnectionLost);
    for _ in 0..2 {
        d.fire_next();
        d.signal(WireSignal::ConnectFailed(ConnectFailure::Reset));
    }
    let (_, _, a) = d.fire_next();
    assert_eq!(a[0], Action::Register);
    d.signal(WireSignal::DpsUnreachable);
    assert!(matches!(
        d.s.phase,
        Phase::Waiting {
            next: Next::Connect
        }
    ));
    let (_, waited, a) = d.fire_next();
    assert!(waited <= d.cfg.fast.cap);
    assert!(has(&a, |x| *x == Action::ConnectHub(hub("hub-a"))));
    d.signal(WireSignal::ConnAck(0));
    assert!(matches!(d.s.phase, Phase::Connected { .. }));
}

/// X.509: no token to mint, so no fresh-token retry and no planned renewal.
#[test]
fn x509_skips_the_fresh_token_retry_and_the_renewal() {
    let mut d = Dev::new(Some(hub("hub-a")));
    d.cfg.credential = hubswap_spec::CredentialKind::X509;
    let a = d.input(&Input::Command(Command::Start));
    assert!(!has(&a, |x| matches!(x, Action::MintToken { .. })));
    let a = d.signal(WireSignal::ConnAck(0));
    assert!(!has(&a, |x| matches!(
        x,
        Action::ArmTimer {
            timer: Timer::Renew,
            ..
        }
    )));
    d.signal(WireSignal::ConnectionLost);
    d.fire_next();
    d.draw = Draw::MAX;
    d.signal(WireSignal::ConnAck(5));
    assert!(
        matches!(
            d.s.phase,
            Phase::Waiting {
                next: Next::Register
            }
        ),
        "the first refusal asks DPS"
    );
    let (_, waited, _) = d.fire_next();
    assert!(waited > Duration::ZERO, "jittered: {waited:?}");
}

/// SPEC §4.1: with fleet pacing, the incident's first DPS registration comes at
/// `draw * reprovision_spread` after the threshold (or at the backoff, if later), and the
/// cached hub is retried on the fast profile meanwhile.
#[test]
fn fleet_pacing_spreads_the_registration_after_a_hub_failure() {
    let spread = Duration::from_secs(132);
    for (draw, lo, hi) in [
        (Draw::MIN, Duration::ZERO, Duration::from_secs(4)),
        (Draw::MAX, spread, spread + Duration::from_secs(1)),
        (
            Draw(u32::MAX / 2),
            (spread / 2).saturating_sub(Duration::from_secs(1)),
            spread / 2 + Duration::from_secs(1),
        ),
    ] {
        let mut d = Dev::connected(Some(hub("hub-a")));
        d.cfg = Config::default().paced_for_fleet(1_000, 500);
        assert_eq!(d.cfg.reprovision_spread, spread);
        d.draw = draw;
        d.signal(WireSignal::ConnectionLost);
        d.fire_next();
        d.signal(WireSignal::ConnectFailed(ConnectFailure::Refused));
        d.fire_next();
        d.signal(WireSignal::ConnectFailed(ConnectFailure::Refused));
        let threshold = d.now;
        loop {
            let (_, waited, a) = d.fire_next();
            if a[0] == Action::Register {
                break;
            }
            assert!(waited <= d.cfg.fast.cap, "hub retries are not paced");
            assert!(has(&a, |x| *x == Action::ConnectHub(hub("hub-a"))));
            d.signal(WireSignal::ConnectFailed(ConnectFailure::Refused));
        }
        let waited = d.now.since(threshold);
        assert!(
            lo <= waited && waited <= hi,
            "{draw:?}: asked DPS {waited:?} after the threshold, expected within [{lo:?}, {hi:?}]"
        );
    }
}

#[test]
fn g2_expired_token_gets_one_fresh_token_then_dps() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.signal(WireSignal::ConnectionLost);
    let (_, _, a) = d.fire_next();
    assert!(
        !has(&a, |x| matches!(x, Action::MintToken { .. })),
        "a valid token is reused"
    );
    d.signal(WireSignal::ConnAck(5));
    let (_, waited, a) = d.fire_next();
    assert!(
        waited <= d.cfg.min_attempt_spacing,
        "the fresh-token retry does not back off"
    );
    assert!(has(&a, |x| matches!(x, Action::MintToken { .. })));
    d.signal(WireSignal::ConnAck(5));
    let (_, _, a) = d.fire_next();
    assert_eq!(a[0], Action::Register, "a refused fresh token goes to DPS");
}

#[test]
fn g3_connack_3_reprovisions_after_the_threshold() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.signal(WireSignal::ConnectionLost);
    d.fire_next();
    d.signal(WireSignal::ConnAck(3));
    assert_eq!(
        d.s.phase,
        Phase::Waiting {
            next: Next::Connect
        },
        "G5: the first 3 retries the hub"
    );
    d.fire_next();
    d.signal(WireSignal::ConnAck(3));
    assert_eq!(
        d.s.phase,
        Phase::Waiting {
            next: Next::Register
        }
    );
}

#[test]
fn g4_blocked_device_backs_off_slowly_and_recovers_on_assignment() {
    let mut d = Dev::new(None);
    d.input(&Input::Command(Command::Start));
    d.signal(WireSignal::Dps(DpsReply::Failed {
        error_code: 400_209,
    }));
    for _ in 0..5 {
        let (_, waited, a) = d.fire_next();
        assert!(
            waited >= d.cfg.slow.floor && waited <= d.cfg.slow.cap,
            "{waited:?}"
        );
        assert_eq!(a[0], Action::Register);
        d.signal(WireSignal::Dps(DpsReply::Status {
            status: 401,
            retry_after: None,
        }));
    }
    d.fire_next();
    d.signal(WireSignal::Dps(DpsReply::Assigned(hub("hub-a"))));
    assert!(!d.s.blocked);
}

#[test]
fn g5_internal_error_backs_off_within_the_fast_profile() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.draw = Draw::MAX;
    d.signal(WireSignal::ConnectionLost);
    let (_, waited, _) = d.fire_next();
    assert!(
        d.cfg.fast.floor <= waited && waited <= d.cfg.fast.floor + d.cfg.fast.initial,
        "{waited:?}"
    );
}

#[test]
fn g6_retry_after_is_honoured() {
    let mut d = Dev::new(None);
    d.input(&Input::Command(Command::Start));
    d.signal(WireSignal::Dps(DpsReply::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(10)),
    }));
    let (_, waited, a) = d.fire_next();
    assert!(
        waited >= Duration::from_secs(10)
            && waited <= Duration::from_secs(10) + d.cfg.retry_after_jitter
    );
    assert_eq!(a[0], Action::Register);
}

#[test]
fn g7_stop_is_final_and_stale_timers_are_ignored() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    assert!(
        d.input(&Input::TimerFired(Timer::Wake)).is_empty(),
        "a stale timer does nothing"
    );
    let a = d.input(&Input::Command(Command::Stop));
    assert_eq!(a[0], Action::Close);
    assert!(d.s.timers.is_empty());
    assert!(d.input(&Input::Command(Command::Start)).is_empty());
    assert!(d.signal(WireSignal::ConnAck(0)).is_empty());
}

#[test]
fn g7_token_is_renewed_by_a_planned_reconnect_and_backoff_resets_when_stable() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.s.attempt = 3;
    let (t, waited, _) = d.fire_next();
    assert_eq!((t, waited), (Timer::Stable, d.cfg.stable_after));
    assert_eq!(d.s.attempt, 0);
    let (t, waited, a) = d.fire_next();
    assert_eq!(
        (t, waited),
        (
            Timer::Renew,
            d.cfg.renew_after().saturating_sub(d.cfg.stable_after)
        )
    );
    assert_eq!(a[0], Action::Close);
    assert!(has(&a, |x| matches!(x, Action::MintToken { .. })));
}

/// Out-of-phase inputs change nothing: a hub signal while DPS is asked, a DPS answer while
/// connecting, a timer fired before its deadline.
#[test]
fn stale_and_early_inputs_are_ignored() {
    let mut d = Dev::new(None);
    d.input(&Input::Command(Command::Start));
    assert_eq!(d.s.phase, Phase::Registering);
    for sig in [
        WireSignal::ConnAck(0),
        WireSignal::ConnAck(3),
        WireSignal::ConnectionLost,
        WireSignal::TokenNearExpiry,
        WireSignal::TwinStatus(500),
    ] {
        let before = d.s.clone();
        assert!(d.signal(sig.clone()).is_empty(), "{sig:?}");
        assert_eq!(d.s, before, "{sig:?}");
    }
    let before = d.s.clone();
    assert!(
        d.input(&Input::TimerFired(Timer::AttemptTimeout))
            .is_empty()
    );
    assert_eq!(d.s, before, "a timer fired before its deadline is ignored");
    let mut d = Dev::connected(Some(hub("hub-a")));
    let before = d.s.clone();
    assert!(d.signal(WireSignal::DpsUnreachable).is_empty());
    assert!(d.input(&Input::TimerFired(Timer::Renew)).is_empty());
    assert_eq!(d.s, before);
}

/// A SAS device renews when its transport reports the token near expiry; X.509 has no token.
#[test]
fn token_near_expiry_renews_a_sas_token_only() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    let a = d.signal(WireSignal::TokenNearExpiry);
    assert_eq!(a[0], Action::CancelTimer(Timer::Renew));
    assert!(has(&a, |x| *x == Action::Close));
    assert!(matches!(
        d.s.phase,
        Phase::Waiting {
            next: Next::Connect
        } | Phase::Connecting { .. }
    ));
    let mut d = Dev::new(Some(hub("hub-a")));
    d.cfg.credential = hubswap_spec::CredentialKind::X509;
    d.input(&Input::Command(Command::Start));
    d.signal(WireSignal::ConnAck(0));
    let before = d.s.clone();
    assert!(d.signal(WireSignal::TokenNearExpiry).is_empty());
    assert_eq!(d.s, before);
}

/// Polls are not spaced: a `retry-after` of 0 polls at once. A hub signal while polling is stale.
#[test]
fn polls_are_not_spaced_and_ignore_hub_signals() {
    let mut d = Dev::new(None);
    d.input(&Input::Command(Command::Start));
    d.signal(WireSignal::Dps(DpsReply::Assigning {
        operation: "op".into(),
        retry_after: Some(Duration::ZERO),
    }));
    let (_, waited, a) = d.fire_next();
    assert_eq!(waited, Duration::ZERO);
    assert!(has(&a, |x| matches!(x, Action::Poll { .. })), "{a:?}");
    assert!(matches!(d.s.phase, Phase::Polling { .. }));
    let before = d.s.clone();
    for sig in [WireSignal::ConnAck(0), WireSignal::ConnectionLost] {
        assert!(d.signal(sig).is_empty());
    }
    assert_eq!(d.s, before);
}

/// G6 with a cache: a retry-after longer than the gate holds the gate closed for the whole
/// retry-after plus, with the longest draw, the whole jitter.
#[test]
fn a_long_retry_after_closes_the_gate_for_all_of_it() {
    let mut d = Dev::connected(Some(hub("hub-a")));
    d.signal(WireSignal::ConnectionLost);
    for _ in 0..2 {
        d.fire_next();
        d.signal(WireSignal::ConnAck(3));
    }
    d.fire_next();
    assert_eq!(d.s.phase, Phase::Registering);
    d.draw = Draw::MAX;
    let ra = d.cfg.recheck_floor(0) * 2; // the gate's longest first wait
    assert_eq!(ra, Duration::from_mins(30));
    d.signal(WireSignal::Dps(DpsReply::Status {
        status: 429,
        retry_after: Some(ra),
    }));
    let gate = d.s.recheck_at.expect("the gate is closed");
    assert!(
        gate >= d.now.plus(ra + d.cfg.retry_after_jitter),
        "{gate} too early"
    );
}
