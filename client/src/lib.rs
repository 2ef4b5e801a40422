//! `hubswap-client`: the embeddable IoT Central device client.
#![allow(missing_docs)]

pub mod machine;
pub mod status;
