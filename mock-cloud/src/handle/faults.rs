//! The fault API of [`CloudHandle`]: apply any [`Fault`], list and clear active ones, and
//! shorthands for the common drills.

use std::net::SocketAddr;
use std::time::Duration;

use super::CloudHandle;
use crate::Error;
use crate::fault::{
    ActiveFault, Clear, ExpireToken, Failback, Failover, Fault, FaultId, FaultOptions, HubArg,
    HubDown, OutageMode,
};

impl CloudHandle {
    /// Applies a fault (or a control that ends one), logs it with its parameters, and returns its
    /// id. Faults with a duration end by themselves; every one can be cleared by id.
    ///
    /// ```no_run
    /// # async fn demo(cloud: &hubswap_mock_cloud::MockCloud) -> Result<(), hubswap_mock_cloud::Error> {
    /// use hubswap_mock_cloud::fault::{Failover, Fault};
    /// let id = cloud
    ///     .apply(Fault::Failover(Failover {
    ///         hub: Some("hub-0.localhost".into()),
    ///         to: "hub-1.localhost".into(),
    ///         ..Failover::default()
    ///     }))
    ///     .await?;
    /// cloud.clear_fault(id).await?; // fails back
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`], [`Error::HubNotFound`], [`Error::InvalidRequest`] for
    /// parameters that do not fit, [`Error::DeviceNotOnline`] for `inject` without a live
    /// connection.
    pub async fn apply(&self, fault: Fault) -> Result<FaultId, Error> {
        self.inner
            .shared
            .faults
            .apply(fault, &self.inner.listeners)
            .await
    }

    /// Ends one active fault, undoing it (a failover fails back, a hub comes back, ...).
    pub async fn clear_fault(&self, id: FaultId) -> Result<(), Error> {
        self.apply(Fault::Clear(Clear { id: Some(id) }))
            .await
            .map(|_| ())
    }

    /// Ends every active fault.
    pub async fn clear_faults(&self) {
        let _ = self.apply(Fault::Clear(Clear { id: None })).await;
    }

    /// The faults in force.
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.inner.shared.faults.lock().list()
    }

    /// How unconfirmed conditions are rendered right now.
    pub fn fault_options(&self) -> FaultOptions {
        self.inner.shared.faults.options()
    }

    /// The service-side event broker's address, if it runs.
    pub fn events_addr(&self) -> Option<SocketAddr> {
        self.inner.events_addr
    }

    /// Fails every device of `hub` over to `to`, failing back after `ttl` if given.
    pub async fn failover_hub(
        &self,
        hub: &str,
        to: &str,
        ttl: Option<Duration>,
    ) -> Result<FaultId, Error> {
        self.apply(Fault::Failover(Failover {
            hub: Some(hub.to_owned()),
            to: to.to_owned(),
            ttl,
            ..Failover::default()
        }))
        .await
    }

    /// Fails these devices over to `to`, failing back after `ttl` if given.
    pub async fn failover_devices(
        &self,
        devices: &[&str],
        to: &str,
        ttl: Option<Duration>,
    ) -> Result<FaultId, Error> {
        self.apply(Fault::Failover(Failover {
            devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            to: to.to_owned(),
            ttl,
            ..Failover::default()
        }))
        .await
    }

    /// Fails every failed-over device back (or only those that came from `hub`).
    pub async fn failback(&self, hub: Option<&str>) -> Result<FaultId, Error> {
        self.apply(Fault::Failback(Failback {
            hub: hub.map(str::to_owned),
            ..Failback::default()
        }))
        .await
    }

    /// Makes a hub unreachable.
    pub async fn hub_down(&self, hub: &str, mode: OutageMode) -> Result<FaultId, Error> {
        self.apply(Fault::HubDown(HubDown {
            hub: hub.to_owned(),
            mode,
            ..HubDown::default()
        }))
        .await
    }

    /// Brings a hub back.
    pub async fn restore_hub(&self, hub: &str) -> Result<FaultId, Error> {
        self.apply(Fault::HubRestore(HubArg {
            hub: hub.to_owned(),
        }))
        .await
    }

    /// Invalidates the device's current SAS token.
    pub async fn expire_token(&self, device: &str) -> Result<FaultId, Error> {
        self.apply(Fault::ExpireToken(ExpireToken {
            device: device.to_owned(),
            until_reprovisioned: false,
        }))
        .await
    }
}
