//! Shared by the `capacity` and `client_cost` benchmarks: options, `/proc` and `getrusage`
//! readings, the mock cloud in a child process (so that the load generator's memory is not
//! counted), and table printing.
#![allow(
    dead_code,
    reason = "two bench binaries include this module and each uses a part of it"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hubswap_client::LocalCloud;
use hubswap_conformance::local::local_cloud;
use hubswap_mock_cloud::{CloudConfig, MockCloud};
use serde::{Deserialize, Serialize};

/// Every benchmark error is a message for the terminal.
pub(crate) type Result<T, E = String> = std::result::Result<T, E>;

/// Command-line options: `--name value`, `--name=value`, or the environment variable
/// `HUBSWAP_BENCH_NAME` (upper case, `-` → `_`).
pub(crate) struct Opts {
    given: Vec<(String, Option<String>)>,
    known: Vec<&'static str>,
    /// Whether `--bench` was given: `cargo bench` passes it, `cargo test --benches` does not
    /// (then the benchmarks run a small smoke configuration).
    pub bench: bool,
}

impl Opts {
    /// Reads the process arguments.
    pub(crate) fn from_env() -> Self {
        Self::parse(std::env::args().skip(1))
    }

    fn parse(args: impl IntoIterator<Item = String>) -> Self {
        let mut given = Vec::new();
        let mut bench = false;
        let mut args = args.into_iter().peekable();
        while let Some(a) = args.next() {
            if a == "--bench" {
                bench = true;
                continue;
            }
            let Some(name) = a.strip_prefix("--") else {
                given.push((a, None));
                continue;
            };
            if let Some((k, v)) = name.split_once('=') {
                given.push((k.to_owned(), Some(v.to_owned())));
            } else {
                let value = args.next_if(|next| !next.starts_with("--"));
                given.push((name.to_owned(), value));
            }
        }
        Self {
            given,
            known: Vec::new(),
            bench,
        }
    }

    /// Whether `--name` was given.
    pub(crate) fn flag(&mut self, name: &'static str) -> bool {
        self.known.push(name);
        self.given.iter().any(|(k, _)| k == name)
    }

    /// The value of `--name` (or its environment variable), else `default`.
    pub(crate) fn get<T: FromStr>(&mut self, name: &'static str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.known.push(name);
        let env = format!(
            "HUBSWAP_BENCH_{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
        let raw = match self.given.iter().rev().find(|(k, _)| k == name) {
            Some((_, Some(v))) => v.clone(),
            Some((_, None)) => return Err(format!("--{name} needs a value")),
            None => match std::env::var(&env) {
                Ok(v) => v,
                Err(_) => return Ok(default),
            },
        };
        raw.parse()
            .map_err(|e| format!("--{name} (or {env}) = {raw:?}: {e}"))
    }

    /// Fails on any option that no `flag`/`get` call asked for.
    pub(crate) fn finish(&self) -> Result<()> {
        let unknown: Vec<String> = self
            .given
            .iter()
            .filter(|(k, _)| !self.known.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unknown option(s): {}; known: --{}",
                unknown.join(", "),
                self.known.join(", --")
            ))
        }
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The resident set of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS").ok_or_else(|| format!("no VmRSS for process {pid} (did it exit?)"))
}

/// User + system CPU time of a process (all threads), from `/proc/<pid>/stat`.
pub(crate) fn cpu_of(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| "malformed /proc stat".to_owned())
    };
    let total = ticks(11)? + ticks(12)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|h| u64::try_from(h).ok())
        .filter(|h| *h > 0)
        .unwrap_or(100);
    Ok(Duration::from_micros(total * 1_000_000 / hz))
}

/// User + system CPU time of this process (all threads), from `getrusage(RUSAGE_SELF)`.
pub(crate) fn own_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Duration::ZERO;
    };
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    d(u.user_time()) + d(u.system_time())
}

/// Raises this process's open-file limit to the hard limit (children inherit it); returns the
/// soft limit now in force.
pub(crate) fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Mebibytes from KiB, for tables.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib_f(kib) / 1024.0)
}

#[allow(
    clippy::cast_precision_loss,
    reason = "memory sizes far below 2^52 KiB; tables show one decimal"
)]
pub(crate) fn kib_f(kib: u64) -> f64 {
    kib as f64
}

/// `count / seconds`.
#[allow(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52; rates are printed rounded"
)]
pub(crate) fn per_sec(count: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { count as f64 / s } else { 0.0 }
}

/// `d / count` in microseconds.
#[allow(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52; costs are printed rounded"
)]
pub(crate) fn micros_each(d: Duration, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        d.as_secs_f64() * 1e6 / count as f64
    }
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Prints a Markdown table with aligned columns.
pub(crate) fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!();
    println!("{title}");
    println!();
    println!("{}", line(header.iter().map(|h| (*h).to_owned()).collect()));
    println!("{}", line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        println!("{}", line(row.clone()));
    }
}

