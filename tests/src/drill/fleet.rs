//! The fleet: hubswap clients in this process, pointed at the mock cloud, each sending telemetry
//! and keeping count of what it sent and what the hub acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hubswap_client::{DeviceClient, DpsTransport, StatusKind, Telemetry, WhenFull};
use hubswap_mock_cloud::{Event, MockCloud};
use hubswap_spec::Config;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::args::{DrillArgs, DrillError};
use crate::local::local_cloud;

const MODEL: &str = "dtmi:com:example:Thermostat;1";

/// How the fleet is built: the drill's defaults, or a benchmark's policy emulation.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Devices.
    pub devices: usize,
    /// Registration ids are `{prefix}-{index:05}`.
    pub prefix: String,
    /// The spec config every client runs.
    pub config: Config,
    /// Every device draws its jitter from this seed (a fleet in lock-step) instead of its own.
    pub shared_seed: Option<u64>,
    /// Telemetry interval per device; `None` sends none.
    pub telemetry: Option<Duration>,
    /// Ask DPS again whenever the connection is lost (an application policy on top).
    pub reprovision_on_disconnect: bool,
}

impl FleetSpec {
    /// The drill's fleet.
    pub fn drill(a: &DrillArgs, config: &Config) -> Self {
        Self {
            devices: a.devices,
            prefix: "drill".into(),
            config: config.clone(),
            shared_seed: None,
            telemetry: Some(Duration::from_millis(a.telemetry_interval_ms)),
            reprovision_on_disconnect: false,
        }
    }
}

/// Live counters, shared with the senders and the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages queued.
    pub queued: AtomicU64,
    /// Messages the hub acknowledged.
    pub acked: AtomicU64,
    /// Messages that failed (expired, shut down).
    pub failed: AtomicU64,
    /// Queued and not yet acknowledged or failed.
    pub in_flight: AtomicI64,
}

/// What the fleet sent, once it stopped.
#[derive(Debug, Clone, Default)]
pub struct FleetStats {
    /// Messages queued.
    pub queued: u64,
    /// `(device, $.mid)` of every message whose send returned `Ok`.
    pub acked: Vec<(String, String)>,
    /// Messages that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Acknowledged messages the cloud had not logged when the drill gave up waiting.
    pub unlogged: usize,
}

/// The running fleet.
pub struct Fleet {
    /// Registration ids, in order.
    pub ids: Vec<String>,
    /// The clients, in the same order.
    pub clients: Vec<DeviceClient>,
    /// Live counters.
    pub counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    failed: Arc<Mutex<Vec<(String, String)>>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Starts the drill's fleet.
    pub fn start(cloud: &MockCloud, a: &DrillArgs, config: &Config) -> Result<Self, DrillError> {
        Self::start_spec(cloud, &FleetSpec::drill(a, config))
    }

    /// Starts every client of `spec` (they connect on their own) and their senders.
    pub fn start_spec(cloud: &MockCloud, spec: &FleetSpec) -> Result<Self, DrillError> {
        let local = local_cloud(cloud);
        let group_key = cloud
            .group_key("default")
            .ok_or_else(|| DrillError::Client {
                device: String::new(),
                reason: "the mock has no default enrollment group".into(),
            })?;
        let (stop, stop_rx) = watch::channel(false);
        let mut fleet = Self {
            ids: Vec::with_capacity(spec.devices),
            clients: Vec::with_capacity(spec.devices),
            counters: Arc::new(Counters::default()),
            stop,
            tasks: JoinSet::new(),
            acked: Arc::default(),
            failed: Arc::default(),
        };
        for i in 0..spec.devices {
            let id = format!("{}-{i:05}", spec.prefix);
            let seed = spec.shared_seed.unwrap_or(i as u64 + 1);
            let (client, _events) = DeviceClient::builder()
                .local_cloud(&local, DpsTransport::Mqtt)
                .registration_id(&id)
                .group_key(&group_key)
                .model_id(MODEL)
                .memory_store()
                .timing(spec.config.clone())
                .jitter_seed(seed)
                .build()
                .map_err(|e| DrillError::Client {
                    device: id.clone(),
                    reason: e.to_string(),
                })?;
            if let Some(every) = spec.telemetry {
                fleet.tasks.spawn(send_loop(
                    client.clone(),
                    id.clone(),
                    every,
                    stop_rx.clone(),
                    Arc::clone(&fleet.counters),
                    Arc::clone(&fleet.acked),
                    Arc::clone(&fleet.failed),
                ));
            }
            if spec.reprovision_on_disconnect {
                fleet
                    .tasks
                    .spawn(reprovision_loop(client.clone(), stop_rx.clone()));
            }
            fleet.ids.push(id);
            fleet.clients.push(client);
        }
        Ok(fleet)
    }

