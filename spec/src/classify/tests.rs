use super::*;
use alloc::string::ToString;
use alloc::vec::Vec;

fn name(c: &Class) -> &'static str {
    c.name()
}

/// One representative signal per table row, in table order.
fn representatives() -> Vec<Vec<WireSignal>> {
    let a = Assignment {
        hub: "hub-a".to_string(),
        device_id: "dev".to_string(),
    };
    let st = |status| {
        WireSignal::Dps(DpsReply::Status {
            status,
            retry_after: None,
        })
    };
    let b = Assignment {
        hub: "hub-b".to_string(),
        device_id: "dev".to_string(),
    };
    vec![
        [
            ConnectFailure::Refused,
            ConnectFailure::Timeout,
            ConnectFailure::Reset,
            ConnectFailure::Dns,
            ConnectFailure::Tls,
        ]
        .into_iter()
        .map(WireSignal::ConnectFailed)
        .collect(),
        vec![WireSignal::ConnAck(0)],
        vec![WireSignal::ConnAck(1)],
        vec![WireSignal::ConnAck(2)],
        vec![WireSignal::ConnAck(3)],
        vec![WireSignal::ConnAck(4)],
        vec![WireSignal::ConnAck(5)],
        vec![WireSignal::ConnAck(6), WireSignal::ConnAck(255)],
        vec![WireSignal::ConnectionLost],
        vec![WireSignal::Dps(DpsReply::Assigned(b))],
        vec![WireSignal::Dps(DpsReply::Assigned(a))],
        vec![WireSignal::Dps(DpsReply::Assigning {
            operation: "op".to_string(),
            retry_after: None,
        })],
        [400_209, 400_207, 400_208]
            .into_iter()
            .map(|c| WireSignal::Dps(DpsReply::Failed { error_code: c }))
            .collect(),
        vec![WireSignal::Dps(DpsReply::Disabled)],
        vec![st(401), st(403), st(404), st(400), st(412)],
        vec![WireSignal::Dps(DpsReply::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
        })],
        vec![st(500), st(502), st(503)],
        vec![WireSignal::DpsUnreachable],
        vec![WireSignal::DpsMalformed],
        vec![WireSignal::DpsConnAck(1)],
        vec![
            WireSignal::DpsConnAck(2),
            WireSignal::DpsConnAck(4),
            WireSignal::DpsConnAck(5),
        ],
        vec![WireSignal::DpsConnAck(3), WireSignal::DpsConnAck(9)],
        vec![WireSignal::TokenNearExpiry],
        vec![WireSignal::TwinStatus(429), WireSignal::TwinStatus(500)],
        vec![
            WireSignal::TwinStatus(304),
            WireSignal::TwinStatus(400),
            WireSignal::TwinStatus(404),
        ],
        vec![WireSignal::TwinStatus(200), WireSignal::TwinStatus(204)],
    ]
}

#[test]
fn every_table_row_matches_classify() {
    let reps = representatives();
    assert_eq!(
        reps.len(),
        TABLE.len(),
        "one group of representatives per row"
    );
    for (row, signals) in TABLE.iter().zip(reps) {
        for s in signals {
            assert_eq!(
                name(&classify(&s)),
                row.class,
                "row {:?}, signal {s:?}",
                row.signal
            );
        }
    }
}

#[test]
fn every_connack_code_has_a_class() {
    for code in 0..=u8::MAX {
        let c = classify(&WireSignal::ConnAck(code));
        let expected = match code {
            0 => "Accepted",
            1 => "ClientBug",
            2 | 4 | 5 => "AuthRefused",
            _ => "Unavailable",
        };
        assert_eq!(name(&c), expected, "CONNACK {code}");
        let d = classify(&WireSignal::DpsConnAck(code));
        let expected = match code {
            1 => "ClientBug",
            2 | 4 | 5 => "Blocked",
            _ => "DpsTransient",
        };
        assert_eq!(name(&d), expected, "DPS CONNACK {code}");
    }
}

#[test]
fn retry_after_passes_through_throttling() {
    let ra = Some(Duration::from_secs(7));
    let c = classify(&WireSignal::Dps(DpsReply::Status {
        status: 429,
        retry_after: ra,
    }));
    assert_eq!(c, Class::Throttled { retry_after: ra });
}

#[test]
fn every_dps_status_has_a_class() {
    for status in 100..600u16 {
        let c = classify(&WireSignal::Dps(DpsReply::Status {
            status,
            retry_after: None,
        }));
        let expected = match status {
            429 => "Throttled",
            400..=499 => "Blocked",
            _ => "DpsTransient",
        };
        assert_eq!(name(&c), expected, "DPS status {status}");
    }
}

