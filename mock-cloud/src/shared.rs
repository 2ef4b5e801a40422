//! What every listener and connection task shares: the registry, the fault overlay beside it,
//! DPS, the log, the clock, the limits, and the shutdown signal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Timeouts;
use crate::dps::Dps;
use crate::log::ObservationLog;
use crate::overlay::Overlay;
use crate::registry::Registry;

/// The services behind the listeners.
#[derive(Debug)]
pub(crate) struct Shared {
    pub registry: Arc<Registry>,
    pub faults: Arc<Overlay>,
    pub dps: Dps,
    pub log: Arc<ObservationLog>,
    pub clock: Arc<Clock>,
    pub id_scope: String,
    pub max_message_size: usize,
    pub timeouts: Timeouts,
    /// Cancelled when the cloud shuts down.
    pub shutdown: CancellationToken,
}
