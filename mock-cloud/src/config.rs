//! Configuration: where every listener goes, the id scope, and the two stock layouts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// The DPS endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpsConfig {
    /// The global device endpoint's host name, as devices dial it (goes into the server certificate).
    pub host: String,
    /// The MQTT listener (`$dps/registrations/...`).
    pub mqtt: SocketAddr,
    /// The HTTPS REST listener.
    pub https: SocketAddr,
    /// The `retry-after` (seconds) sent with 202 `assigning`.
    pub retry_after_secs: u32,
}

/// One IoT hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// The host name DPS hands out as `assignedHub`; also the hub's identity in logs and APIs.
    pub host: String,
    /// Where its MQTT listener binds.
    pub listen: SocketAddr,
}

/// A symmetric-key enrollment group created at start (when not already in the data folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSeed {
    /// The enrollment group id.
    pub id: String,
    /// The primary key (base64); `None` generates one.
    pub primary_key: Option<String>,
}

/// Time limits the cloud applies to devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TLS handshake, from TCP accept.
    pub tls_handshake: Duration,
    /// From the end of the handshake to CONNECT.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            connect: Duration::from_secs(30),
        }
    }
}

/// Everything [`crate::MockCloud::start`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// The DPS id scope devices must use.
    pub id_scope: String,
    /// The DPS endpoints.
    pub dps: DpsConfig,
    /// The hubs, in allocation order.
    pub hubs: Vec<HubConfig>,
    /// The admin REST API (loopback by default); `None` runs without it.
    pub admin: Option<SocketAddr>,
    /// Where to keep `ca.pem`, the state and `cloud.json`; `None` keeps state in memory and
    /// writes `ca.pem` into a fresh temporary folder.
    pub data_dir: Option<PathBuf>,
    /// Where to append the observation log as JSON lines; `None` keeps it in memory only.
    pub log_file: Option<PathBuf>,
    /// The most observation-log records kept in memory; older ones leave memory first (the
    /// log file keeps everything). Default [`crate::log::DEFAULT_CAPACITY`].
    pub log_capacity: usize,
    /// Enrollment groups to create at start.
    pub groups: Vec<GroupSeed>,
    /// Time limits.
    pub timeouts: Timeouts,
    /// The largest telemetry payload accepted (IoT Hub: 256 KB).
    pub max_message_size: usize,
    /// The service-side event broker (rumqttd, plain MQTT); port 0 picks a free port; `None`
    /// runs without it.
    pub events: Option<SocketAddr>,
}

impl CloudConfig {
    /// The test layout: every listener on `127.0.0.1:0`, hubs named `hub-{i}.localhost`, no
    /// data folder, one group enrollment `default` with a generated key.
    pub fn for_tests(hubs: usize) -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        Self {
            id_scope: "0ne00000MCK".into(),
            dps: DpsConfig {
                host: "localhost".into(),
                mqtt: any,
                https: any,
                retry_after_secs: 1,
            },
            hubs: (0..hubs)
                .map(|i| HubConfig {
                    host: format!("hub-{i}.localhost"),
                    listen: any,
                })
                .collect(),
            admin: Some(any),
            data_dir: None,
            log_file: None,
            log_capacity: crate::log::DEFAULT_CAPACITY,
            groups: vec![GroupSeed {
                id: "default".into(),
                primary_key: None,
            }],
            timeouts: Timeouts {
                tls_handshake: Duration::from_secs(5),
                connect: Duration::from_secs(5),
            },
            max_message_size: 256 * 1024,
            events: None,
        }
    }

    /// The test layout with the event broker on a free loopback port.
    #[must_use]
    pub fn with_events(mut self) -> Self {
        self.events = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        self
    }

    /// The layout official SDKs accept unmodified: DPS on `base` (MQTT 8883 and HTTPS 443), hub
    /// `i` on `base + 1 + i`, port 8883, with `assignedHub` = that bare IP; admin API on
    /// `127.0.0.1:8480`; the event broker on `127.0.0.1:1883`.
    pub fn sdk_layout(base: Ipv4Addr, hubs: usize) -> Self {
        let ip = |offset: usize| {
            let offset = u32::try_from(offset).unwrap_or(0);
            Ipv4Addr::from(u32::from(base).wrapping_add(offset))
        };
        Self {
            id_scope: "0ne00000MCK".into(),
            dps: DpsConfig {
                host: base.to_string(),
                mqtt: SocketAddr::new(IpAddr::V4(base), 8883),
                https: SocketAddr::new(IpAddr::V4(base), 443),
                retry_after_secs: 1,
            },
            hubs: (0..hubs)
                .map(|i| HubConfig {
                    host: ip(i + 1).to_string(),
                    listen: SocketAddr::new(IpAddr::V4(ip(i + 1)), 8883),
                })
                .collect(),
            admin: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8480)),
            data_dir: None,
            log_file: None,
            log_capacity: crate::log::DEFAULT_CAPACITY,
            groups: vec![GroupSeed {
                id: "default".into(),
                primary_key: None,
            }],
            timeouts: Timeouts::default(),
            max_message_size: 256 * 1024,
            events: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1883)),
        }
    }

    /// Replaces the group seeds with one group with a fixed key.
    #[must_use]
    pub fn with_group(mut self, id: &str, primary_key: &str) -> Self {
        self.groups = vec![GroupSeed {
            id: id.into(),
            primary_key: Some(primary_key.into()),
        }];
        self
    }

    /// Sets the data folder.
    #[must_use]
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Checks the configuration for contradictions.
    pub fn validate(&self) -> Result<(), Error> {
        if self.hubs.is_empty() {
            return Err(Error::Config("at least one hub is needed".into()));
        }
        if self.id_scope.is_empty() || self.id_scope.contains('/') {
            return Err(Error::Config(format!("bad id scope {:?}", self.id_scope)));
        }
        let mut hosts: Vec<&str> = self.hubs.iter().map(|h| h.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        if hosts.len() != self.hubs.len() {
            return Err(Error::Config("hub host names must be unique".into()));
        }
        if self
            .hubs
            .iter()
            .any(|h| h.host.is_empty() || h.host.contains('/'))
        {
            return Err(Error::Config(
                "hub host names must be non-empty and contain no '/'".into(),
            ));
        }
        Ok(())
    }

    /// DNS names and IP literals the server certificate must cover.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            self.dps.host.clone(),
        ];
        names.push(self.dps.mqtt.ip().to_string());
        names.push(self.dps.https.ip().to_string());
        for hub in &self.hubs {
            names.push(hub.host.clone());
            names.push(hub.listen.ip().to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_layout_puts_each_hub_on_its_own_loopback_ip() {
        let c = CloudConfig::sdk_layout(Ipv4Addr::new(127, 0, 0, 2), 2);
        assert_eq!(c.dps.mqtt.to_string(), "127.0.0.2:8883");
        assert_eq!(c.dps.https.to_string(), "127.0.0.2:443");
        assert_eq!(c.hubs[0].host, "127.0.0.3");
        assert_eq!(c.hubs[1].listen.to_string(), "127.0.0.4:8883");
        assert!(c.certificate_names().contains(&"127.0.0.4".to_owned()));
        c.validate().expect("valid");
    }

    #[test]
    fn validation_rejects_duplicate_hubs_and_no_hubs() {
        let mut c = CloudConfig::for_tests(2);
        c.hubs[1].host = c.hubs[0].host.clone();
        assert!(c.validate().is_err());
        assert!(CloudConfig::for_tests(0).validate().is_err());
    }
}
