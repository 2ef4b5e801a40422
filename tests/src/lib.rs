//! `hubswap-conformance`: the conformance suites and the device runner (issue "Conformance
//! suite"). Not built yet.
