//! The event loop: every device's policy against the cloud model, in virtual time.

use hubswap_spec::{Action, Command, Draw, Env, Input, Millis, Timer, WireSignal};
mod faults;
mod wire;

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

use super::cloud::{CloudParams, Hub, Window};
use super::policy::Policy;
use super::queue::{Ev, Queue};
use super::scenario::{Plan, ScenarioParams, Setup, T0, in_subset, timeline_end};
use super::stats::{Stats, Status};

/// No hub: the device holds no connection.
const NONE: u8 = u8::MAX;
/// The DPS operation ends `failed` (the device is blocked).
const FAILED: u8 = u8::MAX;
/// Flags of [`Dev::flags`].
const DISABLED: u8 = 1;
const BLOCKED: u8 = 2;
const SUBSET: u8 = 4;
const MOVED: u8 = 8;

/// What the simulator keeps per device besides the policy's state.
#[derive(Debug)]
pub(crate) struct Dev {
    rng: Pcg32,
    /// The current attempt; an answer to an older one is dropped.
    seq: u32,
    /// The DPS operation this device last created, when it is done, and where it points.
    op: u32,
    op_ready: u64,
    op_hub: u8,
    /// The operation the poll in flight asks about.
    poll_op: u32,
    poll_window_start: u64,
    polls_in_window: u8,
    /// The hub holding this device's connection, or [`NONE`].
    link: u8,
    pub(crate) status: Status,
    /// Where DPS allocates the device now, and where it first did.
    home: u8,
    pub(crate) first_home: u8,
    flags: u8,
    token_exp: u64,
    /// Per spec timer: the deadline the policy armed, and the queue entry standing for it.
    timers: [TimerSlot; 4],
    pub(crate) counts: super::stats::DeviceCounts,
}

/// No deadline, in a [`TimerSlot`].
const UNSET: u64 = u64::MAX;

/// A device's timer as the engine keeps it: the deadline the policy armed and the one the
/// queue holds an entry for, [`UNSET`] when none (no `Option`, to keep a device small).
#[derive(Debug, Clone, Copy)]
struct TimerSlot {
    armed: u64,
    queued: u64,
}

impl Default for TimerSlot {
    fn default() -> Self {
        Self {
            armed: UNSET,
            queued: UNSET,
        }
    }
}

fn timer_index(t: Timer) -> usize {
    match t {
        Timer::Wake => 0,
        Timer::AttemptTimeout => 1,
        Timer::Stable => 2,
        Timer::Renew => 3,
    }
}

/// The fleet-wide conditions a scenario switches on and off.
#[derive(Debug, Clone, Copy, Default)]
struct Conditions {
    /// DPS answers 503.
    dps_outage: bool,
    /// Every hub answers CONNACK 5.
    auth_blip: bool,
    /// The fleet's network is down.
    uplink_down: bool,
}

/// One simulation in progress.
pub(crate) struct Engine<'a, P: Policy> {
    policy: &'a P,
    cloud: &'a CloudParams,
    plan: &'a Plan,
    states: Vec<P::State>,
    pub(crate) devs: Vec<Dev>,
    hubs: Vec<Hub>,
    hub_names: Vec<String>,
    register_quota: Window,
    poll_quota: Window,
    now_failing: Conditions,
    q: Queue,
    rng: Pcg32,
    now: u64,
    out: Vec<Action>,
    warm_accept: bool,
    /// How far before the timeline a warm fleet's tokens were minted (ms), if not the policy's
    /// renewal period.
    token_spread: Option<u64>,
    pub(crate) stats: Stats,
}

impl<'a, P: Policy> Engine<'a, P> {
    /// A fleet of `n` devices, set up as the plan says.
    pub(crate) fn new(
        policy: &'a P,
        cloud: &'a CloudParams,
        scenario: &ScenarioParams,
        plan: &'a Plan,
        n: u32,
        seed: u64,
    ) -> Self {
        let hubs = cloud.hubs.max(1);
        let devs = (0..n)
            .map(|i| {
                let home = u8::try_from(i % u32::from(hubs)).unwrap_or(0);
                Dev {
                    rng: Pcg32::new(seed, u64::from(i)),
                    seq: 0,
                    op: 0,
                    op_ready: 0,
                    op_hub: home,
                    poll_op: 0,
                    poll_window_start: 0,
                    polls_in_window: 0,
                    link: NONE,
                    status: Status::Idle,
                    home,
                    first_home: home,
                    flags: if in_subset(i, scenario.device_percent) {
                        SUBSET
                    } else {
                        0
                    },
                    token_exp: 0,
                    timers: [TimerSlot::default(); 4],
                    counts: super::stats::DeviceCounts::default(),
                }
            })
            .collect::<Vec<_>>();
        let mut e = Self {
            policy,
            cloud,
            plan,
            states: Vec::with_capacity(devs.len()),
            hubs: (0..hubs).map(|_| Hub::new(cloud)).collect(),
            hub_names: (0..hubs).map(|h| format!("hub-{h}")).collect(),
            register_quota: Window::new(cloud.registrations_per_minute),
            poll_quota: Window::new(cloud.polls_per_minute),
            now_failing: Conditions::default(),
            q: Queue::default(),
            rng: Pcg32::seed_from_u64(seed ^ 0x5EED_C10D),
            now: 0,
            out: Vec::new(),
            warm_accept: false,
            token_spread: scenario
                .token_age_spread_secs
                .map(|s| super::scenario::mins(s / 60.0)),
            stats: Stats::new(n, hubs, plan.incidents.len()),
            devs,
        };
        e.setup();
        e
    }