/// One line about the machine: CPUs, load, kernel.
pub(crate) fn machine_note() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            l.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
                .into()
        })
        .unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cpus} CPU(s) ({model}), load average {load} at start")
}

/// What the mock-cloud child reports once it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MockInfo {
    /// Where it listens and the CA to trust.
    pub cloud: LocalCloud,
    pub devices: usize,
    pub register_secs: f64,
    /// The child's `VmRSS` before it registered the devices, and after.
    pub rss_empty_kib: u64,
    pub rss_registered_kib: u64,
}

/// Runs this executable again with `args` and writes `first_line` to its stdin (secrets go
/// there, never on a command line); stderr is shared.
pub(crate) fn spawn_self(
    args: &[String],
    first_line: &str,
    what: &str,
) -> Result<(Child, ChildStdin, ChildStdout)> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the {what}: {e}"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the {what} has no stdin or stdout"));
    };
    writeln!(stdin, "{first_line}").map_err(|e| format!("{what} stdin: {e}"))?;
    Ok((child, stdin, stdout))
}

/// The mock cloud in a child process (this same executable, `--serve-mock`).
pub(crate) struct MockProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pub info: MockInfo,
}

/// A JSON telemetry body of about `size` bytes.
pub(crate) fn telemetry_payload(size: usize) -> Vec<u8> {
    let mut v = br#"{"temperature":21.5,"pad":""#.to_vec();
    while v.len() + 2 < size {
        v.push(b'x');
    }
    v.extend_from_slice(br#""}"#);
    v
}

/// `n` as a float, for ratios in tables.
#[allow(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52; ratios are printed rounded"
)]
pub(crate) fn float(n: u64) -> f64 {
    n as f64
}

/// The name devices get: `dev-{i}`.
pub(crate) fn device_id(i: usize) -> String {
    format!("dev-{i}")
}

impl MockProcess {
    /// Starts the child with `hubs` hubs and `devices` devices (`dev-0`, ...) registered in the
    /// `default` group whose key is `group_key` (passed on stdin, never on the command line).
    pub(crate) fn spawn(hubs: usize, devices: usize, group_key: &str) -> Result<Self> {
        let args = [
            "--serve-mock".to_owned(),
            "--mock-hubs".to_owned(),
            hubs.to_string(),
            "--mock-devices".to_owned(),
            devices.to_string(),
        ];
        let (mut child, stdin, stdout) = spawn_self(&args, group_key, "mock-cloud child")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("READY ") {
                    let _ = tx.send(json.to_owned());
                }
            }
        });
        let Ok(json) = rx.recv_timeout(Duration::from_mins(5)) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the mock-cloud child did not report READY within 300 s".into());
        };
        let info = serde_json::from_str(&json).map_err(|e| format!("mock child info: {e}"))?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            info,
        })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the child to shut down (closing its stdin), killing it after 15 s.
    pub(crate) fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            // A bounded poll of a child process: std offers no timed wait on a Child.
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child side: reads the group key from stdin, starts the mock cloud (test layout: every
/// listener on `127.0.0.1:0`, no admin API, no event broker, log in memory), registers the
/// devices, prints `READY {json}`, and serves until stdin closes.
pub(crate) fn serve_mock_child(hubs: usize, devices: usize) -> Result<()> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .map_err(|e| format!("reading the group key: {e}"))?;
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err("no group key on stdin".into());
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let mut config = CloudConfig::for_tests(hubs).with_group("default", &key);
        config.admin = None;
        config.events = None;
        let cloud = MockCloud::start(config)
            .await
            .map_err(|e| format!("mock cloud: {e}"))?;
        let rss_empty_kib = status_kib(std::process::id(), "VmRSS").unwrap_or(0);
        let started = Instant::now();
        for i in 0..devices {
            cloud
                .register_device(&device_id(i), Some("default"))
                .map_err(|e| format!("registering {}: {e}", device_id(i)))?;
        }
        let info = MockInfo {
            cloud: local_cloud(&cloud),
            devices,
            register_secs: started.elapsed().as_secs_f64(),
            rss_empty_kib,
            rss_registered_kib: status_kib(std::process::id(), "VmRSS").unwrap_or(0),
        };
        let json = serde_json::to_string(&info).map_err(|e| e.to_string())?;
        println!("READY {json}");
        // Serve until the parent closes stdin (or dies).
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        })
        .await;
        let ca_dir = cloud.ca_path().parent().map(std::path::Path::to_path_buf);
        cloud.shutdown().await;
        // The test layout writes ca.pem into a fresh temporary folder of its own.
        if let Some(dir) = ca_dir.filter(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hubswap-mock-cloud-"))
        }) {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    })
}
