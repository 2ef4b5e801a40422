//! Benchmark: the mock cloud's capacity on this machine, with the same load generator run
//! against mosquitto for comparison.
//!
//! ```text
//! cargo bench -p hubswap-conformance --bench capacity
//! cargo bench -p hubswap-conformance --bench capacity -- --devices 10000 --publishers 1000
//! ```
//!
//! It measures, per target (`mock`, then `mosquitto`):
//!
//! 1. **Concurrent connected devices**: it opens `--devices` MQTT 3.1.1 connections over TLS
//!    (each: TCP, TLS handshake, CONNECT with a SAS token, CONNACK 0) and holds them idle; the
//!    server's memory per connection is its `VmRSS` growth divided by the connections held.
//! 2. **Connection acceptance rate**: the same ramp, with `--concurrency` connects in flight:
//!    connections per second, connect latency, and the server's CPU per connection.
//! 3. **Telemetry ingest**: `--publishers` fresh connections publish QoS 1 telemetry for
//!    `--duration` seconds, each with `--window` unacknowledged messages; messages per second
//!    is the count of PUBACKs received within the window of time.
//!
//! The mock cloud runs in a child process (this executable with `--serve-mock`): its devices
//! `dev-0`, `dev-1`, ... are registered on its one hub through the Rust API (`register_device`)
//! before anything is measured, and every CONNECT carries a real SAS token that it verifies.
//! mosquitto (from apt) runs with a generated configuration on a free loopback port, TLS with
//! a generated certificate, `allow_anonymous`: it gets the very same packets but does not
//! verify the tokens. Both use one TLS stack on the client side (rustls, TLS 1.3, no session
//! resumption, so every connection pays a full handshake). Only loopback is used.
//!
//! Options (also as `HUBSWAP_BENCH_<NAME>` environment variables): `--devices`,
//! `--concurrency`, `--publishers`, `--window`, `--duration` (s), `--payload` (bytes),
//! `--settle` (s), `--targets mock,mosquitto`, `--mosquitto PATH`, `--keep-alive` (s).
//! Without `--bench` (as under `cargo test --benches`) the defaults shrink to a smoke run.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary reports on the terminal"
)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    MockProcess, Opts, Result, cpu_of, device_id, mib, micros_each, own_cpu, per_sec, percentile,
    rss_kib, status_kib, table, telemetry_payload,
};
use futures_util::{SinkExt as _, StreamExt as _};
use hubswap_mock_cloud::certs::CertificateAuthority;
use hubswap_mock_cloud::sas;
use rumqttc::mqttbytes::v4::Codec;
use rumqttc::{Connect, ConnectReturnCode, Packet, Publish, QoS};
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

/// The hub host name devices use in their username and token (the mock's first hub in the
/// test layout; mosquitto gets the same strings).
const HUB: &str = "hub-0.localhost";
/// Telemetry topic suffix: a small property bag, as SDKs send.
const PROPS: &str = "$.ct=application%2Fjson&$.ce=utf-8";

type Conn = Framed<TlsStream<TcpStream>, Codec>;

struct Config {
    devices: usize,
    concurrency: usize,
    publishers: usize,
    window: usize,
    duration: Duration,
    payload: usize,
    settle: Duration,
    keep_alive: u16,
    targets: Vec<String>,
    mosquitto: String,
}

impl Config {
    fn from(opts: &mut Opts) -> Result<Self> {
        let full = opts.bench;
        let c = Self {
            devices: opts.get("devices", if full { 10_000 } else { 50 })?,
            concurrency: opts.get("concurrency", 64)?,
            publishers: opts.get("publishers", if full { 1000 } else { 10 })?,
            window: opts.get("window", 8)?,
            duration: Duration::from_secs_f64(opts.get("duration", if full { 10.0 } else { 1.0 })?),
            payload: opts.get("payload", 128)?,
            settle: Duration::from_secs_f64(opts.get("settle", if full { 5.0 } else { 0.5 })?),
            keep_alive: opts.get("keep-alive", 600)?,
            targets: opts
                .get("targets", "mock,mosquitto".to_owned())?
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            mosquitto: opts.get("mosquitto", "mosquitto".to_owned())?,
        };
        if c.concurrency == 0 || c.window == 0 || c.window > 60_000 {
            return Err("--concurrency must be > 0 and --window in 1..=60000".into());
        }
        if c.duration.is_zero() {
            return Err("--duration must be > 0".into());
        }
        if let Some(t) = c.targets.iter().find(|t| *t != "mock" && *t != "mosquitto") {
            return Err(format!("unknown target {t:?} (mock, mosquitto)"));
        }
        Ok(c)
    }
}

