//! A probe: explores each instance and mutant single-threaded and prints sizes and verdicts.
#![allow(
    clippy::disallowed_methods,
    reason = "the tests time the checks; the spec itself never reads a clock"
)]
use hubswap_spec::Mutation;
use hubswap_spec::model::Instance;
use hubswap_spec::promela::explore;

#[test]
#[ignore = "probe: cargo test -p hubswap-spec --release --test explore_count -- --ignored --nocapture"]
fn print_sizes() {
    for m in std::iter::once(Mutation::None).chain(Mutation::MUTANTS) {
        for (name, inst) in [
            ("standard", Instance::standard(m)),
            ("liveness", Instance::liveness(m)),
        ] {
            let t = std::time::Instant::now();
            let g = explore(&inst);
            let mut v: Vec<_> = g
                .worlds
                .iter()
                .filter_map(|w| w.violation.clone())
                .collect();
            v.sort();
            v.dedup();
            println!(
                "{m:?} {name}: {} worlds, {} edges, {:?}, violations {v:?}",
                g.worlds.len(),
                g.edges.len(),
                t.elapsed()
            );
        }
    }
}
