//! The fleet simulator in virtual time: determinism, a small matrix of every scenario with
//! hubswap's policy, the cloud model's quotas, and the emulations' signature behaviours.

use hubswap_conformance::sim::{
    self, CloudParams, PolicyName, ScenarioName, ScenarioParams, SimReport, SimRequest,
};

fn run(req: &SimRequest) -> SimReport {
    sim::simulate(req, &mut |_| {}).expect("the simulation runs")
}

fn json(r: &SimReport) -> String {
    serde_json::to_string(r).expect("a report serializes")
}

#[test]
fn the_same_seed_gives_the_same_report_byte_for_byte() {
    let mut req = SimRequest::new(ScenarioName::Failover, PolicyName::Hubswap, 2_000);
    req.seed = 7;
    let a = json(&run(&req));
    let b = json(&run(&req));
    assert_eq!(a, b);
    req.seed = 8;
    assert_ne!(a, json(&run(&req)), "another seed draws other jitter");
}

/// A thousand devices through every scenario with hubswap's policy: every incident affected
/// someone, every affected device recovered and none sooner than the floor, and DPS never
/// admitted more than its quota.
#[test]
fn a_small_matrix_of_every_scenario_recovers_within_the_physics() {
    for scenario in ScenarioName::ALL {
        let r = run(&SimRequest::new(scenario, PolicyName::Hubswap, 1_000));
        println!("{}", r.render_text());
        assert!(
            r.dps.peak_admitted_per_minute <= u64::from(r.dps.registration_quota),
            "{scenario}: DPS admitted {} in a minute",
            r.dps.peak_admitted_per_minute
        );
        for i in &r.incidents {
            assert!(i.affected > 0, "{scenario}/{}: nobody affected", i.name);
            assert_eq!(i.recovered, i.affected, "{scenario}/{}", i.name);
            let t100 = i.max_secs.expect("everyone recovered");
            let floor = i.floor.as_ref().expect("a floor").secs;
            assert!(
                t100 + 0.5 >= floor,
                "{scenario}/{}: recovered in {t100} s, under the floor {floor} s",
                i.name
            );
        }
    }
}

/// A cold start of 5,000 devices under a quota of 500 per minute: the window binds, the
/// excess is answered 429, and recovery takes at least the window's floor.
#[test]
fn a_cold_start_is_held_to_the_dps_quota() {
    let mut req = SimRequest::new(ScenarioName::ColdStart, PolicyName::Hubswap, 5_000);
    req.cloud = CloudParams {
        registrations_per_minute: 500,
        ..CloudParams::default()
    };
    let r = run(&req);
    assert_eq!(r.dps.peak_admitted_per_minute, 500);
    assert!(r.dps.answered_429 > 0);
    let i = &r.incidents[0];
    let floor = i.floor.as_ref().expect("a floor").secs;
    assert!((floor - 540.0).abs() < 1e-9, "(10 - 1) x 60 s");
    assert!(i.max_secs.expect("recovered") >= 540.0);
}

/// The same cold start without a quota that binds finishes in seconds: the floor and the
/// figures move with the model, so the checks above can fail.
#[test]
fn without_a_binding_quota_the_cold_start_is_fast() {
    let mut req = SimRequest::new(ScenarioName::ColdStart, PolicyName::Hubswap, 5_000);
    req.cloud.registrations_per_minute = 100_000;
    req.cloud.polls_per_minute = 100_000;
    let r = run(&req);
    assert_eq!(r.dps.answered_429, 0);
    assert!(r.incidents[0].max_secs.expect("recovered") < 60.0);
}

#[test]
fn sdk_only_never_asks_dps_and_waits_for_the_failback() {
    let r = run(&SimRequest::new(
        ScenarioName::Failover,
        PolicyName::SdkOnly,
        1_000,
    ));
    assert_eq!(r.dps.total_requests, 0);
    let failover = &r.incidents[0];
    let ttl = ScenarioParams::default().failover_ttl_mins * 60.0;
    assert!(failover.p50_secs.expect("back after the failback") >= ttl);
}

#[test]
fn the_ha_sample_asks_dps_on_every_disconnect() {
    let r = run(&SimRequest::new(
        ScenarioName::HubOutage500,
        PolicyName::HaSample,
        1_000,
    ));
    let hubswap = run(&SimRequest::new(
        ScenarioName::HubOutage500,
        PolicyName::Hubswap,
        1_000,
    ));
    // Every refused CONNECT is followed by a registration; hubswap asks after two.
    let per_connect = |r: &SimReport| r.dps.registrations.mean / r.hub.connects.mean;
    assert!(per_connect(&r) > 0.9, "{}", per_connect(&r));
    assert!(per_connect(&hubswap) < 0.7, "{}", per_connect(&hubswap));
    assert_eq!(r.dps.devices_deleted_cache, 500, "every device of hub-0");
}

#[test]
fn csharp_retries_connack_3_for_ever_but_reprovisions_on_connack_5() {
    let outage = run(&SimRequest::new(
        ScenarioName::HubOutage500,
        PolicyName::Csharp,
        1_000,
    ));
    assert_eq!(outage.dps.total_requests, 0);
    let blip = run(&SimRequest::new(
        ScenarioName::AuthBlip,
        PolicyName::Csharp,
        1_000,
    ));
    assert_eq!(blip.dps.devices_deleted_cache, 1_000);
}

#[test]
fn pacing_spreads_the_failover_under_the_quota() {
    let plain = run(&SimRequest::new(
        ScenarioName::Failover,
        PolicyName::Hubswap,
        10_000,
    ));
    let paced = run(&SimRequest::new(
        ScenarioName::Failover,
        PolicyName::HubswapPaced,
        10_000,
    ));
    assert!(
        plain.dps.throttled_share > 0.2,
        "{}",
        plain.dps.throttled_share
    );
    assert!(
        paced.dps.throttled_share < 0.05,
        "{}",
        paced.dps.throttled_share
    );
}

#[test]
fn a_bad_request_is_refused_with_a_reason() {
    let mut req = SimRequest::new(ScenarioName::Failover, PolicyName::Hubswap, 10);
    req.cloud.hubs = 1;
    assert!(matches!(
        sim::simulate(&req, &mut |_| {}),
        Err(sim::SimError::TooFewHubs(ScenarioName::Failover))
    ));
    req.cloud.hubs = 2;
    req.devices = 0;
    assert!(matches!(
        sim::simulate(&req, &mut |_| {}),
        Err(sim::SimError::NoDevices)
    ));
    req.devices = 10;
    req.spec.unreachable_threshold = 0;
    assert!(matches!(
        sim::simulate(&req, &mut |_| {}),
        Err(sim::SimError::Config(_))
    ));
}

#[test]
fn the_html_page_has_a_chart_per_run() {
    let r = run(&SimRequest::new(
        ScenarioName::AuthBlip,
        PolicyName::Hubswap,
        200,
    ));
    let page = sim::html::render(std::slice::from_ref(&r));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 1);
    assert!(page.contains("auth-blip"));
}