    fn setup(&mut self) {
        let cold = self.plan.setup == Setup::Cold;
        for d in 0..self.devs.len() {
            let cache = (!cold).then(|| self.assignment(self.devs[d].home));
            self.states.push(self.policy.init(cache));
        }
        let spread = match self.plan.setup {
            Setup::Cold => {
                for d in 0..self.n() {
                    self.q.push(T0, Ev::Boot(d));
                }
                return;
            }
            Setup::Warm => self
                .token_spread
                .unwrap_or_else(|| super::ms(self.policy.renew_after())),
            Setup::WarmTogether => 60_000,
        };
        for d in 0..self.n() {
            let back = draw_below(&mut self.devs[d as usize].rng, spread);
            self.now = T0 - back.min(T0);
            self.warm_accept = true;
            self.feed(d, &Input::Command(Command::Start));
            self.warm_accept = false;
            let dev = &mut self.devs[d as usize];
            dev.link = dev.home;
            let seq = dev.seq;
            let exp = dev.token_exp;
            self.set_status(d, Status::Connected);
            if self.cloud.enforce_expiry {
                self.q.push(exp, Ev::Expire { dev: d, seq });
            }
            self.feed(d, &Input::Signal(WireSignal::ConnAck(0)));
            self.devs[d as usize].counts = super::stats::DeviceCounts::default();
        }
        self.now = 0;
    }

    fn n(&self) -> u32 {
        u32::try_from(self.devs.len()).unwrap_or(u32::MAX)
    }

