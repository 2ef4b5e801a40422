//! Who is connected where, read from the mock cloud's observation log: one reading of "a hub
//! accepted the device" (CONNACK 0 on a hub) and "the device left" (an established hub
//! connection closed) for the runner, the drill's timeline and its live progress.

use std::collections::{BTreeMap, HashMap};

use hubswap_mock_cloud::log::Endpoint;
use hubswap_mock_cloud::{Event, LogRecord};

/// The hub a record's CONNACK 0 came from, if it is one.
pub fn accepted_hub(r: &LogRecord) -> Option<&str> {
    match &r.event {
        Event::ConnAck {
            endpoint: Endpoint::Hub(hub),
            code: 0,
            ..
        } => Some(hub.as_str()),
        _ => None,
    }
}

/// Whether a record closes an established hub connection.
fn left_hub(r: &LogRecord) -> bool {
    matches!(
        &r.event,
        Event::Disconnected {
            endpoint: Endpoint::Hub(_),
            established: true,
            ..
        }
    )
}

/// The devices connected to each hub.
#[derive(Debug, Default, Clone)]
pub struct Presence {
    on: HashMap<String, String>,
}

impl Presence {
    /// Updates the picture with one record.
    pub fn see(&mut self, r: &LogRecord) {
        let Some(d) = &r.device else { return };
        if let Some(hub) = accepted_hub(r) {
            self.on.insert(d.clone(), hub.to_owned());
        } else if left_hub(r) {
            self.on.remove(d);
        }
    }

    /// How many devices each of `hubs` holds (and any other hub seen).
    pub fn per_hub(&self, hubs: &[String]) -> BTreeMap<String, usize> {
        let mut m: BTreeMap<String, usize> = hubs.iter().map(|h| (h.clone(), 0)).collect();
        for h in self.on.values() {
            *m.entry(h.clone()).or_insert(0) += 1;
        }
        m
    }
}
