//! Inputs and outputs of [`crate::step()`] (SPEC §1.2).

use crate::classify::WireSignal;
use crate::state::{Assignment, Timer};
use crate::time::Millis;
use alloc::string::String;

/// A request from the application.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Command {
    /// Begin: connect to the cached hub, or register with DPS when there is no cache.
    Start,
    /// Stop for good: close everything; no further action is ever taken.
    Stop,
    /// Drop the cached assignment and register with DPS (spacing and profile still apply).
    ReprovisionNow,
}

/// One input to [`crate::step()`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Input {
    /// An application command.
    Command(Command),
    /// A timer armed by [`Action::ArmTimer`] reached its deadline.
    TimerFired(Timer),
    /// The network reported something.
    Signal(WireSignal),
}

/// An effect the driver must perform, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Send a DPS register request (a new registration).
    Register,
    /// Poll a DPS operation.
    Poll {
        /// The operation id.
        operation: String,
    },
    /// Mint a hub SAS token expiring at `expires_at` (X.509 devices skip this).
    MintToken {
        /// The token's expiry on the driver's clock.
        expires_at: Millis,
    },
    /// Open an MQTT connection to the hub with the current token.
    ConnectHub(Assignment),
    /// Close the hub connection, or abandon the attempt in flight.
    Close,
    /// Arm (or re-arm) a timer.
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When it fires.
        at: Millis,
    },
    /// Disarm a timer.
    CancelTimer(Timer),
    /// Write the assignment to the cache store.
    PersistAssignment(Assignment),
    /// Remove the assignment from the cache store.
    InvalidateAssignment,
}

/// The time and the random draw that come with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Env {
    /// Now, on the driver's monotonic clock.
    pub now: Millis,
    /// A uniform random draw, used only if the step arms a backoff.
    pub draw: crate::Draw,
}
