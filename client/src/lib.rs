//! `hubswap-client`: the embeddable IoT Central device client.
#![allow(missing_docs)]

pub mod auth;
pub mod machine;
pub mod status;
pub mod store;
pub mod wire;
