//! Live progress: devices connected per hub, reconnecting, reprovisioning, and messages in
//! flight. An indicatif spinner line on a terminal; a plain line every few seconds otherwise
//! (CI logs, pipes), so nothing depends on a terminal.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hubswap_client::{DeviceClient, StatusKind};
use hubswap_mock_cloud::log::Endpoint;
use hubswap_mock_cloud::{Event, LogRecord, MockCloud};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::fleet::{Counters, Fleet};

/// Who is connected where, from the cloud's log.
#[derive(Debug, Default)]
struct Where {
    on: HashMap<String, String>,
}

impl Where {
    fn see(&mut self, r: &LogRecord) {
        let Some(d) = &r.device else { return };
        match &r.event {
            Event::ConnAck {
                endpoint: Endpoint::Hub(h),
                code: 0,
                ..
            } => {
                self.on.insert(d.clone(), h.clone());
            }
            Event::Disconnected {
                endpoint: Endpoint::Hub(_),
                established: true,
                ..
            } => {
                self.on.remove(d);
            }
            _ => {}
        }
    }

    fn per_hub(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for h in self.on.values() {
            *m.entry(h.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// The live display; [`Progress::finish`] ends it.
pub struct Progress {
    phase: Arc<Mutex<String>>,
    tasks: Vec<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").finish_non_exhaustive()
    }
}

impl Progress {
    /// Starts following the cloud's log and the fleet's statuses.
    pub fn start(cloud: &MockCloud, fleet: &Fleet, plain: bool) -> Self {
        let phase = Arc::new(Mutex::new(String::from("starting")));
        let hubs: Vec<String> = cloud.hub_hosts();
        let seen = Arc::new(Mutex::new(Where::default()));
        let mut sub = cloud.log().subscribe();
        let follower = {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(r) => seen.lock().unwrap_or_else(PoisonError::into_inner).see(&r),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            })
        };
        let bar = (!plain && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        let view = View {
            clients: fleet.clients.clone(),
            counters: Arc::clone(&fleet.counters),
            hubs,
            seen,
            phase: Arc::clone(&phase),
        };
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut last_line = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    let line = view.line();
                    match &bar {
                        Some(b) => {
                            b.set_message(line);
                            b.tick();
                        }
                        None if last_line.elapsed() >= Duration::from_secs(5) => {
                            last_line = Instant::now();
                            eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
                        }
                        None => {}
                    }
                }
            })
        };
        Self {
            phase,
            tasks: vec![follower, ticker],
            bar,
        }
    }

    /// Names the phase being played.
    pub fn set_phase(&self, name: &str) {
        name.clone_into(&mut self.phase.lock().unwrap_or_else(PoisonError::into_inner));
        if self.bar.is_none() {
            eprintln!("drill: phase {name}");
        }
    }

    /// Stops the display.
    pub fn finish(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

struct View {
    clients: Vec<DeviceClient>,
    counters: Arc<Counters>,
    hubs: Vec<String>,
    seen: Arc<Mutex<Where>>,
    phase: Arc<Mutex<String>>,
}

impl View {
    fn line(&self) -> String {
        let mut kinds: HashMap<StatusKind, usize> = HashMap::new();
        for c in &self.clients {
            *kinds.entry(c.status().borrow().kind).or_insert(0) += 1;
        }
        let k = |s: StatusKind| kinds.get(&s).copied().unwrap_or(0);
        let per_hub = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .per_hub();
        let hubs: Vec<String> = self
            .hubs
            .iter()
            .map(|h| format!("{h}: {}", per_hub.get(h).copied().unwrap_or(0)))
            .collect();
        let phase = self
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        format!(
            "[{phase}] {} | reconnecting {} | reprovisioning {} | in flight {} | acked {}",
            hubs.join(" "),
            k(StatusKind::Waiting) + k(StatusKind::Connecting) + k(StatusKind::Syncing),
            k(StatusKind::Provisioning),
            self.counters.in_flight.load(Ordering::Relaxed),
            self.counters.acked.load(Ordering::Relaxed),
        )
    }
}
