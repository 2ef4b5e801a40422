//! The drill, small: 20 devices through the whole story. Checks the report's invariants (0 lost,
//! every guarantee exercised and held, every device recovered), that `report.json` and `report.html` are
//! written, and that headless Chromium renders the HTML with its chart.

use std::path::{Path, PathBuf};
use std::process::Command;

use hubswap_conformance::drill::{self, DrillArgs, DrillReport};
use hubswap_spec::{Guarantee, Verdict};

fn small(out_dir: PathBuf) -> DrillArgs {
    DrillArgs {
        devices: 20,
        // Generous enough that the test is not about throttling; the benchmark is.
        registrations_per_minute: 600,
        token_devices: 3,
        block_ms: 1500,
        dps_errors: 5,
        dps_throttled: 3,
        faulty_devices: 2,
        hold_ms: 1000,
        settle_ms: 500,
        phase_timeout_secs: 60,
        connect_timeout_secs: 60,
        out_dir,
        no_progress_bar: true,
        ..DrillArgs::default()
    }
}

async fn run_small(dir: &Path) -> (DrillArgs, DrillReport) {
    let args = small(dir.to_path_buf());
    let report = drill::run(&args).await.expect("the drill runs");
    drill::write_files(&args, &report).expect("report files are written");
    (args, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_drill_loses_nothing_and_every_guarantee_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, report) = run_small(dir.path()).await;
    println!("{}", report.render_text());
    assert_eq!(report.messages.lost, 0, "acknowledged messages were lost");
    assert!(report.messages.sent > 0, "the fleet sent telemetry");
    for g in &report.guarantees {
        assert_ne!(
            g.verdict,
            Verdict::Fail,
            "{}: {:?}",
            g.guarantee,
            g.failures
        );
    }
    for p in &report.phases {
        assert_eq!(
            p.recovered, p.affected,
            "phase {} did not fully recover",
            p.name
        );
        assert!(p.affected > 0, "phase {} affected nobody", p.name);
    }
    assert_eq!(
        report
            .phases
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        [
            "unreachable-hub",
            "device-disabled",
            "unblock",
            "token-expiry",
            "internal-error-500",
            "failback+dps-500"
        ]
    );
    for g in &report.guarantees {
        assert_eq!(g.verdict, Verdict::Pass, "{} is not exercised", g.guarantee);
    }
    assert!(report.counts.dps_5xx > 0, "the DPS 500 burst was met");
    assert!(report.passed());
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    assert_eq!(json["messages"]["lost"], 0);
    assert_eq!(json["phases"].as_array().map(Vec::len), Some(6));
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report.html");
    assert!(html.contains("<svg"), "the chart is inlined");
    assert!(!html.contains("<script"), "self-contained, no scripts");
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn headless(bin: &Path, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1200,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_renders_the_chart() {
    let Some(bin) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium is not installed: .ci/run installs it"
        );
        println!("skipped: chromium is not installed (apt-get install -y chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, _) = run_small(dir.path()).await;
    let html = dir.path().join("report.html");
    let url = format!("file://{}", html.display());
    let dom = headless(&bin, &dir.path().join("profile-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<svg"), "the chart's SVG is in the DOM");
    assert!(
        dom.contains("devices connected per hub"),
        "the chart has its caption"
    );
    let png = dir.path().join("report.png");
    let status = headless(&bin, &dir.path().join("profile-shot"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .status()
        .expect("chromium runs");
    assert!(status.success(), "chromium exited with {status}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("the screenshot exists"),
    ));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.width, info.height), (1200, 900), "the window size");
    let channels = info.color_type.samples();
    let stride = info.line_size;
    // The chart sits below the heading and the verdict: count ink in that band.
    let (mut ink, mut coloured) = (0usize, 0usize);
    for y in 150..650usize {
        for x in 40..1150usize {
            let p = &buf[y * stride + x * channels..][..3];
            if p.iter().any(|v| *v < 200) {
                ink += 1;
            }
            let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
            if (r - g).abs() > 60 || (g - b).abs() > 60 || (r - b).abs() > 60 {
                coloured += 1;
            }
        }
    }
    assert!(
        ink > 5_000,
        "the chart area is nearly blank ({ink} dark pixels)"
    );
    assert!(
        coloured > 500,
        "no coloured series drawn ({coloured} coloured pixels)"
    );
}

/// `--pace`: the clients' spread is sized for one hub's worth of devices under the quota, in wall
/// clock time (the throttle window is not compressed), while every other delay stays scaled.
#[test]
fn pacing_sizes_the_spread_for_one_hub_in_wall_clock_time() {
    let plain = DrillArgs::default();
    assert_eq!(
        plain.spec_config().reprovision_spread,
        std::time::Duration::ZERO
    );
    let paced = DrillArgs {
        pace: true,
        registrations_per_minute: 90,
        ..DrillArgs::default()
    };
    let c = paced.spec_config();
    // 100 of 200 devices under 90 registrations per minute: 66.7 s, plus 10 %.
    assert_eq!(
        c.reprovision_spread,
        std::time::Duration::from_millis(73_333)
    );
    assert_eq!(c.fast, plain.spec_config().fast);
    assert_eq!(c.validate(), Ok(()));
}

/// The timing rules can fail in the drill's own configuration: a fleet whose backoff is the
/// spec's divided by 100,000 (retries at once) is graded against the drill's timing and fails
/// G7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_looping_fleet_fails_g7() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = small(dir.path().to_path_buf());
    args.fleet_backoff_scale = Some(100_000);
    let report = drill::run(&args).await.expect("the drill runs");
    println!("{}", report.render_text());
    let g7 = report
        .guarantees
        .iter()
        .find(|g| g.guarantee == Guarantee::G7)
        .expect("G7 is graded");
    assert_eq!(g7.verdict, Verdict::Fail, "{:?}", g7.failures);
}
