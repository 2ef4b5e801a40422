//! `hubswap-conformance`: the evidence that hubswap's client conforms to the spec, and a
//! runner that grades any device program the same way.
//!
//! # Layout
//!
//! | module | what |
//! | --- | --- |
//! | [`e2e`] | fault scenarios end to end: real clients, real mock cloud, loopback sockets |
//! | [`drill`] | the fleet failover drill: a fleet of clients, an IoT Central story, a recovery report |
//! | [`presence`] | who is connected where, from the mock cloud's log |
//! | [`device`] | the device under test: a command with placeholders, run as a process group |
//! | [`runner`] | grades a device program: mock cloud, scenarios, report |
//! | [`report`] | the per-guarantee report: terminal, JSON, JUnit XML |
//! | [`sim`] | the fleet simulator: the spec's policy (and emulations of others) for up to 1M devices in virtual time |
//!
//! The client session's randomised refinement check against `spec::step` lives with the session
//! (`client/src/session/tests/random.rs`), where it can drive the session without sockets.

pub mod device;
pub mod drill;
pub mod e2e;
pub mod local;
pub mod presence;
pub mod report;
pub mod runner;
pub mod sim;

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
