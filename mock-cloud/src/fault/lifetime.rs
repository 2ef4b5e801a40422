//! How long a fault stays in force: the `for` that every lasting fault takes, in one place.

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::duration;

/// How long a fault stays in force before it ends by itself, undoing what it did; without a
/// duration, until it is cleared (or, for a counted fault, used up). Flattened into each fault's
/// parameters: `for = "60s"` in JSON and TOML, `--for 60s` on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
pub struct Lifetime {
    /// End after this long (undoing the fault).
    #[arg(long = "for", value_parser = duration::parse)]
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        with = "duration::optional"
    )]
    pub duration: Option<Duration>,
}

impl Lifetime {
    /// Ends after `duration`.
    pub fn lasting(duration: Duration) -> Self {
        Self {
            duration: Some(duration),
        }
    }
}