/// What a device sends: ids, credentials and its telemetry topic.
struct Creds {
    client_id: String,
    username: String,
    password: String,
    topic: String,
}

fn credentials(group_key: &str, n: usize) -> Result<Vec<Creds>> {
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs()
        + 6 * 3600;
    (0..n)
        .map(|i| {
            let id = device_id(i);
            let key = sas::derive_device_key(group_key, &id).ok_or("bad group key")?;
            let password = sas::mint(&key, &format!("{HUB}/devices/{id}"), expiry, None)
                .ok_or("bad device key")?;
            Ok(Creds {
                username: format!("{HUB}/{id}/?api-version=2021-04-12"),
                topic: format!("devices/{id}/messages/events/{PROPS}"),
                client_id: id,
                password,
            })
        })
        .collect()
}

/// A server under test.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
    tls: TlsConnector,
    /// Loopback source addresses to spread client ports over.
    sources: Vec<IpAddr>,
}

fn connector(ca_pem: &str) -> Result<TlsConnector> {
    let ca = hubswap_mock_cloud::certs::first_pem_der(ca_pem).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| format!("CA: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Every connection pays a full handshake, as a fleet of distinct devices would.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Why a connect failed, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Tcp(String),
    Tls(String),
    Refused(String),
    Closed,
    Timeout,
    Protocol(String),
}

struct Connected {
    conn: Conn,
    took: Duration,
    tls: String,
}

async fn connect(
    target: &Target,
    source: IpAddr,
    creds: &Creds,
    keep_alive: u16,
) -> Result<Connected, Failure> {
    let started = Instant::now();
    let work = async {
        let socket = TcpSocket::new_v4().map_err(|e| Failure::Tcp(e.kind().to_string()))?;
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| Failure::Tcp(format!("bind: {}", e.kind())))?;
        let tcp = socket
            .connect(target.addr)
            .await
            .map_err(|e| Failure::Tcp(e.kind().to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let tls = target
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| Failure::Tls(e.to_string()))?;
        let version = format!(
            "{:?} {:?}",
            tls.get_ref().1.protocol_version(),
            tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite())
        );
        let mut conn = Framed::new(
            tls,
            Codec {
                max_incoming_size: 64 * 1024,
                max_outgoing_size: 300 * 1024,
            },
        );
        let mut c = Connect::new(creds.client_id.as_str());
        c.keep_alive = keep_alive;
        c.clean_session = true;
        c.set_login(creds.username.as_str(), creds.password.as_str());
        conn.send(Packet::Connect(c))
            .await
            .map_err(|_| Failure::Closed)?;
        match conn.next().await {
            Some(Ok(Packet::ConnAck(a))) if a.code == ConnectReturnCode::Success => {
                Ok((conn, version))
            }
            Some(Ok(Packet::ConnAck(a))) => Err(Failure::Refused(format!("{:?}", a.code))),
            Some(Ok(p)) => Err(Failure::Protocol(format!("{p:?}"))),
            Some(Err(e)) => Err(Failure::Protocol(e.to_string())),
            None => Err(Failure::Closed),
        }
    };
    match tokio::time::timeout(Duration::from_mins(1), work).await {
        Ok(Ok((conn, tls))) => Ok(Connected {
            conn,
            took: started.elapsed(),
            tls,
        }),
        Ok(Err(f)) => Err(f),
        Err(_) => Err(Failure::Timeout),
    }
}

/// The outcome of connecting many devices.
struct Ramp {
    /// The connections held, with the device index each one is.
    conns: Vec<(usize, Conn)>,
    failures: BTreeMap<Failure, usize>,
    latencies: Vec<Duration>,
    wall: Duration,
    server_cpu: Duration,
    generator_cpu: Duration,
    tls: String,
}