#[test]
fn only_dps_classes_answer_a_dps_request() {
    let dps = [
        WireSignal::Dps(DpsReply::Disabled),
        WireSignal::DpsUnreachable,
        WireSignal::DpsConnAck(1),
        WireSignal::Dps(DpsReply::Status {
            status: 429,
            retry_after: None,
        }),
    ];
    for s in dps {
        assert!(classify(&s).is_dps_answer(), "{s:?}");
    }
    let hub = [
        WireSignal::ConnAck(0),
        WireSignal::ConnAck(3),
        WireSignal::ConnAck(5),
        WireSignal::ConnectionLost,
        WireSignal::ConnectFailed(ConnectFailure::Reset),
        WireSignal::TokenNearExpiry,
        WireSignal::TwinStatus(500),
        WireSignal::TwinStatus(404),
        WireSignal::TwinStatus(200),
    ];
    for s in hub {
        assert!(!classify(&s).is_dps_answer(), "{s:?}");
    }
}

#[test]
fn every_twin_status_has_a_class() {
    for status in 100..700u16 {
        let expected = match status {
            0..300 => "Benign",
            429 | 500..600 => "RequestTransient",
            _ => "RequestRejected",
        };
        assert_eq!(
            name(&classify(&WireSignal::TwinStatus(status))),
            expected,
            "twin {status}"
        );
    }
}

#[test]
fn spec_md_embeds_the_rendered_table() {
    let table = render_table();
    assert_eq!(
        table.lines().count(),
        TABLE.len() + 2,
        "header, rule, one line per row"
    );
    for row in TABLE {
        assert!(table.contains(row.signal) && table.contains(row.reaction));
    }
    let spec = include_str!("../../SPEC.md");
    assert!(
        spec.contains(&render_table()),
        "SPEC.md §2 must contain classify::render_table() verbatim"
    );
}

#[test]
#[ignore = "prints the table for SPEC.md"]
fn print_table() {
    print!("{}", render_table());
}

/// Every code a class groups gets the same `step` as the class's first representative, from
/// every phase: the table's grouping loses nothing, so the model may use one code per class.
#[test]
fn every_code_in_a_class_gets_the_same_transition() {
    use crate::{Config, Draw, Env, Input, Millis, Next, Phase, State, step};
    let cfg = Config::default();
    let a = Assignment {
        hub: "hub-a".to_string(),
        device_id: "dev".to_string(),
    };
    let mut states = Vec::new();
    for phase in [
        Phase::Connecting { fresh_token: false },
        Phase::Connecting { fresh_token: true },
        Phase::Registering,
        Phase::Polling {
            operation: "op".to_string(),
        },
        Phase::Connected { since: Millis(500) },
        Phase::Waiting {
            next: Next::Connect,
        },
    ] {
        for unavailable in [0, 1] {
            let mut s = State::new(Some(a.clone()));
            s.phase = phase.clone();
            s.unavailable = unavailable;
            states.push(s);
        }
    }
    let mut signals: Vec<WireSignal> = Vec::new();
    for code in 0..=u8::MAX {
        signals.push(WireSignal::ConnAck(code));
        signals.push(WireSignal::DpsConnAck(code));
    }
    for status in 100..700u16 {
        signals.push(WireSignal::TwinStatus(status));
        signals.push(WireSignal::Dps(DpsReply::Status {
            status,
            retry_after: None,
        }));
    }
    for error_code in [400_207, 400_208, 400_209, 500_000] {
        signals.push(WireSignal::Dps(DpsReply::Failed { error_code }));
    }
    signals.push(WireSignal::Dps(DpsReply::Disabled));
    signals.push(WireSignal::DpsUnreachable);
    signals.push(WireSignal::DpsMalformed);
    signals.extend(representatives().into_iter().flatten());
    let mut first: Vec<(&'static str, WireSignal)> = Vec::new();
    for sig in signals {
        let class = classify(&sig);
        if matches!(
            class,
            Class::Assigned(_) | Class::Assigning { .. } | Class::Throttled { .. }
        ) {
            continue; // the parameters are part of the class
        }
        let Some((_, rep)) = first.iter().find(|(n, _)| *n == class.name()) else {
            first.push((class.name(), sig));
            continue;
        };
        for s in &states {
            let env = Env {
                now: Millis(1_000),
                draw: Draw(77),
            };
            assert_eq!(
                step(&cfg, s, &Input::Signal(sig.clone()), env),
                step(&cfg, s, &Input::Signal(rep.clone()), env),
                "{sig:?} and {rep:?} are both {}, from {:?}",
                class.name(),
                s.phase
            );
        }
    }
    assert!(first.len() >= 10, "{first:?}");
}
