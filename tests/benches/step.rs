//! The cost of one step: `spec::step` alone, and the client's session around it.
//!
//! `cargo bench -p hubswap-conformance --bench step`
#![allow(missing_docs, reason = "criterion generates the entry point")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hubswap_client::session::{Event, HubEvent, Session, SessionConfig};
use hubswap_spec::{
    Assignment, Command, Config, Draw, Env, Input, Millis, State, Timer, WireSignal, step,
};

fn assignment() -> Assignment {
    Assignment {
        hub: "hub-a".into(),
        device_id: "dev".into(),
    }
}

/// A connect/drop cycle: Start, CONNACK 0, connection lost, the Wake timer, CONNACK 0, ...
fn cycle() -> Vec<Input> {
    vec![
        Input::Signal(WireSignal::ConnAck(0)),
        Input::Signal(WireSignal::ConnectionLost),
        Input::TimerFired(Timer::Wake),
    ]
}

fn bench(c: &mut Criterion) {
    let cfg = Config::default();
    c.bench_function("spec::step (connect/drop cycle, per step)", |b| {
        let start = step(
            &cfg,
            &State::new(Some(assignment())),
            &Input::Command(Command::Start),
            Env {
                now: Millis(0),
                draw: Draw(1),
            },
        );
        let mut s = start.state;
        let mut now = 0u64;
        let inputs = cycle();
        let mut i = 0usize;
        b.iter(|| {
            now += 60_000;
            let out = step(
                &cfg,
                &s,
                &inputs[i % inputs.len()],
                Env {
                    now: Millis(now),
                    draw: Draw(7),
                },
            );
            s = black_box(out.state);
            i += 1;
        });
    });
    c.bench_function(
        "client session (connect/drop cycle, per event, outputs drained)",
        |b| {
            let mut s = Session::new(SessionConfig {
                spec: cfg.clone(),
                window: 16,
                default_ttl: None,
                seed: 7,
                cache: Some(assignment()),
                restored: Vec::new(),
            });
            s.handle_event(Millis(0), Event::Command(Command::Start));
            let mut generation = 0;
            let mut now = 0u64;
            let mut i = 0usize;
            b.iter(|| {
                now += 60_000;
                let now = Millis(now);
                match i % 3 {
                    0 => s.handle_event(
                        now,
                        Event::Hub {
                            generation,
                            event: HubEvent::ConnAck(0),
                        },
                    ),
                    1 => s.handle_event(
                        now,
                        Event::Hub {
                            generation,
                            event: HubEvent::Lost,
                        },
                    ),
                    _ => s.handle_timeout(now),
                }
                while let Some(o) = s.poll_action() {
                    if let hubswap_client::session::Output::Connect { generation: g, .. } = &o {
                        generation = *g;
                    }
                    black_box(o);
                }
                i += 1;
            });
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
