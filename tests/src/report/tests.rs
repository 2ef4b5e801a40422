//! The report's unit tests.

use super::*;
use hubswap_spec::trace::{DpsAnswer, DpsRequest, Observed};
use hubswap_spec::{Millis, TraceCheck, grade};

fn obs(at: u64, event: Observed) -> Observation {
    Observation {
        at: Millis(at),
        device: "dev".into(),
        event,
    }
}

fn scenario(name: &str, exercises: &[Guarantee]) -> ScenarioOutcome {
    ScenarioOutcome {
        name: name.into(),
        duration: Duration::from_secs(1),
        problems: vec![],
        verdicts: vec![],
        exercises: exercises.to_vec(),
    }
}

fn failing_trace() -> Vec<Observation> {
    vec![
        obs(0, Observed::DpsRequest(DpsRequest::Register)),
        obs(
            10,
            Observed::DpsResponse(DpsAnswer::Status {
                status: 429,
                retry_after: Some(Duration::from_secs(10)),
            }),
        ),
        obs(2_000, Observed::DpsRequest(DpsRequest::Register)),
    ]
}

#[test]
fn a_scenario_that_does_not_exercise_its_guarantee_is_inconclusive() {
    // DPS answers at once: nothing throttles, so G6's situation never happens.
    let trace = vec![
        obs(0, Observed::DpsRequest(DpsRequest::Register)),
        obs(
            10,
            Observed::DpsResponse(DpsAnswer::Assigned { hub: "h".into() }),
        ),
    ];
    let grades = grade(&TraceCheck::default(), &trace);
    let mut r = Report::new("./device");
    let outcome = scenario("dps-throttling", &[Guarantee::G6]);
    r.add(outcome, &grades, &trace);
    assert_eq!(r.conclusion(), Conclusion::Inconclusive);
    assert_eq!(r.scenarios[0].not_exercised(), [Guarantee::G6]);
    let text = r.render_text();
    assert!(text.contains("? did not exercise G6") && text.contains("result: INCONCLUSIVE"));
    let xml = r.to_junit();
    assert!(xml.contains("inconclusive: did not exercise G6"), "{xml}");
    // The same trace, in a scenario that exists for nothing in particular, passes.
    let mut plain = Report::new("./device");
    let outcome = scenario("steady-telemetry", &[]);
    plain.add(outcome, &grades, &trace);
    assert_eq!(plain.conclusion(), Conclusion::Pass);
}

#[test]
fn a_failed_guarantee_fails_the_report_in_every_format() {
    let trace = failing_trace();
    let grades = grade(&TraceCheck::default(), &trace);
    let mut r = Report::new("./device");
    let outcome = scenario("throttled", &[Guarantee::G6]);
    r.add(outcome, &grades, &trace);
    assert!(!r.passed());
    let g6 = r
        .guarantees
        .iter()
        .find(|g| g.guarantee == Guarantee::G6)
        .expect("G6");
    assert_eq!(g6.verdict, Verdict::Fail);
    assert!(!g6.timeline.is_empty());
    assert!(r.render_text().contains("G6  FAIL"));
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("valid JSON");
    assert_eq!(json["guarantees"][5]["verdict"], "Fail");
    let xml = r.to_junit();
    assert!(xml.contains("<failure") && xml.contains("G6"), "{xml}");
    assert!(
        xml.contains("<skipped"),
        "not-applicable guarantees are skipped cases"
    );
}

#[test]
fn verdicts_merge_fail_over_pass_over_not_applicable() {
    assert_eq!(merge(Verdict::Pass, Verdict::Fail), Verdict::Fail);
    assert_eq!(merge(Verdict::NotApplicable, Verdict::Pass), Verdict::Pass);
    assert_eq!(
        merge(Verdict::NotApplicable, Verdict::NotApplicable),
        Verdict::NotApplicable
    );
}
