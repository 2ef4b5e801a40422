//! `hubswap-device`: a sample thermostat built on `hubswap-client`.
//!
//! It provisions through DPS (or uses its cached assignment), then every `--interval` seconds
//! sends `temperature` telemetry, reports `maxTempSinceLastReboot`, acknowledges the writable
//! `targetTemperature`, answers the `getMaxMinReport` command, and prints every status
//! transition. It works against IoT Central or the local mock cloud:
//!
//! ```text
//! hubswap-device --id-scope 0ne00000MCK --registration-id dev1 --group-key <key> \
//!     --ca-file data/ca.pem --dps-host 127.0.0.2
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hubswap_client::{
    DeviceClient, DeviceClientBuilder, DeviceEvent, DpsTransport, FileStore, Telemetry, WhenFull,
};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const MODEL: &str = "dtmi:com:example:Thermostat;1";

#[derive(Parser, Debug)]
#[command(version, about = "A sample IoT Central thermostat on hubswap-client")]
struct Args {
    /// The DPS id scope.
    #[arg(long)]
    id_scope: String,
    /// The registration (device) id.
    #[arg(long)]
    registration_id: String,
    /// A group enrollment key (the device key is derived from it).
    #[arg(long, conflicts_with = "device_key")]
    group_key: Option<String>,
    /// An individual device key.
    #[arg(long)]
    device_key: Option<String>,
    /// Trust only this CA (PEM); default: the public roots.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The DPS host (default: the global endpoint).
    #[arg(long)]
    dps_host: Option<String>,
    /// The DPS port (default: 8883 for MQTT, 443 for HTTPS).
    #[arg(long)]
    dps_port: Option<u16>,
    /// DPS over `mqtt` or `https`.
    #[arg(long, default_value = "mqtt")]
    dps_transport: String,
    /// Connect to a hub at another address: `HOST=IP:PORT` (repeatable).
    #[arg(long = "hub-address")]
    hub_addresses: Vec<String>,
    /// Where to cache the assignment.
    #[arg(long, default_value = ".hubswap/assignment.json")]
    store: PathBuf,
    /// Seconds between telemetry messages.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// Milliseconds between telemetry messages (overrides `--interval`).
    #[arg(long)]
    interval_ms: Option<u64>,
    /// The port of every hub not named by `--hub-address` (IoT Hub: 8883).
    #[arg(long, default_value_t = 8883)]
    hub_port: u16,
    /// Run the spec's policy with every delay divided by this factor (1 = the defaults).
    #[arg(long, default_value_t = 1)]
    time_scale: u32,
    /// Run the spec's policy with this config (JSON of `hubswap_spec::Config`); overrides
    /// `--time-scale`.
    #[arg(long)]
    spec_config: Option<PathBuf>,
    /// Fleet pacing (SPEC §4.1): `DEVICES:REGISTRATIONS_PER_MINUTE`, the fleet that may
    /// re-register together and the DPS quota; spreads a hub failure's DPS registrations over
    /// N/R plus 10 %, in wall-clock time (not divided by `--time-scale`); overrides the spread
    /// of `--spec-config`.
    #[arg(long, value_name = "N:R", value_parser = parse_pacing)]
    pace_for_fleet: Option<(u32, u32)>,
    /// Send no telemetry (for idle measurements).
    #[arg(long)]
    idle: bool,
}

fn parse_pacing(s: &str) -> Result<(u32, u32), String> {
    let (n, r) = s
        .split_once(':')
        .ok_or_else(|| format!("{s}: expected DEVICES:REGISTRATIONS_PER_MINUTE"))?;
    let n = n.parse().map_err(|e| format!("{s}: devices: {e}"))?;
    let r: u32 = r
        .parse()
        .map_err(|e| format!("{s}: registrations per minute: {e}"))?;
    if r == 0 {
        return Err(format!("{s}: registrations per minute must be positive"));
    }
    Ok((n, r))
}

struct Thermostat {
    temperature: f64,
    target: f64,
    max: f64,
    min: f64,
    sum: f64,
    samples: u32,
}

impl Thermostat {
    fn tick(&mut self) -> f64 {
        self.temperature += (self.target - self.temperature) * 0.2;
        self.max = self.max.max(self.temperature);
        self.min = self.min.min(self.temperature);
        self.sum += self.temperature;
        self.samples += 1;
        self.temperature
    }
}