async fn ramp(target: &Arc<Target>, creds: &Arc<Vec<Creds>>, n: usize, cfg: &Config) -> Ramp {
    let permits = Arc::new(Semaphore::new(cfg.concurrency));
    let (cpu0, own0) = (cpu_of(target.pid).unwrap_or_default(), own_cpu());
    let started = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n {
        let (target, creds, permits) =
            (Arc::clone(target), Arc::clone(creds), Arc::clone(&permits));
        let keep_alive = cfg.keep_alive;
        set.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return Err(Failure::Closed);
            };
            let source = target.sources[i % target.sources.len()];
            connect(&target, source, &creds[i], keep_alive)
                .await
                .map(|c| (i, c))
        });
    }
    let mut out = Ramp {
        conns: Vec::with_capacity(n),
        failures: BTreeMap::new(),
        latencies: Vec::with_capacity(n),
        wall: Duration::ZERO,
        server_cpu: Duration::ZERO,
        generator_cpu: Duration::ZERO,
        tls: String::new(),
    };
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((i, c))) => {
                if out.tls.is_empty() {
                    out.tls = c.tls;
                }
                out.latencies.push(c.took);
                out.conns.push((i, c.conn));
            }
            Ok(Err(f)) => *out.failures.entry(f).or_default() += 1,
            Err(e) => {
                *out.failures
                    .entry(Failure::Protocol(e.to_string()))
                    .or_default() += 1;
            }
        }
    }
    out.wall = started.elapsed();
    out.server_cpu = cpu_of(target.pid).unwrap_or_default().saturating_sub(cpu0);
    out.generator_cpu = own_cpu().saturating_sub(own0);
    out.latencies.sort();
    out
}

/// Publishes QoS 1 with `window` in flight until `stop`; returns the PUBACKs received by then
/// and all PUBACKs (those of the messages still in flight at `stop` too).
async fn publish(
    mut conn: Conn,
    topic: String,
    payload: Bytes,
    window: usize,
    start: tokio::time::Instant,
    stop: tokio::time::Instant,
) -> Result<(u64, u64)> {
    let mut pkid: u16 = 0;
    let mut next = |topic: &str| {
        pkid = pkid.checked_add(1).unwrap_or(1);
        let mut p = Publish::from_bytes(topic, QoS::AtLeastOnce, payload.clone());
        p.pkid = pkid;
        Packet::Publish(p)
    };
    tokio::time::sleep_until(start).await;
    for _ in 0..window {
        conn.feed(next(&topic)).await.map_err(|e| e.to_string())?;
    }
    conn.flush().await.map_err(|e| e.to_string())?;
    let (mut acked, mut total, mut outstanding) = (0u64, 0u64, window);
    while outstanding > 0 {
        let item = tokio::time::timeout_at(stop + Duration::from_secs(30), conn.next())
            .await
            .map_err(|_| "no PUBACK within 30 s after the end".to_owned())?;
        match item {
            Some(Ok(Packet::PubAck(_))) => {
                outstanding -= 1;
                total += 1;
                if tokio::time::Instant::now() < stop {
                    acked += 1;
                    conn.send(next(&topic)).await.map_err(|e| e.to_string())?;
                    outstanding += 1;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection closed".into()),
        }
    }
    let _ = conn.send(Packet::Disconnect).await;
    Ok((acked, total))
}

struct Ingest {
    publishers: usize,
    connect_failures: BTreeMap<Failure, usize>,
    publish_errors: BTreeMap<String, usize>,
    /// PUBACKs received within the measured window of time.
    acked: u64,
    /// All PUBACKs, including those of messages in flight when the window closed.
    acked_total: u64,
    server_cpu: Duration,
    generator_cpu: Duration,
    rss_before: u64,
    rss_after: u64,
}

async fn ingest(target: &Arc<Target>, creds: &Arc<Vec<Creds>>, cfg: &Config) -> Result<Ingest> {
    let rss_before = rss_kib(target.pid)?;
    let r = ramp(target, creds, cfg.publishers, cfg).await;
    let payload = Bytes::from(telemetry_payload(cfg.payload));
    let start = tokio::time::Instant::now() + Duration::from_millis(500);
    let stop = start + cfg.duration;
    let publishers = r.conns.len();
    let mut set = JoinSet::new();
    for (i, conn) in r.conns {
        let topic = creds[i].topic.clone();
        set.spawn(publish(
            conn,
            topic,
            payload.clone(),
            cfg.window,
            start,
            stop,
        ));
    }
    tokio::time::sleep_until(start).await;
    let (cpu0, own0) = (cpu_of(target.pid)?, own_cpu());
    let (mut acked, mut acked_total) = (0, 0);
    let mut publish_errors = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((a, t))) => {
                acked += a;
                acked_total += t;
            }
            Ok(Err(e)) => *publish_errors.entry(e).or_default() += 1,
            Err(e) => *publish_errors.entry(e.to_string()).or_default() += 1,
        }
    }
    let server_cpu = cpu_of(target.pid)?.saturating_sub(cpu0);
    let generator_cpu = own_cpu().saturating_sub(own0);
    Ok(Ingest {
        publishers,
        connect_failures: r.failures,
        publish_errors,
        acked,
        acked_total,
        server_cpu,
        generator_cpu,
        rss_before,
        rss_after: rss_kib(target.pid)?,
    })
}

