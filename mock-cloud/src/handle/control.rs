//! The control API of [`CloudHandle`]: addresses, enrollments, devices, twins, methods, C2D
//! and the observation log. Faults are in `faults.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::CloudHandle;
use crate::Error;
use crate::certs::CertificateAuthority;
use crate::log::ObservationLog;
use crate::registry::{
    Device, DeviceInfo, EnrollmentGroup, GroupAttestation, IndividualEnrollment, MethodResponse,
    Registry, Twin,
};

impl CloudHandle {
    fn registry(&self) -> &Registry {
        &self.inner.shared.registry
    }

    /// The id scope.
    pub fn id_scope(&self) -> &str {
        &self.inner.shared.id_scope
    }

    /// DPS over MQTT.
    pub fn dps_mqtt_addr(&self) -> SocketAddr {
        self.inner.dps_mqtt_addr
    }

    /// DPS over HTTPS.
    pub fn dps_https_addr(&self) -> SocketAddr {
        self.inner.dps_https_addr
    }

    /// The hubs' host names (what DPS assigns), in allocation order.
    pub fn hub_hosts(&self) -> Vec<String> {
        self.inner
            .hub_addrs
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// The address a hub host name listens on (the test layout's resolver).
    pub fn hub_addr(&self, host: &str) -> Option<SocketAddr> {
        self.inner
            .hub_addrs
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, a)| *a)
    }

    /// The admin API address, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.inner.admin_addr
    }

    /// The CA certificate (PEM) devices must trust.
    pub fn ca_pem(&self) -> &str {
        self.inner.ca.cert_pem()
    }

    /// The path of `ca.pem`.
    pub fn ca_path(&self) -> &Path {
        &self.inner.ca_path
    }

    /// The observation log.
    pub fn log(&self) -> &ObservationLog {
        &self.inner.shared.log
    }

    /// The log converted to the spec's trace vocabulary.
    pub fn observations(&self) -> Vec<hubswap_spec::Observation> {
        self.log().observations()
    }

    /// Adds a symmetric-key enrollment group (a key is generated when `primary_key` is `None`).
    pub fn add_symmetric_group(&self, id: &str, primary_key: Option<&str>) -> EnrollmentGroup {
        self.registry()
            .add_symmetric_group(id, primary_key.map(str::to_owned), None)
    }

    /// Adds an X.509 enrollment group with a freshly generated CA, returned for issuing device
    /// certificates (`ca.issue_device(registration_id)`).
    pub fn add_x509_group(&self, id: &str) -> Result<CertificateAuthority, Error> {
        let ca = CertificateAuthority::generate(&format!("{id} group CA"))?;
        self.registry().add_x509_group(id, ca.cert_pem())?;
        Ok(ca)
    }

    /// Adds an X.509 enrollment group trusting an existing CA certificate.
    pub fn add_x509_group_with_ca(&self, id: &str, ca_pem: &str) -> Result<EnrollmentGroup, Error> {
        self.registry().add_x509_group(id, ca_pem)
    }

    /// Adds an individual symmetric-key enrollment.
    pub fn add_individual(
        &self,
        registration_id: &str,
        primary_key: Option<&str>,
    ) -> IndividualEnrollment {
        self.registry()
            .add_individual(registration_id, primary_key.map(str::to_owned))
    }

    /// The primary key of a symmetric-key group.
    pub fn group_key(&self, group: &str) -> Option<String> {
        match self
            .registry()
            .lock()
            .groups
            .get(group)
            .map(|g| g.attestation.clone())
        {
            Some(GroupAttestation::SymmetricKey { primary_key, .. }) => Some(primary_key),
            _ => None,
        }
    }

    /// The device key a group member derives from the group's primary key (§1.4).
    pub fn device_key(&self, group: &str, registration_id: &str) -> Option<String> {
        crate::sas::derive_device_key(&self.group_key(group)?, registration_id)
    }

    /// Every device with its connection status.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.registry().devices()
    }

    /// One device.
    pub fn device(&self, id: &str) -> Result<DeviceInfo, Error> {
        self.registry().device(id)
    }

    /// Registers a device directly on a hub, bypassing DPS.
    pub fn create_device(
        &self,
        id: &str,
        hub: &str,
        primary_key: Option<&str>,
    ) -> Result<Device, Error> {
        self.registry()
            .create_device(id, hub, primary_key.map(str::to_owned))
    }

    /// Registers a device as DPS would (to the least loaded hub), as a member of `group`
    /// (default: the first symmetric-key group), without a device asking; a known device is
    /// returned unchanged. Its key is the group-derived key, as for a device that provisions.
    pub fn register_device(&self, id: &str, group: Option<&str>) -> Result<Device, Error> {
        self.inner.shared.dps.preregister(id, group)
    }

    /// Enables or disables a device's identity on a hub (default: its assigned hub).
    pub fn set_device_enabled(
        &self,
        id: &str,
        hub: Option<&str>,
        enabled: bool,
    ) -> Result<(), Error> {
        self.registry()
            .set_device_enabled(id, hub, enabled)
            .map(|_| ())
    }

    /// Blocks or unblocks a device.
    pub fn set_device_blocked(&self, id: &str, blocked: bool) -> Result<(), Error> {
        self.registry().set_blocked(id, blocked)
    }

    /// Drops a device's live connection without an MQTT packet; `false` when it had none.
    pub fn kick(&self, id: &str) -> bool {
        self.registry().kick_on(id, None, "kicked by operator")
    }

    /// Includes or excludes a hub from DPS allocation.
    pub fn set_hub_allocation(&self, host: &str, enabled: bool) -> Result<(), Error> {
        self.registry().set_hub_enabled(host, enabled)
    }

    /// A device's twin.
    pub fn twin(&self, id: &str) -> Result<Twin, Error> {
        self.registry().twin(id)
    }

    /// Merges a desired-properties patch and pushes it to the device if connected; returns the
    /// new desired `$version`.
    pub fn update_desired(&self, id: &str, patch: &Value) -> Result<u64, Error> {
        self.registry().update_desired(id, patch)
    }

    /// Invokes a direct method (`component*command` for IoT Central component commands).
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotOnline`] without a live connection subscribed to methods;
    /// [`Error::MethodTimeout`] when no answer arrives within `timeout`.
    pub async fn invoke_method(
        &self,
        id: &str,
        name: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<MethodResponse, Error> {
        self.registry()
            .invoke_method(id, name, payload, timeout)
            .await
    }

    /// Queues a cloud-to-device message with application properties; returns its `$.mid`.
    pub fn send_c2d(
        &self,
        id: &str,
        payload: impl Into<Bytes>,
        properties: &[(String, Option<String>)],
    ) -> Result<String, Error> {
        self.registry().send_c2d(id, payload.into(), properties)
    }

    /// Shifts the cloud's Unix clock (SAS expiry is judged on it).
    ///
    /// Live connections whose token is now expired are dropped. The same as applying
    /// [`crate::Fault::ClockOffset`], but without an entry in the fault log.
    pub fn set_clock_offset(&self, secs: i64) {
        let registry = self.registry();
        registry.clock.set_offset(secs);
        registry.control(format!("clock offset set to {secs} s"));
        registry.recheck_all();
    }
}
