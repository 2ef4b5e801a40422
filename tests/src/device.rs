//! The device under test: a shell command with placeholders, run as its own process group so
//! that it can be stopped (and restarted) as a whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// What the runner fills into the device command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    /// `{dps_host}`: the DPS host to dial.
    pub dps_host: String,
    /// `{dps_port}`: the DPS MQTT port.
    pub dps_port: u16,
    /// `{dps_https_port}`: the DPS HTTPS port.
    pub dps_https_port: u16,
    /// `{id_scope}`.
    pub id_scope: String,
    /// `{registration_id}`.
    pub registration_id: String,
    /// `{device_key}`: the key derived from the group key for this registration id.
    pub device_key: String,
    /// `{group_key}`.
    pub group_key: String,
    /// `{ca_file}`: the mock cloud's CA certificate (PEM).
    pub ca_file: PathBuf,
    /// `{hub_port}`: the port every hub listens on (each on its own loopback address).
    pub hub_port: u16,
    /// `{state_dir}`: a folder the device may keep its state in (kept across restarts).
    pub state_dir: PathBuf,
    /// `{time_scale}`: the factor the grader divides the spec's delays by.
    pub time_scale: u32,
    /// `{spec_config}`: a JSON file with the spec config the device is graded against.
    pub spec_config: PathBuf,
}

impl Placeholders {
    fn table(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("dps_host", self.dps_host.clone()),
            ("dps_port", self.dps_port.to_string()),
            ("dps_https_port", self.dps_https_port.to_string()),
            ("id_scope", self.id_scope.clone()),
            ("registration_id", self.registration_id.clone()),
            ("device_key", self.device_key.clone()),
            ("group_key", self.group_key.clone()),
            ("ca_file", self.ca_file.display().to_string()),
            ("hub_port", self.hub_port.to_string()),
            ("state_dir", self.state_dir.display().to_string()),
            ("time_scale", self.time_scale.to_string()),
            ("spec_config", self.spec_config.display().to_string()),
        ])
    }

    /// Fills every `{name}` in `template`; unknown names are an error, so typos surface.
    pub fn fill(&self, template: &str) -> Result<String, String> {
        let table = self.table();
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[open..]);
                return Ok(out);
            };
            let name = &after[..close];
            match table.get(name) {
                Some(v) => out.push_str(v),
                None if name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && !name.is_empty() =>
                {
                    return Err(format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        table.keys().copied().collect::<Vec<_>>().join(", ")
                    ));
                }
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A running device process.
#[derive(Debug)]
pub struct DeviceProcess {
    child: Child,
    log: PathBuf,
}

impl DeviceProcess {
    /// Starts `command` (already filled) with `sh -c`, output appended to `log`.
    pub fn spawn(command: &str, log: &Path) -> std::io::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true);
        Ok(Self {
            child: cmd.spawn()?,
            log: log.to_path_buf(),
        })
    }

    /// The file its output goes to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Whether it exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the whole process group (SIGTERM, then SIGKILL after `grace`).
    pub async fn stop(mut self, grace: std::time::Duration) {
        if let Some(pid) = self.child.id() {
            signal_group(pid, "TERM").await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
            signal_group(pid, "KILL").await;
        }
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// Sends a signal to a process group with kill(1), so that shell wrappers stop with the device.
async fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The last `lines` lines of a device's output file (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Placeholders {
        Placeholders {
            dps_host: "127.0.0.2".into(),
            dps_port: 8883,
            dps_https_port: 443,
            id_scope: "0ne0001".into(),
            registration_id: "dev-1".into(),
            device_key: "a2V5".into(),
            group_key: "Z3JvdXA=".into(),
            ca_file: PathBuf::from("/tmp/ca.pem"),
            hub_port: 18883,
            state_dir: PathBuf::from("/tmp/state"),
            time_scale: 1,
            spec_config: PathBuf::from("/tmp/spec.json"),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let t = "dev --scope {id_scope} --id {registration_id} --key {device_key} --group {group_key} \
                 --ca {ca_file} --dps {dps_host}:{dps_port} --https {dps_https_port} --hub-port {hub_port} --state {state_dir}";
        assert_eq!(
            p().fill(t).unwrap(),
            "dev --scope 0ne0001 --id dev-1 --key a2V5 --group Z3JvdXA= --ca /tmp/ca.pem --dps 127.0.0.2:8883 \
             --https 443 --hub-port 18883 --state /tmp/state"
        );
    }

    #[test]
    fn unknown_placeholders_are_rejected_and_json_braces_survive() {
        assert!(
            p().fill("dev {idscope}")
                .unwrap_err()
                .contains("unknown placeholder {idscope}")
        );
        assert_eq!(
            p().fill(r#"echo '{"a": 1}'"#).unwrap(),
            r#"echo '{"a": 1}'"#
        );
    }
}
