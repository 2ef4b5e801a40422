//! The driver: a thin tokio loop around the [`Session`]. No policy lives here.
//!
//! Each turn takes exactly one input (an API request, a hub event, a DPS answer, or the
//! session's timeout), reads the clock once, hands the input to the session, and performs
//! every output in order through the IO seam in [`io`] (hub link, DPS task, store, journal,
//! the application's channels). It is the only place that reads the clock or sleeps, and it
//! seeds the session's jitter.

#![allow(
    clippy::disallowed_methods,
    reason = "the driver is the clock: the one place that reads it and sleeps"
)]

mod io;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubswap_spec::{self as spec, Millis};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::api::{DeviceEvent, Request};
use crate::builder::Settings;
use crate::hub::HubEvent;
use crate::journal::Journal;
use crate::session::{Entry, Event, Session, SessionConfig, TwinOp};
use crate::status::ConnectionStatus;
use io::{Caller, Io};

/// A seed from the OS (via the std hasher's random keys) mixed with the wall clock.
fn os_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

pub(crate) struct Driver {
    session: Session,
    /// Session time zero, on the monotonic clock and in Unix milliseconds.
    epoch: Instant,
    io: Io,
}

/// The receiving ends the loop selects on.
pub(crate) struct Inputs {
    pub api: mpsc::UnboundedReceiver<Request>,
    pub hub: mpsc::UnboundedReceiver<HubEvent>,
}

impl Driver {
    /// Prepares the driver (reads the cache) without starting it.
    pub(crate) fn new(
        s: Arc<Settings>,
        journal: Option<Journal>,
        restored: Vec<Entry>,
        events: mpsc::UnboundedSender<DeviceEvent>,
        api: mpsc::WeakUnboundedSender<Request>,
        status: watch::Sender<ConnectionStatus>,
        api_rx: mpsc::UnboundedReceiver<Request>,
    ) -> Result<(Self, Inputs), crate::error::ConfigError> {
        let cache = s.store.load(&s.identity)?;
        let session = Session::new(SessionConfig {
            spec: s.spec.clone(),
            window: s.outbox_window,
            default_ttl: s.default_ttl,
            seed: s.seed.unwrap_or_else(os_seed),
            cache,
            restored,
        });
        let (io, hub_rx) = Io::new(s, journal, events, api, status, unix_now_ms());
        Ok((
            Self {
                session,
                epoch: Instant::now(),
                io,
            },
            Inputs {
                api: api_rx,
                hub: hub_rx,
            },
        ))
    }

    /// The run loop.
    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        self.handle(Event::Command(spec::Command::Start));
        loop {
            let deadline = self.session.poll_timeout().map(|at| self.instant(at));
            tokio::select! {
                biased;
                req = inputs.api.recv() => match req {
                    Some(Request::Shutdown { done }) => {
                        self.handle(Event::Command(spec::Command::Stop));
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.handle(Event::Command(spec::Command::Stop));
                        return;
                    }
                    Some(r) => self.api_request(r),
                },
                Some(ev) = inputs.hub.recv() => self.handle(Event::Hub {
                    generation: ev.generation,
                    event: ev.event,
                }),
                Some((attempt, signal)) = self.io.dps_answer() => self.handle(Event::Dps { attempt, signal }),
                () = sleep_until(deadline) => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                    self.drain();
                }
            }
            self.io.flush_publishes();
        }
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn instant(&self, at: Millis) -> Instant {
        self.epoch + Duration::from_millis(at.0)
    }

    /// One input: the clock is read once, the session decides, the outputs are performed.
    fn handle(&mut self, ev: Event) {
        let now = self.now();
        self.session.handle_event(now, ev);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.session.poll_action() {
            self.io.perform(out);
        }
    }

    fn api_request(&mut self, r: Request) {
        let ev = match r {
            Request::Telemetry { msg, done, permit } => {
                if let Some(j) = self.io.journal() {
                    let (seq, mid) = self.session.next_telemetry();
                    if let Err(e) = j.write(seq, &mid, &msg) {
                        tracing::warn!(error = %e, "cannot journal a message");
                        let _ = done.send(Err(e));
                        return;
                    }
                }
                let handle = self.io.wait(Caller::Telemetry { done, permit });
                Event::Telemetry { handle, msg: *msg }
            }
            Request::Report { patch, done } => Event::Twin {
                handle: self.io.wait(Caller::Report(done)),
                op: TwinOp::Patch(patch),
            },
            Request::GetTwin { done } => Event::Twin {
                handle: self.io.wait(Caller::GetTwin(done)),
                op: TwinOp::Get,
            },
            Request::MethodResponse {
                generation,
                rid,
                status,
                payload,
            } => Event::MethodResponse {
                generation,
                rid,
                status,
                payload,
            },
            Request::Reprovision => Event::Command(spec::Command::ReprovisionNow),
            Request::Shutdown { .. } => return,
        };
        self.handle(ev);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
