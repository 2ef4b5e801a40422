//! Walks through the machine, checked step by step against `spec::step`.

mod guarantees;
mod online;
mod random;

use hubswap_spec as spec;
use spec::{Action as SpecAction, Assignment, Config, Draw, Env, Input, Millis, Timer};

use super::{Action, Event, Machine, State};

/// A machine under test plus a virtual clock; every step is checked for refinement.
pub(super) struct Walk {
    pub(super) m: Machine,
    pub(super) cfg: Config,
    pub(super) now: Millis,
    pub(super) draw: Draw,
    /// Every spec action emitted so far, with the time it was emitted.
    pub(super) log: Vec<(Millis, SpecAction)>,
}

pub(super) fn hub(name: &str) -> Assignment {
    Assignment {
        hub: format!("{name}.azure-devices.net"),
        device_id: "dev1".into(),
    }
}

impl Walk {
    pub(super) fn new(cache: Option<Assignment>) -> Self {
        Self::with(Config::default(), cache)
    }

    pub(super) fn with(cfg: Config, cache: Option<Assignment>) -> Self {
        cfg.validate().expect("test config is valid");
        Self {
            m: Machine::new(cfg.clone(), cache),
            cfg,
            now: Millis::ZERO,
            draw: Draw(0x8000_0000),
            log: Vec::new(),
        }
    }

    /// Feeds one event and checks the refinement obligation and the spec invariants.
    pub(super) fn feed(&mut self, ev: &Event) -> Vec<Action> {
        let before = self.m.abstraction();
        let env = Env {
            now: self.now,
            draw: self.draw,
        };
        let out = self.m.handle(ev, env);
        let after = self.m.abstraction();
        let policy: Vec<SpecAction> = out
            .iter()
            .filter_map(|a| match a {
                Action::Policy(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        if let Some(input) = ev.input() {
            let expect = spec::step(&self.cfg, &before, input, env);
            assert_eq!(
                after, expect.state,
                "state diverges from spec::step on {ev:?}"
            );
            assert_eq!(
                policy, expect.actions,
                "actions diverge from spec::step on {ev:?}"
            );
        } else {
            assert_eq!(
                after, before,
                "a client event changed the abstraction: {ev:?}"
            );
            assert!(
                policy.is_empty(),
                "a client event emitted spec actions: {ev:?}"
            );
        }
        spec::invariants::check(&self.cfg, &after).expect("spec invariants hold");
        self.log.extend(policy.into_iter().map(|a| (self.now, a)));
        out
    }

    pub(super) fn start(&mut self) -> Vec<Action> {
        self.feed(&Event::command(spec::Command::Start))
    }

    pub(super) fn signal(&mut self, s: spec::WireSignal) -> Vec<Action> {
        self.feed(&Event::signal(s))
    }

    /// Advances the clock to the earliest armed spec timer and fires it.
    pub(super) fn fire_next(&mut self) -> (Timer, Vec<Action>) {
        let (t, at) = self
            .m
            .abstraction()
            .timers
            .earliest()
            .expect("a timer is armed");
        self.now = self.now.max(at);
        (t, self.feed(&Event::Spec(Input::TimerFired(t))))
    }

    /// Fires timers until the machine leaves `Waiting`.
    pub(super) fn wake(&mut self) -> Vec<Action> {
        assert!(
            matches!(self.m.state(), State::Waiting { .. }),
            "not waiting: {:?}",
            self.m.state()
        );
        let (t, out) = self.fire_next();
        assert_eq!(t, Timer::Wake);
        out
    }

    /// Connects through CONNACK 0, SUBACK and the twin GET; ends in `Ready`.
    pub(super) fn connect_fully(&mut self) {
        if matches!(self.m.state(), State::Waiting { .. }) {
            self.wake();
        }
        assert!(
            matches!(self.m.state(), State::Connecting { .. }),
            "{:?}",
            self.m.state()
        );
        self.signal(spec::WireSignal::ConnAck(0));
        self.feed(&Event::Subscribed);
        self.feed(&Event::TwinSynced);
        assert!(
            matches!(self.m.state(), State::Ready { .. }),
            "{:?}",
            self.m.state()
        );
    }

    pub(super) fn count(&self, pred: impl Fn(&SpecAction) -> bool) -> usize {
        self.log.iter().filter(|(_, a)| pred(a)).count()
    }

    pub(super) fn is(&self, pred: impl Fn(&State) -> bool) -> bool {
        pred(self.m.state())
    }
}

pub(super) fn has(out: &[Action], a: &Action) -> bool {
    out.contains(a)
}