    /// Runs to the end: after the last fault step, once every device an incident affected is
    /// connected again, or at the horizon. (A large fleet is never all connected at one instant:
    /// some device is always reconnecting to renew its token.)
    pub(crate) fn run(&mut self, horizon_ms: u64, progress: &mut dyn FnMut(u64)) {
        for (i, (at, _)) in self.plan.steps.iter().enumerate() {
            self.q
                .push(T0 + at, Ev::Step(u16::try_from(i).unwrap_or(u16::MAX)));
        }
        let last = T0 + super::ms(timeline_end(self.plan));
        let end = last + horizon_ms;
        let steps = self.plan.steps.len();
        let mut done = 0;
        while let Some((at, ev)) = self.q.pop() {
            if at > end {
                self.now = end;
                break;
            }
            self.now = at;
            self.stats.advance(at);
            self.stats.events += 1;
            if self.stats.events.is_multiple_of(1 << 16) {
                progress(at.saturating_sub(T0) / 1000);
            }
            done += usize::from(matches!(ev, Ev::Step(_)));
            self.handle(ev);
            if done == steps && self.stats.down == 0 {
                break;
            }
        }
        self.stats.finish(self.now, self.q.len());
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Boot(d) => self.feed(d, &Input::Command(Command::Start)),
            Ev::Timer(d, t) => self.timer(d, t),
            Ev::DpsArrive { dev, seq, poll } => self.dps(dev, seq, poll),
            Ev::HubArrive { dev, seq, hub } => self.hub_arrive(dev, seq, hub),
            Ev::HubServe { dev, seq, hub } => self.hub_serve(dev, seq, hub),
            Ev::Expire { dev, seq } => {
                let d = &self.devs[dev as usize];
                if d.seq == seq && d.link != NONE {
                    self.drop_link(dev);
                }
            }
            Ev::Step(i) => {
                if let Some(&(_, change)) = self.plan.steps.get(usize::from(i)) {
                    self.change(change);
                }
            }
        }
    }

    /// A queued timer entry is due: fire it if the timer is still armed for now, or queue it
    /// again for its later deadline. At most one entry per device and timer is queued, so
    /// re-armed and cancelled timers do not pile up in the queue.
    fn timer(&mut self, d: u32, t: Timer) {
        let slot = &mut self.devs[d as usize].timers[timer_index(t)];
        if slot.queued != self.now {
            return;
        }
        slot.queued = UNSET;
        let at = slot.armed;
        if at <= self.now {
            self.feed(d, &Input::TimerFired(t));
        } else if at != UNSET {
            slot.queued = at;
            self.q.push(at, Ev::Timer(d, t));
        }
    }

    /// Hands one input to device `d`'s policy and performs its actions.
    fn feed(&mut self, d: u32, input: &Input) {
        let dev = &mut self.devs[d as usize];
        let env = Env {
            now: Millis(self.now),
            draw: Draw(dev.rng.next_u32()),
        };
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.policy
            .step(&mut self.states[d as usize], input, env, &mut out);
        for a in out.drain(..) {
            self.act(d, a);
        }
        self.out = out;
    }

    fn act(&mut self, d: u32, a: Action) {
        let now = self.now;
        match a {
            Action::Register | Action::Poll { .. } => {
                let poll = matches!(a, Action::Poll { .. });
                let dev = &mut self.devs[d as usize];
                dev.seq += 1;
                if let Action::Poll { operation } = &a {
                    dev.poll_op = parse_operation(operation).unwrap_or(u32::MAX);
                    dev.counts.polls += 1;
                } else {
                    dev.counts.registers += 1;
                }
                let seq = dev.seq;
                self.set_status(d, Status::Dps);
                let at = now + self.latency(self.cloud.dps_latency_ms);
                self.q.push(at, Ev::DpsArrive { dev: d, seq, poll });
            }
            Action::MintToken { expires_at } => self.devs[d as usize].token_exp = expires_at.0,
            Action::ConnectHub(assignment) => {
                let hub = self
                    .hub_names
                    .iter()
                    .position(|h| *h == assignment.hub)
                    .and_then(|h| u8::try_from(h).ok())
                    .unwrap_or(NONE);
                let dev = &mut self.devs[d as usize];
                dev.seq += 1;
                dev.counts.connects += 1;
                let seq = dev.seq;
                self.set_status(d, Status::Connecting);
                if !self.warm_accept {
                    let at = now + self.latency(self.cloud.hub_latency_ms);
                    self.q.push(at, Ev::HubArrive { dev: d, seq, hub });
                }
            }
            Action::Close => {
                let dev = &mut self.devs[d as usize];
                dev.seq += 1;
                dev.link = NONE;
                self.set_status(d, Status::Waiting);
            }
            Action::ArmTimer { timer, at } => {
                let at = at.0.max(now);
                let slot = &mut self.devs[d as usize].timers[timer_index(timer)];
                slot.armed = at;
                if at < slot.queued {
                    slot.queued = at;
                    self.q.push(at, Ev::Timer(d, timer));
                }
            }
            Action::CancelTimer(timer) => {
                self.devs[d as usize].timers[timer_index(timer)].armed = UNSET;
            }
            Action::InvalidateAssignment => self.devs[d as usize].counts.invalidations += 1,
            Action::PersistAssignment(_) => {}
        }
    }

    fn latency(&mut self, (lo, hi): (u64, u64)) -> u64 {
        let span = hi.saturating_sub(lo);
        lo + draw_below(&mut self.rng, span + 1)
    }

    fn set_status(&mut self, d: u32, s: Status) {
        let dev = &mut self.devs[d as usize];
        let old = dev.status;
        dev.status = s;
        let target = (dev.first_home, dev.flags & SUBSET != 0);
        self.stats.status_changed(d, old, s, target, self.now);
    }

    fn answer(&mut self, d: u32, signal: WireSignal) {
        self.set_status(d, Status::Waiting);
        self.feed(d, &Input::Signal(signal));
    }

    /// The hub closes device `d`'s connection.
    fn drop_link(&mut self, d: u32) {
        self.devs[d as usize].link = NONE;
        self.set_status(d, Status::Waiting);
        self.feed(d, &Input::Signal(WireSignal::ConnectionLost));
    }
}

/// Whether a device is in the scenario's subset.
fn in_the_subset(dev: &Dev) -> bool {
    dev.flags & SUBSET != 0
}

/// The operation number in an operation id `"{device}-{n}"`.
fn parse_operation(op: &str) -> Option<u32> {
    op.rsplit_once('-')?.1.parse().ok()
}

/// A uniform draw in `0..bound` (0 when `bound` is 0).
fn draw_below(rng: &mut Pcg32, bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let wide = u128::from(rng.next_u64()) * u128::from(bound);
    u64::try_from(wide >> 64).unwrap_or(0)
}