    /// How many clients are in each coarse status.
    pub fn status_counts(&self) -> HashMap<StatusKind, usize> {
        let mut m = HashMap::new();
        for c in &self.clients {
            *m.entry(c.status().borrow().kind).or_insert(0) += 1;
        }
        m
    }

    /// Stops the senders, waits for outstanding messages (bounded), waits until the cloud has
    /// logged every acknowledged message (bounded), shuts the clients down, and returns the
    /// counts.
    pub async fn finish(mut self, cloud: &MockCloud) -> FleetStats {
        let _ = self.stop.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_mins(1), drain)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap_or_else(PoisonError::into_inner));
        let unlogged = wait_logged(cloud, &acked, Duration::from_secs(30)).await;
        for c in &self.clients {
            c.shutdown().await;
        }
        let failed =
            std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner));
        FleetStats {
            queued: self.counters.queued.load(Ordering::Relaxed),
            acked,
            failed,
            unlogged,
        }
    }
}

async fn send_loop(
    client: DeviceClient,
    id: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    failed: Arc<Mutex<Vec<(String, String)>>>,
) {
    let mut deliveries = JoinSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        seq += 1;
        let msg = Telemetry::json(&serde_json::json!({ "seq": seq, "temperature": 21.5 }));
        let Ok(delivery) = client.queue_telemetry(msg, WhenFull::Wait).await else {
            break;
        };
        counters.queued.fetch_add(1, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        deliveries.spawn(delivery.acked());
        while let Some(done) = deliveries.try_join_next() {
            settle(done, &id, &counters, &acked, &failed);
        }
    }
    while let Some(done) = deliveries.join_next().await {
        settle(done, &id, &counters, &acked, &failed);
    }
}

fn settle(
    done: Result<Result<String, hubswap_client::SendError>, tokio::task::JoinError>,
    id: &str,
    counters: &Counters,
    acked: &Mutex<Vec<(String, String)>>,
    failed: &Mutex<Vec<(String, String)>>,
) {
    counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    let entry = match done {
        Ok(Ok(mid)) => {
            counters.acked.fetch_add(1, Ordering::Relaxed);
            acked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id.to_owned(), mid));
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    counters.failed.fetch_add(1, Ordering::Relaxed);
    failed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id.to_owned(), entry));
}

/// The "call DPS on every disconnect" application policy: whenever the client leaves the
/// connected state because the connection was lost or refused, ask it to provision again.
async fn reprovision_loop(client: DeviceClient, mut stop: watch::Receiver<bool>) {
    let mut status = client.status();
    let mut was_connected = false;
    loop {
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let kind = status.borrow_and_update().kind;
        if kind == StatusKind::Connected {
            was_connected = true;
        } else if was_connected && kind != StatusKind::Stopped {
            was_connected = false;
            client.reprovision();
        }
    }
}

/// Waits until the cloud's log holds every acknowledged `$.mid` (the mock sends PUBACK before
/// it logs the message) or `timeout` passes; returns how many are still missing.
async fn wait_logged(cloud: &MockCloud, acked: &[(String, String)], timeout: Duration) -> usize {
    let missing = |cloud: &MockCloud| {
        let seen = logged_mids(cloud);
        acked.iter().filter(|k| !seen.contains_key(*k)).count()
    };
    let mut sub = cloud.log().subscribe();
    let wait = async {
        loop {
            if missing(cloud) == 0 {
                return;
            }
            // Any new record may be the missing one; a lagged receiver just re-checks.
            let _ = sub.recv().await;
        }
    };
    let _ = tokio::time::timeout(timeout, wait).await;
    missing(cloud)
}

/// Every telemetry `(device, $.mid)` the cloud logged, with how many times.
pub fn logged_mids(cloud: &MockCloud) -> HashMap<(String, String), usize> {
    mids_in(&cloud.log().records())
}

/// Every telemetry `(device, $.mid)` in `records`, with how many times.
pub fn mids_in(records: &[hubswap_mock_cloud::LogRecord]) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for r in records {
        if let (Some(device), Event::Telemetry { properties, .. }) = (&r.device, &r.event)
            && let Some(mid) = properties.get("$.mid")
        {
            *m.entry((device.clone(), mid.clone())).or_insert(0) += 1;
        }
    }
    m
}
