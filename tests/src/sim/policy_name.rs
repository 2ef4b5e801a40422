//! Every policy the simulator knows, by command-line name, and the emulation each one runs.

use clap::ValueEnum;
use serde::Serialize;

use super::emulated::Emulated;
use super::emulation;

/// Every policy the simulator knows, by command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// hubswap's spec with its defaults (or `--spec-config`).
    Hubswap,
    /// hubswap's spec told the fleet: `Config::paced_for_fleet(devices per hub, R)`.
    HubswapPaced,
    /// Emulation: the C SDK's default retry policy, re-provisioning after 10 hub failures.
    CSdk,
    /// Emulation: the C# SDK v1 default retry policy.
    Csharp,
    /// Emulation: the Python SDK's re-provisioning sample.
    PythonSample,
    /// Emulation: IoT Central's high-availability samples (DPS on every disconnect).
    HaSample,
    /// Emulation: IoT Central's device bridge.
    DeviceBridge,
    /// Emulation: SDK retries only, never re-provisions.
    SdkOnly,
}

impl PolicyName {
    /// Every policy, in report order.
    pub const ALL: [Self; 8] = [
        Self::Hubswap,
        Self::HubswapPaced,
        Self::CSdk,
        Self::Csharp,
        Self::PythonSample,
        Self::HaSample,
        Self::DeviceBridge,
        Self::SdkOnly,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hubswap => "hubswap",
            Self::HubswapPaced => "hubswap-paced",
            Self::CSdk => "c-sdk",
            Self::Csharp => "csharp",
            Self::PythonSample => "python-sample",
            Self::HaSample => "ha-sample",
            Self::DeviceBridge => "device-bridge",
            Self::SdkOnly => "sdk-only",
        }
    }

    /// The emulation's rules, or `None` for hubswap's own policy.
    pub fn emulation(self) -> Option<Emulated> {
        let rules = match self {
            Self::Hubswap | Self::HubswapPaced => return None,
            Self::CSdk => emulation::c_sdk(),
            Self::Csharp => emulation::csharp(),
            Self::PythonSample => emulation::python_sample(),
            Self::HaSample => emulation::ha_sample(),
            Self::DeviceBridge => emulation::device_bridge(),
            Self::SdkOnly => emulation::sdk_only(),
        };
        Some(Emulated::new(rules))
    }
}

impl std::fmt::Display for PolicyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
