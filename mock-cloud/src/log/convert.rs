//! Conversion of log records into the spec's trace vocabulary (`hubswap_spec::trace`), so that
//! `hubswap_spec::validate_trace` can grade a run.

use std::time::Duration;

use hubswap_spec::trace::{DpsAnswer, DpsRequest, Observation, Observed};

use super::{DpsRequestKind, Endpoint, Event, LogRecord};

impl LogRecord {
    /// The spec's view of this record, if it is one the spec's trace vocabulary covers.
    pub fn to_observation(&self) -> Option<Observation> {
        let device = self.device.clone()?;
        let event = match &self.event {
            Event::DpsRequest {
                request: DpsRequestKind::Register,
                ..
            } => Observed::DpsRequest(DpsRequest::Register),
            Event::DpsRequest {
                request: DpsRequestKind::Poll,
                ..
            } => Observed::DpsRequest(DpsRequest::Poll),
            Event::DpsResponse {
                status,
                operation_status,
                assigned_hub,
                error_code,
                retry_after,
                ..
            } => Observed::DpsResponse(dps_answer(
                *status,
                operation_status.as_deref(),
                assigned_hub.as_deref(),
                *error_code,
                *retry_after,
            )?),
            Event::Connect {
                endpoint: Endpoint::Hub(hub),
                credential,
                ..
            } => Observed::HubConnect {
                hub: hub.clone(),
                credential: *credential,
            },
            Event::ConnAck {
                endpoint: Endpoint::Hub(_),
                code,
                ..
            } => Observed::ConnAck { code: *code },
            Event::Disconnected {
                endpoint: Endpoint::Hub(_),
                by,
                established: true,
                ..
            } => Observed::Disconnect { by: *by },
            Event::HubRefused { hub, .. } => Observed::HubRefused { hub: hub.clone() },
            Event::DpsDropped { .. } => Observed::DpsResponse(DpsAnswer::Dropped),
            _ => return None,
        };
        Some(Observation {
            at: self.at,
            device,
            event,
        })
    }
}

fn dps_answer(
    status: u16,
    operation_status: Option<&str>,
    assigned_hub: Option<&str>,
    error_code: Option<u32>,
    retry_after: Option<u32>,
) -> Option<DpsAnswer> {
    if !(200..300).contains(&status) {
        let retry_after = retry_after.map(|s| Duration::from_secs(u64::from(s)));
        return Some(DpsAnswer::Status {
            status,
            retry_after,
        });
    }
    Some(match operation_status? {
        "assigned" => DpsAnswer::Assigned {
            hub: assigned_hub?.to_owned(),
        },
        "failed" => DpsAnswer::Failed {
            error_code: error_code.unwrap_or(0),
        },
        "disabled" => DpsAnswer::Disabled,
        _ => DpsAnswer::Assigning,
    })
}

/// Converts records to the spec's observations, skipping what the vocabulary does not cover.
pub fn to_observations(records: &[LogRecord]) -> Vec<Observation> {
    records
        .iter()
        .filter_map(LogRecord::to_observation)
        .collect()
}

/// Like [`to_observations`], but a [`Event::HubRefused`] without a device (a reset or blackhole
/// at TCP accept, before any device could say who it is) is attributed to `device`. Use it when
/// one device under test is the only client of the cloud.
pub fn to_observations_attributing(records: &[LogRecord], device: &str) -> Vec<Observation> {
    records
        .iter()
        .filter_map(|r| match (&r.device, &r.event) {
            (None, Event::HubRefused { .. }) => LogRecord {
                device: Some(device.to_owned()),
                ..r.clone()
            }
            .to_observation(),
            _ => r.to_observation(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hubswap_spec::Millis;
    use hubswap_spec::trace::{Credential, Side};

    use super::super::{AuthMethod, Transport};
    use super::*;

    fn rec(device: &str, event: Event) -> LogRecord {
        LogRecord {
            seq: 0,
            at: Millis(5),
            device: Some(device.into()),
            event,
        }
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one case per event kind")]
    fn records_convert_to_the_spec_vocabulary() {
        let connect = rec(
            "d",
            Event::Connect {
                endpoint: Endpoint::Hub("h".into()),
                conn: 1,
                client_id: "d".into(),
                username: "h/d/?api-version=1".into(),
                clean_session: false,
                keep_alive: 60,
                auth: AuthMethod::Sas,
                credential: Some(Credential {
                    fingerprint: 7,
                    valid_for: Duration::from_secs(9),
                }),
            },
        );
        let o = connect.to_observation().expect("hub connect maps");
        assert_eq!(
            o.event,
            Observed::HubConnect {
                hub: "h".into(),
                credential: Some(Credential {
                    fingerprint: 7,
                    valid_for: Duration::from_secs(9)
                })
            }
        );
        let assigned = rec(
            "d",
            Event::DpsResponse {
                transport: Transport::Mqtt,
                status: 200,
                operation_status: Some("assigned".into()),
                assigned_hub: Some("h".into()),
                error_code: None,
                retry_after: None,
            },
        );
        assert_eq!(
            assigned.to_observation().map(|o| o.event),
            Some(Observed::DpsResponse(DpsAnswer::Assigned {
                hub: "h".into()
            }))
        );
        let throttled = rec(
            "d",
            Event::DpsResponse {
                transport: Transport::Https,
                status: 429,
                operation_status: None,
                assigned_hub: None,
                error_code: Some(429_001),
                retry_after: Some(3),
            },
        );
        assert_eq!(
            throttled.to_observation().map(|o| o.event),
            Some(Observed::DpsResponse(DpsAnswer::Status {
                status: 429,
                retry_after: Some(Duration::from_secs(3))
            }))
        );
        let dps_connect = rec(
            "d",
            Event::Connect {
                endpoint: Endpoint::DpsMqtt,
                conn: 2,
                client_id: "d".into(),
                username: "s/registrations/d/api-version=1".into(),
                clean_session: true,
                keep_alive: 60,
                auth: AuthMethod::Sas,
                credential: None,
            },
        );
        assert_eq!(dps_connect.to_observation(), None);
        let refused_close = rec(
            "d",
            Event::Disconnected {
                endpoint: Endpoint::Hub("h".into()),
                conn: 1,
                by: Side::Cloud,
                established: false,
                reason: "refused".into(),
            },
        );
        assert_eq!(refused_close.to_observation(), None);
        let refused = LogRecord {
            device: None,
            ..rec(
                "d",
                Event::HubRefused {
                    hub: "h".into(),
                    conn: 3,
                    peer: "127.0.0.1:1".into(),
                    how: "reset".into(),
                },
            )
        };
        assert_eq!(refused.to_observation(), None, "no device, no observation");
        assert_eq!(
            to_observations_attributing(&[refused], "dut")
                .first()
                .map(|o| (o.device.as_str(), o.event.clone())),
            Some(("dut", Observed::HubRefused { hub: "h".into() }))
        );
    }
}
