//! The hubs' listeners, owned by the cloud. Faults close them (`hub-down closed`, `name-gone`)
//! and reopen them on the same address (`hub-restore`) through [`Listeners`], the operator
//! through the control API.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::task::TaskTracker;

use super::{Listener, Role, bind, spawn};
use crate::Error;
use crate::overlay::Listeners;
use crate::shared::Shared;

/// One hub's listener and address.
#[derive(Debug)]
pub(crate) struct HubRuntime {
    pub host: String,
    pub addr: SocketAddr,
    pub listener: Option<Listener>,
}

/// Every hub's listener.
#[derive(Debug)]
pub(crate) struct HubListeners {
    shared: Arc<Shared>,
    tls: Arc<ServerConfig>,
    tracker: TaskTracker,
    hubs: AsyncMutex<Vec<HubRuntime>>,
}

impl HubListeners {
    pub(crate) fn new(
        shared: Arc<Shared>,
        tls: Arc<ServerConfig>,
        tracker: TaskTracker,
        hubs: Vec<HubRuntime>,
    ) -> Self {
        Self {
            shared,
            tls,
            tracker,
            hubs: AsyncMutex::new(hubs),
        }
    }

    /// `(host, address, listening)` per hub.
    pub(crate) async fn status(&self) -> Vec<(String, SocketAddr, bool)> {
        self.hubs
            .lock()
            .await
            .iter()
            .map(|h| (h.host.clone(), h.addr, h.listener.is_some()))
            .collect()
    }

    /// Closes every listener (shutdown).
    pub(crate) async fn stop_all(&self) {
        for hub in self.hubs.lock().await.iter_mut() {
            if let Some(l) = hub.listener.take() {
                l.stop().await;
            }
        }
    }
}

impl Listeners for HubListeners {
    /// Closes a hub's listener: new connections are refused by the kernel.
    async fn stop(&self, host: &str) -> Result<(), Error> {
        let mut hubs = self.hubs.lock().await;
        let hub = hubs
            .iter_mut()
            .find(|h| h.host == host)
            .ok_or_else(|| Error::HubNotFound(host.to_owned()))?;
        if let Some(l) = hub.listener.take() {
            l.stop().await;
        }
        Ok(())
    }

    /// Reopens a hub's listener on its previous address (no-op when it listens).
    async fn start(&self, host: &str) -> Result<(), Error> {
        let mut hubs = self.hubs.lock().await;
        let hub = hubs
            .iter_mut()
            .find(|h| h.host == host)
            .ok_or_else(|| Error::HubNotFound(host.to_owned()))?;
        if hub.listener.is_none() {
            let std = bind(
                hub.addr,
                &format!("hub {host}"),
                "the hub's previous address",
            )?;
            hub.listener = Some(spawn(
                Arc::clone(&self.shared),
                std,
                Arc::clone(&self.tls),
                Role::Hub(host.to_owned()),
                self.tracker.clone(),
            )?);
        }
        Ok(())
    }
}
