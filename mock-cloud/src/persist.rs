//! The data folder: `ca.pem` (what devices trust), `state.json` (the CA key, enrollments,
//! devices and twins, so a restarted cloud knows its devices), `cloud.json` (addresses and keys
//! for scripts) and `observations.jsonl` (the log).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::config::CloudConfig;
use crate::registry::{Device, EnrollmentGroup, HubStatus, IndividualEnrollment, Registry};
use crate::{CloudHandle, Error};

/// What `state.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub id_scope: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub groups: Vec<EnrollmentGroup>,
    pub individuals: Vec<IndividualEnrollment>,
    pub devices: Vec<Device>,
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

/// Reads `state.json` if it exists.
pub(crate) fn load(dir: &Path) -> Result<Option<Saved>, Error> {
    let path = dir.join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_err(&path)(e)),
    }
}

/// Fills the registry from saved state and the config's hubs and group seeds.
pub(crate) fn restore(registry: &Registry, config: &CloudConfig, saved: Option<Saved>) {
    {
        let mut state = registry.lock();
        state.hubs = config
            .hubs
            .iter()
            .map(|h| HubStatus {
                host: h.host.clone(),
                enabled: true,
            })
            .collect();
        if let Some(saved) = saved {
            state.groups = saved
                .groups
                .into_iter()
                .map(|g| (g.id.clone(), g))
                .collect();
            state.individuals = saved
                .individuals
                .into_iter()
                .map(|e| (e.registration_id.clone(), e))
                .collect();
            state.devices = saved
                .devices
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect();
        }
    }
    for seed in &config.groups {
        if !registry.lock().groups.contains_key(&seed.id) {
            registry.add_symmetric_group(&seed.id, seed.primary_key.clone(), None);
        }
    }
}

/// Writes `state.json` into `dir`.
pub(crate) fn save(cloud: &CloudHandle, dir: &Path) -> Result<(), Error> {
    let enrollments = cloud.enrollments();
    let saved = Saved {
        id_scope: cloud.id_scope().to_owned(),
        ca_cert_pem: cloud.ca().cert_pem().to_owned(),
        ca_key_pem: cloud.ca().key_pem().to_owned(),
        groups: enrollments.groups,
        individuals: enrollments.individuals,
        devices: cloud.devices().into_iter().map(|d| d.device).collect(),
    };
    write_file(&dir.join("state.json"), &serde_json::to_vec_pretty(&saved)?)
}

/// Writes `cloud.json` into `dir`.
pub(crate) fn write_cloud_json(cloud: &CloudHandle, dir: &Path) -> Result<(), Error> {
    write_file(
        &dir.join("cloud.json"),
        &serde_json::to_vec_pretty(&cloud.info())?,
    )
}

/// Writes a file atomically (temporary file, then rename).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(file_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(file_err(path))
}

/// Saves the state into `dir` after every change until shutdown.
pub(crate) fn spawn_saver(cloud: CloudHandle, dir: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = cloud.shutdown_token().clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = cloud.changed() => {}
            }
            let result = save(&cloud, &dir).and_then(|()| write_cloud_json(&cloud, &dir));
            if let Err(e) = result {
                tracing::error!(error = %e, "could not save state");
            }
        }
    })
}