/// Everything measured on one target.
struct Measured {
    name: String,
    rss_idle: u64,
    ramp: Ramp,
    held: usize,
    still_open: usize,
    rss_held: u64,
    hwm_held: u64,
    rss_closed: u64,
    ingest: Ingest,
}

async fn measure(target: Arc<Target>, creds: Arc<Vec<Creds>>, cfg: &Config) -> Result<Measured> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kib(target.pid)?;
    println!(
        "[{}] connecting {} devices, {} at a time ...",
        target.name, cfg.devices, cfg.concurrency
    );
    let mut ramp = ramp(&target, &creds, cfg.devices, cfg).await;
    let held = ramp.conns.len();
    println!(
        "[{}] {held} connected in {:.1} s; holding them for {:?}",
        target.name,
        ramp.wall.as_secs_f64(),
        cfg.settle
    );
    tokio::time::sleep(cfg.settle).await;
    let rss_held = rss_kib(target.pid)?;
    let hwm_held = status_kib(target.pid, "VmHWM").unwrap_or(0);
    // A held connection is still open when reading it would block (no EOF, no error, no packet).
    let mut still_open = 0;
    for (_, c) in &mut ramp.conns {
        use futures_util::FutureExt as _;
        if c.next().now_or_never().is_none() {
            still_open += 1;
        }
    }
    drop(std::mem::take(&mut ramp.conns));
    tokio::time::sleep(cfg.settle).await;
    let rss_closed = rss_kib(target.pid)?;
    println!(
        "[{}] closed {held}; {} publishers publish QoS 1 for {:?} ...",
        target.name, cfg.publishers, cfg.duration
    );
    let ingest = ingest(&target, &creds, cfg).await?;
    Ok(Measured {
        name: target.name.to_owned(),
        rss_idle,
        ramp,
        held,
        still_open,
        rss_held,
        hwm_held,
        rss_closed,
        ingest,
    })
}

impl Measured {
    fn per_conn_kib(&self) -> f64 {
        match self.held {
            0 => 0.0,
            n => common::kib_f(self.rss_held.saturating_sub(self.rss_idle)) / usize_f(n),
        }
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "connection counts far below 2^52"
)]
fn usize_f(n: usize) -> f64 {
    n as f64
}

/// Loopback source addresses, enough for `n` client ports.
fn source_addresses(n: usize) -> Vec<IpAddr> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            let mut it = r.split_whitespace().map(str::parse::<usize>);
            match (it.next(), it.next()) {
                (Some(Ok(lo)), Some(Ok(hi))) if hi > lo => Some(hi - lo + 1),
                _ => None,
            }
        })
        .unwrap_or(28_000);
    // Stay well inside the range: closed connections linger in TIME_WAIT, and the kernel's
    // search for a free port to bind gets slow as a source address fills up.
    let per_source = (range / 4).max(1);
    let count = n.div_ceil(per_source).clamp(1, 200);
    (0..count)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, u8::try_from(i + 1).unwrap_or(1))))
        .collect()
}

/// mosquitto on a free loopback port with TLS (a generated CA and server certificate).
struct Mosquitto {
    child: Child,
    addr: SocketAddr,
    ca_pem: String,
    version: String,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| name.into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("picking a free port: {e}"))
}

