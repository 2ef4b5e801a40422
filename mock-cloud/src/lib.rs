//! `hubswap-mock-cloud`: a local stand-in for IoT Central's device-facing cloud — one DPS
//! (HTTPS REST and MQTT) and N IoT hubs (MQTT 3.1.1 over TLS) in one process — that official
//! Azure device SDKs accept unmodified, with an observation log that the spec can grade.
//!
//! # Architecture
//!
//! ```text
//!            ┌──────────────── MockCloud (one tokio runtime) ────────────────┐
//!  device ──►│ DPS HTTPS (axum + axum-server/rustls) ──┐                      │
//!  device ──►│ DPS MQTT listener ───────────┐          ├─► dps::Dps: attest,   │
//!  device ──►│ hub listeners (one per hub) ─┴─► mqtt::conn ─► allocate        │
//!            │  (owned by the cloud)  TLS + CONNECT  │                        │
//!            │     rumqttc v4 codec, control channel ├─► registry::Registry ◄─┼── CloudHandle
//!            │                                       ├─► overlay::Overlay ◄───┼── (Rust API,
//!            │                                       │   (faults, beside the  │    admin API,
//!            │                                       │    registry)           │    persist)
//!            │                                       └─► log (JSON lines,     │
//!            │                                            broadcast) ─────────┼─► rumqttd (hubswap/#)
//!            └────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Modules depend on each other in one direction only (CI checks it with `.ci/module-cycles`):
//! the vocabulary (`fault`, `log`) and utilities at the bottom, then the registry, the fault
//! overlay beside it, DPS, what the listeners share, the MQTT server, the control API, and at
//! the top the cloud that starts it all, the admin API and persistence.
//!
//! | module | what |
//! | --- | --- |
//! | [`cloud`](MockCloud) | start (binds every listener, owns the hub listeners, starts the admin API and the saver), shutdown |
//! | `handle` | [`CloudHandle`], the control API that [`MockCloud`] derefs to and the admin API and persistence use |
//! | `shared` | what every listener and connection task shares: registry, overlay, DPS, log, clock, limits, shutdown |
//! | `mqtt` | the MQTT 3.1.1 server: accept loops, the hub listeners, per-connection tasks, CONNACK decision (`decide_hub_connect`), hub and DPS sessions, topic grammar |
//! | `dps` | attestation (group SAS, individual SAS, X.509 group), allocation, operations (`dps::Dps`, over the registry and the overlay); JSON answers; REST routes |
//! | `registry` | enrollments, devices and per-hub identities, twins, sessions, live connections and their orders (kick, silence, re-judge); knows nothing of faults |
//! | `overlay` | the fault overlay beside the registry: active faults, applying and ending them through the registry's controls, the questions each edge asks (`gates`); hub listeners through the narrow `Listeners` handle |
//! | [`sas`] | SAS parsing and verification over the raw `sr`, key derivation |
//! | [`certs`], [`tls`] | rcgen CA and certificates; rustls configs with optional client certificates |
//! | [`log`] | the observation log and its conversion to `hubswap_spec::Observation` (its `Event::Fault` carries the fault vocabulary) |
//! | [`admin`] | the admin REST API (over a [`CloudHandle`]) and its client |
//! | [`fault`] | the fault vocabulary: every fault as one serde + clap type ([`Fault`]), the shared [`fault::Lifetime`] (`for`), rendering options, durations |
//! | [`scenario`] | TOML fault drills: parsing, time scaling, running against a cloud or its admin API |
//! | `persist` | the data folder: `state.json`, `cloud.json`, saved after every change |
//! | `events` | the service-side event stream: an embedded rumqttd broker fed from the log |
//!
//! # Faults
//!
//! Faults live at the edges: the fault overlay sits beside the registry, and each edge asks it
//! at its step — the accept loop (refuse, blackhole), after CONNECT (hold,
//! reset, blackhole), the CONNACK decision (expired, revoked, blocked, disabled, internal
//! error), after CONNACK (drop), before each send (delay), twin requests, and the DPS front for
//! both transports (error statuses, throttling, blocked rendering). Live connections get
//! orders on their control channel (kick with FIN, RST or a clean TLS close; silence; re-judge
//! the token; fire a fault injection). A [`Fault`] is applied the same way from the Rust API,
//! the admin API, the CLI and scenario files, and each one is logged with its parameters.
//! Every match on [`Fault`] names each variant, so a new fault does not compile until each
//! place has decided what it does with it.
//!
//! The service side (the crate README, "Service-side event stream"): the mock publishes what it sees to an
//! embedded rumqttd broker on loopback (`hubswap/devices/{id}/telemetry`, `.../properties`,
//! `.../connection`, `hubswap/dps/registrations`, `hubswap/faults`), fed from the observation
//! log's broadcast; see the README for the topic schema.
//!
//! The hubs are not rumqttd: rumqttd cannot carry `$iothub`/`$dps` topics nor choose CONNACK
//! codes (see the workspace README, "Decisions"). Each connection is one task owning a `Framed` TLS stream with
//! rumqttc's v4 codec; the registry reaches it through a control channel (kick, publish, C2D).
//!
//! # Layouts
//!
//! - [`CloudConfig::for_tests`]: every listener on `127.0.0.1:0`, hub host names
//!   `hub-{i}.localhost`; [`CloudHandle::hub_addr`] resolves a host to its address.
//! - [`CloudConfig::sdk_layout`]: DPS on one loopback IP (MQTT 8883, HTTPS 443), each hub on
//!   the next IPs on port 8883, `assignedHub` = the bare IP — what the Python and Node SDKs
//!   accept unmodified.
//!
//! # Wire behaviour
//!
//! Refusals follow spec/PROTOCOL.md §5.2: CONNACK 5 for a bad, expired or missing credential, an
//! unknown device or a blocked one; 3 for a device disabled on the hub; 2 for a client id that
//! is not the username's device. Protocol violations (malformed packets, foreign topics, QoS 2,
//! oversized telemetry) drop the connection and are logged; refused subscriptions get SUBACK
//! 0x80. DPS errors are `{errorCode, trackingId, message, timestampUtc}`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod certs;
pub mod clock;
mod cloud;
pub mod config;
mod dps;
mod error;
mod events;
pub mod fault;
mod handle;
pub mod log;
mod mqtt;
mod overlay;
mod persist;
mod registry;
pub mod sas;
pub mod scenario;
mod shared;
pub mod tls;

pub use admin::client::AdminClient;
pub use cloud::MockCloud;
pub use config::{CloudConfig, DpsConfig, GroupSeed, HubConfig, Timeouts};
pub use error::Error;
pub use fault::{ActiveFault, Fault, FaultId, FaultOptions};
pub use handle::{CloudHandle, CloudInfo, Enrollments, GroupKey, HubInfo};
pub use log::{Event, LogRecord, ObservationLog};
pub use registry::{
    Device, DeviceAuth, DeviceInfo, EnrollmentGroup, GroupAttestation, HubIdentity, HubStatus,
    IndividualEnrollment, MethodResponse, Twin,
};
