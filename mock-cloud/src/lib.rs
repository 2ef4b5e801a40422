//! `hubswap-mock-cloud`: a local stand-in for IoT Central's device-facing cloud (issue
//! "Mock cloud"). Not built yet.
