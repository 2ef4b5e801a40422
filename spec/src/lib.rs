//! `hubswap-spec`: the formal specification of how an IoT Central device provisions, connects
//! to its hub, and reacts to every failure. It is the single source of truth for the client,
//! the mock cloud and the conformance suite.
//!
//! # Architecture
//!
//! The spec is a pure transition system, `#![no_std]` with `alloc`, so that firmware can
//! embed it:
//!
//! ```text
//!   Input ──► step(&Config, &State, &Input, Env{now, draw}) ──► Step { State, Vec<Action> }
//!   (commands, timer firings,              (pure: no IO, no clock,      (register, poll, mint,
//!    classified wire signals)               no OS randomness)            connect, close, timers,
//!                                                                        persist/invalidate cache)
//! ```
//!
//! | module | SPEC.md | what |
//! | --- | --- | --- |
//! | [`state`] | §1.1, §1.3 | [`State`], [`Phase`], the assignment cache, timers |
//! | [`io`] | §1.2 | [`Input`], [`Command`], [`Action`], [`Env`] |
//! | [`mod@classify`] | §2 | [`WireSignal`] → [`Class`]: one table, one function |
//! | [`mod@step`] | §3, §4.2 | the transition function; DPS answers and the gate |
//! | [`mod@backoff`] | §4 | the pure backoff function and its bounds |
//! | [`guarantee`] | §5 | G1–G10 |
//! | [`invariants`] | §6 | state invariants |
//! | `model`, `promela` (feature `verification`) | §7 | the finite instance, its checks and ghosts, the SPIN export |
//! | [`trace`] | §8 | [`validate_trace`]: grading a recorded run from the cloud's side |
//! | `mutation` (feature `verification`) | §7.3 | seeded mutants that the checks must reject |
//!
//! # Driving the spec
//!
//! A driver owns the clock and the sockets. For each input it calls [`step()`], performs the
//! actions in order, and keeps the timers the actions arm. A timer that fires is handed back as
//! [`Input::TimerFired`]; a stale firing is ignored by the spec.
//!
//! ```
//! use hubswap_spec::{step, Action, Command, Config, Draw, Env, Input, Millis, State};
//!
//! let cfg = Config::default();
//! cfg.validate().unwrap();
//! let s = State::new(None); // no cached assignment
//! let out = step(&cfg, &s, &Input::Command(Command::Start), Env { now: Millis(0), draw: Draw(7) });
//! assert_eq!(out.actions[0], Action::Register); // no cache: ask DPS first
//! ```
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod backoff;
pub mod classify;
pub mod config;
pub mod guarantee;
pub mod invariants;
pub mod io;
#[cfg(feature = "verification")]
pub mod model;
#[cfg(feature = "verification")]
pub mod mutation;
#[cfg(feature = "verification")]
pub mod promela;
pub mod state;
pub mod step;
pub mod time;
pub mod trace;

pub use backoff::{Draw, RetryAfter, backoff};
pub use classify::{Class, ConnectFailure, DpsReply, WireSignal, classify};
pub use config::{Config, ConfigError, CredentialKind, Profile};
pub use guarantee::Guarantee;
pub use invariants::Violation;
pub use io::{Action, Command, Env, Input};
#[cfg(feature = "verification")]
pub use mutation::Mutation;
pub use state::{Assignment, AuthStage, Next, Phase, PhaseKind, State, Timer, Timers, Token};
pub use step::{Step, step, step_owned};
pub use time::Millis;
pub use trace::{
    Credential, Divergence, DpsAnswer, DpsRequest, GuaranteeGrade, Observation, Observed, Side,
    TraceCheck, Verdict, grade, validate_trace, validate_trace_with,
};
