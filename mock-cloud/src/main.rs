//! `hubswap-mock-cloud`: run the mock cloud (`serve`, the default), drive a running one
//! through its admin API (`devices`, `twin`, `method`, `c2d`, `log`, `fault`, `faults`), or run
//! a scenario file (`scenario`) against a running cloud or a built-in one.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hubswap_mock_cloud::scenario::{self, Scenario, StepOutcome};
use hubswap_mock_cloud::{AdminClient, CloudConfig, CloudInfo, Error, Fault, MockCloud};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "hubswap-mock-cloud",
    version,
    about = "A local DPS and IoT hubs that official Azure device SDKs accept"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mock cloud in the SDK-compatible layout (the default).
    Serve(ServeArgs),
    /// Devices of a running mock cloud.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Twins of a running mock cloud.
    Twin {
        #[command(subcommand)]
        command: TwinCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Direct methods.
    Method {
        #[command(subcommand)]
        command: MethodCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Cloud-to-device messages.
    C2d {
        #[command(subcommand)]
        command: C2dCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The observation log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Apply a fault to a running mock cloud (one subcommand per fault; see `fault --help`).
    Fault {
        #[command(subcommand)]
        fault: Fault,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List or clear the active faults of a running mock cloud.
    Faults {
        #[command(subcommand)]
        command: FaultsCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Run a scenario file (TOML) against a running mock cloud, or a built-in one when neither
    /// --admin-url nor --data-dir is given.
    Scenario {
        /// The scenario file.
        file: PathBuf,
        /// Multiply every time in the file (0.1 runs ten times faster).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
enum FaultsCommand {
    /// The active faults and the rendering options.
    List,
    /// Clear one fault (undoing it), or all.
    Clear {
        /// The fault id; none clears all.
        id: Option<u64>,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Keep state here and write DIR/cloud.json (default: a fresh temporary folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of hubs.
    #[arg(long, default_value_t = 2)]
    hubs: usize,
    /// DPS listens on this loopback IP; hub i on the IPs after it.
    #[arg(long, default_value = "127.0.0.2")]
    base_ip: Ipv4Addr,
    /// MQTT port of DPS and every hub (the SDKs hard-code 8883).
    #[arg(long, default_value_t = 8883)]
    mqtt_port: u16,
    /// DPS HTTPS port (the Node SDK's HTTP transport needs 443).
    #[arg(long, default_value_t = 443)]
    dps_https_port: u16,
    /// Admin API address.
    #[arg(long, default_value = "127.0.0.1:8480")]
    admin: SocketAddr,
    /// DPS id scope.
    #[arg(long, default_value = "0ne00000MCK")]
    id_scope: String,
    /// Service-side event broker (plain MQTT, topics `hubswap/#`); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:1883")]
    events: SocketAddr,
    /// Run without the event broker.
    #[arg(long)]
    no_events: bool,
    /// Observation-log records kept in memory; the oldest leave first (with `--data-dir`,
    /// `observations.jsonl` keeps every record).
    #[arg(long, default_value_t = hubswap_mock_cloud::log::DEFAULT_CAPACITY)]
    log_capacity: usize,
}

#[derive(Args)]
struct AdminArgs {
    /// Admin API of the running mock cloud.
    #[arg(long, global = true)]
    admin_url: Option<String>,
    /// Read the admin URL from DIR/cloud.json.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// List devices with their hub and connection.
    List,
    /// Show one device.
    Show { id: String },
}

#[derive(Subcommand)]
enum TwinCommand {
    /// Print a twin.
    Get { id: String },
    /// Merge a desired-properties patch (JSON) and push it to the device.
    SetDesired { id: String, patch: String },
}

#[derive(Subcommand)]
enum MethodCommand {
    /// Invoke a direct method or `component*command`.
    Invoke {
        id: String,
        name: String,
        /// JSON payload.
        #[arg(long, default_value = "null")]
        payload: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
}

#[derive(Subcommand)]
enum C2dCommand {
    /// Send a message; properties as `key=value`.
    Send {
        id: String,
        payload: String,
        #[arg(long = "prop")]
        properties: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print the log as JSON lines; with --follow, keep streaming.
    Tail {
        #[arg(long)]
        follow: bool,
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // rumqttd logs every client that goes away (the readiness probe too) as an error.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Scenario {
            file,
            time_scale,
            admin,
        }) => run_scenario(&file, time_scale, &admin).await,
        Some(other) => client(other).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let mut config = CloudConfig::sdk_layout(args.base_ip, args.hubs);
    config.id_scope = args.id_scope;
    config.dps.mqtt.set_port(args.mqtt_port);
    config.dps.https.set_port(args.dps_https_port);
    for hub in &mut config.hubs {
        hub.listen.set_port(args.mqtt_port);
    }
    config.admin = Some(args.admin);
    config.data_dir = args.data_dir;
    config.log_capacity = args.log_capacity;
    config.events = (!args.no_events).then_some(args.events);
    let cloud = MockCloud::start(config).await?;
    print_banner(&cloud.info());
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down");
    cloud.shutdown().await;
    Ok(())
}

fn print_banner(info: &CloudInfo) {
    println!("hubswap mock cloud is running");
    println!("  id scope:   {}", info.id_scope);
    for g in &info.groups {
        println!(
            "  group key:  {} (enrollment group {:?})",
            g.primary_key, g.id
        );
    }
    println!("  CA:         {}", info.ca_path.display());
    println!(
        "  DPS:        mqtts://{} and https://{}",
        info.dps_mqtt, info.dps_https
    );
    for h in &info.hubs {
        println!("  hub:        {} on {}", h.host, h.addr);
    }
    if let Some(url) = &info.admin_url {
        println!("  admin API:  {url}");
    }
    if let Some(url) = &info.events_url {
        println!("  events:     {url} (topics hubswap/#)");
    }
    if let Some(g) = info.groups.first() {
        println!();
        println!("example device (Python azure-iot-device 2.14):");
        println!(
            "  python3 mock-cloud/tests/sdk/python_device.py --ca {} --provisioning-host {} --id-scope {} --group-key {} --registration-id dev-1 --linger 60",
            info.ca_path.display(),
            info.dps_host,
            info.id_scope,
            g.primary_key
        );
    }
}

fn print_step(o: &StepOutcome) {
    println!(
        "step {} at {:?} (applied after {:?}): {} -> fault {}",
        o.step,
        o.at,
        o.applied_after,
        serde_json::to_string(&o.fault).unwrap_or_default(),
        o.id
    );
}

async fn run_scenario(file: &std::path::Path, scale: f64, admin: &AdminArgs) -> Result<(), Error> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::InvalidRequest("--time-scale must be > 0".into()));
    }
    let s = Scenario::load(file)?.scaled(scale);
    println!(
        "scenario {:?}: {} step(s), {:?}",
        s.name,
        s.steps.len(),
        s.length()
    );
    let outcomes = if admin.admin_url.is_some() || admin.data_dir.is_some() {
        scenario::run(&s, &admin_client(admin)?, print_step).await?
    } else {
        let config = CloudConfig::for_tests(s.hubs).with_events();
        let cloud = MockCloud::start(config).await?;
        println!(
            "built-in mock cloud: {}",
            serde_json::to_string(&cloud.info())?
        );
        let result = scenario::run(&s, &cloud, print_step).await;
        for r in cloud.log().records() {
            if matches!(r.event, hubswap_mock_cloud::Event::Fault { .. }) {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
        cloud.shutdown().await;
        result?
    };
    println!("scenario complete: {} step(s) applied", outcomes.len());
    Ok(())
}

fn admin_client(args: &AdminArgs) -> Result<AdminClient, Error> {
    if let Some(url) = &args.admin_url {
        return AdminClient::new(url);
    }
    if let Some(dir) = &args.data_dir {
        let path = dir.join("cloud.json");
        let bytes = std::fs::read(&path).map_err(|source| Error::File {
            path: path.clone(),
            source,
        })?;
        let info: CloudInfo = serde_json::from_slice(&bytes)?;
        let url = info
            .admin_url
            .ok_or_else(|| Error::Admin("that mock cloud runs without an admin API".into()))?;
        return AdminClient::new(&url);
    }
    AdminClient::new("http://127.0.0.1:8480")
}

fn print(v: &Value) -> Result<(), Error> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[allow(clippy::too_many_lines, reason = "one match arm per subcommand")]
async fn client(command: Command) -> Result<(), Error> {
    match command {
        Command::Serve(_) | Command::Scenario { .. } => Ok(()),
        Command::Fault { fault, admin } => {
            let body = serde_json::to_value(&fault)?;
            print(
                &admin_client(&admin)?
                    .request("POST", "/api/faults", Some(&body))
                    .await?,
            )
        }
        Command::Faults { command, admin } => {
            let c = admin_client(&admin)?;
            match command {
                FaultsCommand::List => print(&c.request("GET", "/api/faults", None).await?),
                FaultsCommand::Clear { id: Some(id) } => print(
                    &c.request("DELETE", &format!("/api/faults/{id}"), None)
                        .await?,
                ),
                FaultsCommand::Clear { id: None } => {
                    print(&c.request("DELETE", "/api/faults", None).await?)
                }
            }
        }
        Command::Devices { command, admin } => {
            let c = admin_client(&admin)?;
            match command {
                DevicesCommand::List => {
                    let devices = c.request("GET", "/api/devices", None).await?;
                    for d in devices.as_array().into_iter().flatten() {
                        println!(
                            "{}\thub={}\tconnected={}\tblocked={}\tmodel={}",
                            d["id"].as_str().unwrap_or("?"),
                            d["hub"].as_str().unwrap_or("?"),
                            d["connected_to"].as_str().unwrap_or("-"),
                            d["blocked"],
                            d["model_id"].as_str().unwrap_or("-"),
                        );
                    }
                    Ok(())
                }
                DevicesCommand::Show { id } => print(
                    &c.request("GET", &format!("/api/devices/{id}"), None)
                        .await?,
                ),
            }
        }
        Command::Twin { command, admin } => {
            let c = admin_client(&admin)?;
            match command {
                TwinCommand::Get { id } => print(
                    &c.request("GET", &format!("/api/devices/{id}/twin"), None)
                        .await?,
                ),
                TwinCommand::SetDesired { id, patch } => {
                    let patch: Value = serde_json::from_str(&patch)?;
                    print(
                        &c.request(
                            "PATCH",
                            &format!("/api/devices/{id}/twin/desired"),
                            Some(&patch),
                        )
                        .await?,
                    )
                }
            }
        }
        Command::Method {
            command:
                MethodCommand::Invoke {
                    id,
                    name,
                    payload,
                    timeout,
                },
            admin,
        } => {
            let c = admin_client(&admin)?;
            let payload: Value = serde_json::from_str(&payload)?;
            let body = json!({"payload": payload, "timeout_secs": timeout});
            print(
                &c.request(
                    "POST",
                    &format!("/api/devices/{id}/methods/{name}"),
                    Some(&body),
                )
                .await?,
            )
        }
        Command::C2d {
            command:
                C2dCommand::Send {
                    id,
                    payload,
                    properties,
                },
            admin,
        } => {
            let c = admin_client(&admin)?;
            let props: serde_json::Map<String, Value> = properties
                .iter()
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
                    None => (p.clone(), Value::Null),
                })
                .collect();
            let body = json!({"payload": payload, "properties": props});
            print(
                &c.request("POST", &format!("/api/devices/{id}/c2d"), Some(&body))
                    .await?,
            )
        }
        Command::Log {
            command: LogCommand::Tail { follow, since },
            admin,
        } => {
            let c = admin_client(&admin)?;
            if follow {
                c.stream(&format!("/api/log/stream?since={since}"), |line| {
                    println!("{line}");
                    true
                })
                .await
            } else {
                let records = c
                    .request("GET", &format!("/api/log?since={since}"), None)
                    .await?;
                for r in records.as_array().into_iter().flatten() {
                    println!("{r}");
                }
                Ok(())
            }
        }
    }
}