impl Mosquitto {
    /// `Ok(None)` (with the reason printed) when mosquitto is not installed.
    fn start(program: &str) -> Result<Option<Self>> {
        let Some(bin) = find_program(program) else {
            println!(
                "SKIPPED mosquitto: {program:?} not found (install it with `apt-get install -y mosquitto`)"
            );
            return Ok(None);
        };
        let version = Command::new(&bin)
            .arg("-h")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
        let ca = CertificateAuthority::generate("hubswap bench mosquitto CA")
            .map_err(|e| e.to_string())?;
        let server = ca
            .issue_server(&["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok::<_, String>(p)
        };
        let cafile = write("ca.pem", ca.cert_pem())?;
        let certfile = write("server.pem", &server.cert_pem)?;
        let keyfile = write("server.key", &server.key_pem)?;
        let port = free_port()?;
        let conf = format!(
            "# generated by the hubswap capacity benchmark\n\
             per_listener_settings false\n\
             allow_anonymous true\n\
             persistence false\n\
             log_dest stderr\n\
             log_type error\n\
             set_tcp_nodelay true\n\
             max_connections -1\n\
             user root\n\
             listener {port} 127.0.0.1\n\
             cafile {}\n\
             certfile {}\n\
             keyfile {}\n",
            cafile.display(),
            certfile.display(),
            keyfile.display()
        );
        let conf_path = write("mosquitto.conf", &conf)?;
        // Its error log (every peer that leaves without a TLS close_notify is one line) goes to
        // a file, shown only when it fails to start.
        let log_path = dir.path().join("mosquitto.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut m = Self {
            child,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            ca_pem: ca.cert_pem().to_owned(),
            version,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("mosquitto exited at start ({status}):\n{log}"));
            }
            if std::net::TcpStream::connect_timeout(&m.addr, Duration::from_millis(200)).is_ok() {
                return Ok(Some(m));
            }
            if Instant::now() > deadline {
                return Err("mosquitto did not listen within 10 s".into());
            }
            // A bounded readiness poll: mosquitto signals nothing when it starts listening.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn failures(f: &BTreeMap<Failure, usize>) -> String {
    if f.is_empty() {
        return "0".into();
    }
    f.iter()
        .map(|(k, v)| format!("{v}× {k:?}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn main() -> ExitCode {
    let mut opts = Opts::from_env();
    let result = if opts.flag("serve-mock") {
        opts.get("mock-hubs", 1usize).and_then(|hubs| {
            let devices = opts.get("mock-devices", 0usize)?;
            opts.finish()?;
            common::serve_mock_child(hubs, devices)
        })
    } else {
        run(&mut opts)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capacity: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "set-up, both targets, then the tables"
)]
fn run(opts: &mut Opts) -> Result<()> {
    let cfg = Config::from(opts)?;
    opts.finish()?;
    let limit = common::raise_fd_limit();
    let need = cfg.devices.max(cfg.publishers) + 256;
    if usize::try_from(limit).unwrap_or(usize::MAX) < need {
        return Err(format!(
            "the open-file limit is {limit}, below the {need} this run needs: raise the hard \
             limit (ulimit -Hn) or lower --devices"
        ));
    }
    let sources = source_addresses(cfg.devices.max(cfg.publishers));
    println!("hubswap capacity benchmark");
    if !opts.bench {
        println!("(smoke configuration: `cargo bench` runs the full defaults)");
    }
    println!("machine: {}", common::machine_note());
    println!(
        "load: {} devices, {} connects in flight, {} publishers × window {} × {:?}, payload {} B, \
         keep-alive {} s, {} source address(es), open-file limit {limit}",
        cfg.devices,
        cfg.concurrency,
        cfg.publishers,
        cfg.window,
        cfg.duration,
        cfg.payload,
        cfg.keep_alive,
        sources.len()
    );
    let group_key = sas::random_key();
    let n = cfg.devices.max(cfg.publishers);
    let creds = Arc::new(credentials(&group_key, n)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;

    let mut results: Vec<Measured> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for t in &cfg.targets {
        if t == "mock" {
            println!(
                "\n[mock] starting the mock cloud in a child process, registering {n} devices ..."
            );
            let mock = MockProcess::spawn(1, n, &group_key)?;
            let (host, addr) = mock
                .info
                .cloud
                .hubs
                .first()
                .cloned()
                .ok_or("the mock cloud has no hub")?;
            if host != HUB {
                return Err(format!("the mock's hub is {host}, expected {HUB}"));
            }
            notes.push(format!(
                "mock cloud: registry of {n} devices took {:.2} s and {} (from {} to {})",
                mock.info.register_secs,
                mib(mock
                    .info
                    .rss_registered_kib
                    .saturating_sub(mock.info.rss_empty_kib)),
                mib(mock.info.rss_empty_kib),
                mib(mock.info.rss_registered_kib)
            ));
            let target = Arc::new(Target {
                name: "mock",
                addr,
                pid: mock.pid(),
                tls: connector(&mock.info.cloud.ca_pem)?,
                sources: sources.clone(),
            });
            let m = rt.block_on(measure(target, Arc::clone(&creds), &cfg));
            mock.stop();
            results.push(m?);
        } else {
            let Some(mosq) = Mosquitto::start(&cfg.mosquitto)? else {
                continue;
            };
            println!("\n[mosquitto] {} on {}", mosq.version, mosq.addr);
            notes.push(format!(
                "mosquitto: {} (single-threaded), TLS, allow_anonymous: it does not verify the SAS tokens",
                mosq.version
            ));
            let target = Arc::new(Target {
                name: "mosquitto",
                addr: mosq.addr,
                pid: mosq.child.id(),
                tls: connector(&mosq.ca_pem)?,
                sources: sources.clone(),
            });
            let m = rt.block_on(measure(target, Arc::clone(&creds), &cfg));
            drop(mosq);
            results.push(m?);
        }
    }
    if let Some(tls) = results.iter().map(|m| &m.ramp.tls).find(|t| !t.is_empty()) {
        notes.push(format!(
            "client TLS: {tls}, no resumption (full handshakes)"
        ));
    }
    for r in &results {
        if r.ramp.tls != results[0].ramp.tls {
            notes.push(format!("{}: negotiated {}", r.name, r.ramp.tls));
        }
    }
    for r in &results {
        let i = &r.ingest;
        let grown = i.rss_after.saturating_sub(i.rss_before);
        if r.name == "mock" && grown * 1024 > 100 * i.acked_total.max(1) {
            notes.push(format!(
                "mock cloud: its RSS grew by {} during ingest: its observation log keeps every \
                 telemetry record (payload and property bag) in memory",
                mib(grown)
            ));
        }
    }
    print_tables(&cfg, &results);
    println!();
    for n in notes {
        println!("note: {n}");
    }
    Ok(())
}

#[allow(clippy::too_many_lines, reason = "four tables")]
fn print_tables(cfg: &Config, results: &[Measured]) {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                cfg.devices.to_string(),
                m.held.to_string(),
                m.still_open.to_string(),
                failures(&m.ramp.failures),
                mib(m.rss_idle),
                mib(m.rss_held),
                format!("{:.1} KiB", m.per_conn_kib()),
                mib(m.hwm_held),
                mib(m.rss_closed),
            ]
        })
        .collect();
    table(
        "Concurrent connected devices (idle, TLS, SAS CONNECT)",
        &[
            "server",
            "asked",
            "connected",
            "still open after settle",
            "failed",
            "RSS before",
            "RSS holding",
            "RSS per connection",
            "VmHWM",
            "RSS after closing all",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            let n = m.held as u64;
            vec![
                m.name.clone(),
                m.held.to_string(),
                format!("{:.2} s", m.ramp.wall.as_secs_f64()),
                format!("{:.0}", per_sec(n, m.ramp.wall)),
                format!("{:.1?}", percentile(&m.ramp.latencies, 50)),
                format!("{:.1?}", percentile(&m.ramp.latencies, 99)),
                format!("{:.1?}", percentile(&m.ramp.latencies, 100)),
                format!(
                    "{:.0} µs ({:.2} cores)",
                    micros_each(m.ramp.server_cpu, n),
                    m.ramp.server_cpu.as_secs_f64() / m.ramp.wall.as_secs_f64().max(1e-9)
                ),
                format!("{:.0} µs", micros_each(m.ramp.generator_cpu, n)),
            ]
        })
        .collect();
    table(
        &format!(
            "Connection acceptance: TCP + TLS + CONNECT (SAS) + CONNACK, {} in flight",
            cfg.concurrency
        ),
        &[
            "server",
            "connections",
            "wall",
            "accepted/s",
            "p50",
            "p99",
            "max",
            "server CPU per connection",
            "generator CPU per connection",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            let i = &m.ingest;
            let errors = if i.publish_errors.is_empty() {
                "0".to_owned()
            } else {
                i.publish_errors
                    .iter()
                    .map(|(k, v)| format!("{v}× {k}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            vec![
                m.name.clone(),
                format!("{} ({})", i.publishers, failures(&i.connect_failures)),
                format!("{:.0}", per_sec(i.acked, cfg.duration)),
                i.acked_total.to_string(),
                format!("{:.1} µs", micros_each(i.server_cpu, i.acked_total)),
                format!(
                    "{:.2}",
                    i.server_cpu.as_secs_f64() / cfg.duration.as_secs_f64().max(1e-9)
                ),
                format!(
                    "{:.1} µs ({:.2} cores)",
                    micros_each(i.generator_cpu, i.acked_total),
                    i.generator_cpu.as_secs_f64() / cfg.duration.as_secs_f64().max(1e-9)
                ),
                format!("{} → {}", mib(i.rss_before), mib(i.rss_after)),
                format!(
                    "{:.0} B",
                    common::kib_f(i.rss_after.saturating_sub(i.rss_before)) * 1024.0
                        / common::float(i.acked_total.max(1))
                ),
                errors,
            ]
        })
        .collect();
    table(
        &format!(
            "Telemetry ingest, QoS 1: {} publishers × {} in flight, {} B payload, {:?}",
            cfg.publishers, cfg.window, cfg.payload, cfg.duration
        ),
        &[
            "server",
            "publishers connected (failed)",
            "msgs/s (PUBACKs)",
            "msgs acked",
            "server CPU per msg",
            "server cores busy",
            "generator CPU per msg",
            "server RSS",
            "RSS growth per msg",
            "publish errors",
        ],
        &rows,
    );
    let (Some(mock), Some(mosq)) = (
        results.iter().find(|m| m.name == "mock"),
        results.iter().find(|m| m.name == "mosquitto"),
    ) else {
        return;
    };
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".into()
        }
    };
    let rate = |m: &Measured| per_sec(m.held as u64, m.ramp.wall);
    let ingest = |m: &Measured| per_sec(m.ingest.acked, cfg.duration);
    let conn_cpu = |m: &Measured| micros_each(m.ramp.server_cpu, m.held as u64);
    let msg_cpu = |m: &Measured| micros_each(m.ingest.server_cpu, m.ingest.acked_total);
    let rows = vec![
        vec![
            "concurrent devices held".into(),
            mock.held.to_string(),
            mosq.held.to_string(),
            ratio(usize_f(mock.held), usize_f(mosq.held)),
            "10,000 devices".into(),
        ],
        vec![
            "RSS per connection (KiB)".into(),
            format!("{:.1}", mock.per_conn_kib()),
            format!("{:.1}", mosq.per_conn_kib()),
            ratio(mock.per_conn_kib(), mosq.per_conn_kib()),
            "-".into(),
        ],
        vec![
            "connections accepted/s".into(),
            format!("{:.0}", rate(mock)),
            format!("{:.0}", rate(mosq)),
            ratio(rate(mock), rate(mosq)),
            "-".into(),
        ],
        vec![
            "server CPU per connection (µs)".into(),
            format!("{:.0}", conn_cpu(mock)),
            format!("{:.0}", conn_cpu(mosq)),
            ratio(conn_cpu(mock), conn_cpu(mosq)),
            "-".into(),
        ],
        vec![
            "ingest msgs/s (QoS 1)".into(),
            format!("{:.0}", ingest(mock)),
            format!("{:.0}", ingest(mosq)),
            ratio(ingest(mock), ingest(mosq)),
            "≥ 1.00 (at or above mosquitto)".into(),
        ],
        vec![
            "server CPU per message (µs)".into(),
            format!("{:.1}", msg_cpu(mock)),
            format!("{:.1}", msg_cpu(mosq)),
            ratio(msg_cpu(mock), msg_cpu(mosq)),
            "-".into(),
        ],
    ];
    table(
        "Mock cloud against mosquitto (same load generator, same machine)",
        &["measure", "mock", "mosquitto", "mock / mosquitto", "target"],
        &rows,
    );
}