fn parse_hub_addresses(list: &[String]) -> Result<HashMap<String, (String, u16)>, String> {
    let mut map = HashMap::new();
    for item in list {
        let (host, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--hub-address {item}: expected HOST=IP:PORT"))?;
        let (ip, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("--hub-address {item}: missing port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("--hub-address {item}: bad port"))?;
        map.insert(host.to_owned(), (ip.to_owned(), port));
    }
    Ok(map)
}

fn configure(args: &Args) -> Result<DeviceClientBuilder, Box<dyn std::error::Error>> {
    let transport = match args.dps_transport.as_str() {
        "mqtt" => DpsTransport::Mqtt,
        "https" => DpsTransport::Https,
        other => return Err(format!("--dps-transport {other}: expected mqtt or https").into()),
    };
    let hubs = parse_hub_addresses(&args.hub_addresses)?;
    let hub_port = args.hub_port;
    let mut b = DeviceClient::builder()
        .id_scope(&args.id_scope)
        .registration_id(&args.registration_id)
        .model_id(MODEL)
        .dps_transport(transport)
        .store(FileStore::new(&args.store))
        .hub_resolver(move |host| {
            hubs.get(host)
                .cloned()
                .unwrap_or_else(|| (host.to_owned(), hub_port))
        });
    let mut timing = if let Some(path) = &args.spec_config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--spec-config {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("--spec-config {}: {e}", path.display()))?
    } else {
        hubswap_spec::Config::default().scaled_down(args.time_scale)
    };
    if let Some((n, r)) = args.pace_for_fleet {
        // DPS quotas are wall-clock rates, so the spread is not divided by `--time-scale`.
        timing = timing.paced_for_fleet(n, r);
    }
    b = b.timing(timing);
    b = match (&args.group_key, &args.device_key) {
        (Some(k), None) => b.group_key(k),
        (None, Some(k)) => b.device_key(k),
        _ => return Err("give --group-key or --device-key".into()),
    };
    if let Some(ca) = &args.ca_file {
        b = b.trust_ca_pem(std::fs::read(ca)?);
    }
    if args.dps_host.is_some() || args.dps_port.is_some() {
        let host = args
            .dps_host
            .clone()
            .unwrap_or_else(|| hubswap_client::GLOBAL_DPS_HOST.to_owned());
        b = b.dps_endpoint(
            host,
            args.dps_port.unwrap_or_else(|| transport.default_port()),
        );
    }
    Ok(b)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // `RUST_LOG` as `target=level` directives (no regular expressions: the binary stays small).
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) => v
            .parse::<tracing_subscriber::filter::Targets>()
            .map_err(|e| format!("RUST_LOG {v:?}: {e}"))?,
        Err(_) => tracing_subscriber::filter::Targets::new()
            .with_default(tracing_subscriber::filter::LevelFilter::ERROR),
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .init();
    let b = configure(&args)?;
    let (client, mut events) = b.build()?;

    let mut status = client.status();
    tokio::spawn(async move {
        loop {
            println!("status: {}", *status.borrow_and_update());
            if status.changed().await.is_err() {
                return;
            }
        }
    });

    let mut t = Thermostat {
        temperature: 20.0,
        target: 21.0,
        max: 20.0,
        min: 20.0,
        sum: 0.0,
        samples: 0,
    };
    let period = args
        .interval_ms
        .map_or(Duration::from_secs(args.interval.max(1)), |ms| {
            Duration::from_millis(ms.max(1))
        });
    let mut ticker = tokio::time::interval(period);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = ticker.tick(), if !args.idle => {
                let temp = t.tick();
                let sender = client.clone();
                let max = t.max;
                tokio::spawn(async move {
                    let msg = Telemetry::json(&json!({ "temperature": temp }));
                    match sender.send_telemetry(msg, WhenFull::Fail).await {
                        Ok(mid) => println!("telemetry {mid}: {temp:.2}"),
                        Err(e) => println!("telemetry failed: {e}"),
                    }
                    if let Err(e) = sender.report_properties(json!({ "maxTempSinceLastReboot": max })).await {
                        println!("report failed: {e}");
                    }
                });
            }
            ev = events.recv() => match ev {
                None => break,
                Some(DeviceEvent::Desired { version, patch }) => {
                    if let (Some(v), Some(target)) = (version, patch.get("targetTemperature").and_then(serde_json::Value::as_f64)) {
                        t.target = target;
                        println!("targetTemperature -> {target}");
                        let c = client.clone();
                        tokio::spawn(async move {
                            let _ = c.ack_writable(None, "targetTemperature", json!(target), 200, v, "completed").await;
                        });
                    }
                }
                Some(DeviceEvent::Command(cmd)) if cmd.name == "getMaxMinReport" => {
                    let avg = if t.samples == 0 { t.temperature } else { t.sum / f64::from(t.samples) };
                    println!("command getMaxMinReport");
                    cmd.respond(200, &json!({ "maxTemp": t.max, "minTemp": t.min, "avgTemp": avg }));
                }
                Some(DeviceEvent::Command(cmd)) => {
                    println!("unknown command {}", cmd.name);
                    cmd.respond(404, &json!({ "error": "unknown command" }));
                }
                Some(DeviceEvent::C2d(m)) => println!("c2d: {}", String::from_utf8_lossy(&m.payload)),
                Some(DeviceEvent::Twin(twin)) => {
                    if let Some(target) = twin.desired.get("targetTemperature").and_then(serde_json::Value::as_f64) {
                        t.target = target;
                    }
                    println!("twin synced");
                }
                Some(_) => {}
            }
        }
    }
    client.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_pacing;

    #[test]
    fn pacing_flag_takes_devices_and_a_positive_quota() {
        assert_eq!(parse_pacing("1000:500"), Ok((1000, 500)));
        for bad in ["1000", "1000:0", "x:5", "5:-1", ""] {
            let e = parse_pacing(bad).expect_err(bad);
            assert!(e.starts_with(bad), "the error names the input: {e}");
        }
    }
}
