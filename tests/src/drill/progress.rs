//! Live progress: devices connected per hub, reconnecting, reprovisioning, and messages in
//! flight. An indicatif spinner line on a terminal; a plain line every few seconds otherwise
//! (CI logs, pipes), so nothing depends on a terminal.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hubswap_client::{DeviceClient, StatusKind};
use hubswap_mock_cloud::MockCloud;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::fleet::{Counters, Fleet};
use crate::presence::Presence;

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
        let seen = Arc::new(Mutex::new(Presence::default()));
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
    seen: Arc<Mutex<Presence>>,
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
            .per_hub(&self.hubs);
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
