//! The cost of one step: `spec::step` alone, and the client's statig machine around it.
//!
//! `cargo bench -p hubswap-conformance --bench step`
#![allow(missing_docs, reason = "criterion generates the entry point")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hubswap_client::machine::{Event, Machine};
use hubswap_spec::{
    Assignment, Command, Config, Draw, Env, Input, Millis, State, WireSignal, step,
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
        Input::TimerFired(hubswap_spec::Timer::Wake),
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
        "client machine handle (connect/drop cycle, per step)",
        |b| {
            let mut m = Machine::new(cfg.clone(), Some(assignment()));
            m.handle(
                &Event::command(Command::Start),
                Env {
                    now: Millis(0),
                    draw: Draw(1),
                },
            );
            let inputs: Vec<Event> = cycle().into_iter().map(Event::Spec).collect();
            let mut now = 0u64;
            let mut i = 0usize;
            b.iter(|| {
                now += 60_000;
                let actions = m.handle(
                    &inputs[i % inputs.len()],
                    Env {
                        now: Millis(now),
                        draw: Draw(7),
                    },
                );
                black_box(actions);
                i += 1;
            });
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
