//! `hubswap-conformance`: grade a device program against the spec through the mock cloud.
fn main() {
    println!("hubswap-conformance: the runner is being built");
}
