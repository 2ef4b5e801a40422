//! CONNECT: telling DPS from hub connections by username, and the one function that decides
//! every hub CONNACK ([`decide_hub_connect`], spec/PROTOCOL.md §4.1 and §5.2). Faults that
//! change CONNACK codes belong in that function.

use rumqttc::ConnectReturnCode;
use rustls::pki_types::CertificateDer;

use crate::overlay::Overlay;
use crate::registry::Registry;
use crate::sas::{SasError, SasToken, percent_decode};

/// A hub username: `{host}/{deviceId}/?api-version=..&..` (any order, model-id raw or encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubUsername {
    pub host: String,
    pub device_id: String,
    pub module_id: Option<String>,
    pub model_id: Option<String>,
}

/// A DPS username: `{idScope}/registrations/{registrationId}/api-version=..[&ClientVersion=..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DpsUsername {
    pub scope: String,
    pub registration_id: String,
}

/// Parses a hub username; `None` when it does not have the documented shape.
pub(crate) fn parse_hub_username(username: &str) -> Option<HubUsername> {
    let (path, query) = username.split_once("/?")?;
    let mut parts = path.split('/');
    let host = parts.next().filter(|s| !s.is_empty())?.to_owned();
    let device_id = parts.next().filter(|s| !s.is_empty())?.to_owned();
    let module_id = parts.next().map(str::to_owned);
    if parts.next().is_some() || module_id.as_deref() == Some("") {
        return None;
    }
    let mut api_version = false;
    let mut model_id = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "api-version" => api_version = !v.is_empty(),
            // Node sends the model id raw (`dtmi:x:y;1`), the others percent-encoded.
            "model-id" => model_id = Some(percent_decode(v).unwrap_or_else(|| v.to_owned())),
            _ => {}
        }
    }
    api_version.then_some(HubUsername {
        host,
        device_id,
        module_id,
        model_id,
    })
}

/// Parses a DPS username (note: no `?` before `api-version`, §2.1).
pub(crate) fn parse_dps_username(username: &str) -> Option<DpsUsername> {
    let mut parts = username.splitn(4, '/');
    let scope = parts.next().filter(|s| !s.is_empty())?;
    if parts.next()? != "registrations" {
        return None;
    }
    let registration_id = parts.next().filter(|s| !s.is_empty())?;
    let rest = parts.next()?;
    rest.split('&')
        .any(|p| {
            p.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
        .then(|| DpsUsername {
            scope: scope.to_owned(),
            registration_id: registration_id.to_owned(),
        })
}

/// What a CONNECT carried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectRequest<'a> {
    pub client_id: &'a str,
    pub password: Option<&'a str>,
    pub chain: &'a [CertificateDer<'static>],
}

/// The SAS token a connection was accepted with (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    pub fingerprint: u64,
    /// `se`, Unix seconds.
    pub expiry: u64,
}

/// The hub's answer to a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HubDecision {
    /// CONNACK 0.
    Accept {
        device: String,
        model_id: Option<String>,
        token: Option<TokenInfo>,
    },
    /// CONNACK with this code, then close.
    Refuse {
        code: ConnectReturnCode,
        reason: String,
    },
}

fn refuse(code: ConnectReturnCode, reason: impl Into<String>) -> HubDecision {
    HubDecision::Refuse {
        code,
        reason: reason.into(),
    }
}

/// Decides a hub CONNECT: 2 for a client id that is not the username's device, 5 for a bad,
/// expired or missing credential or a device unknown on this hub, 5 for a blocked device,
/// 3 for a device whose identity on this hub is disabled (spec/PROTOCOL.md §5.2). The codes for
/// expired, blocked and disabled follow the fault options; then faults may refuse
/// (hub-error `connack`, strict fault injection). Records the token's fingerprint so
/// `expire-token` can revoke it.
#[allow(
    clippy::too_many_lines,
    reason = "every CONNACK decision in one ordered place (spec/PROTOCOL.md §5.2)"
)]
pub(crate) fn decide_hub_connect(
    registry: &Registry,
    faults: &Overlay,
    hub: &str,
    username: Option<&HubUsername>,
    req: &ConnectRequest<'_>,
) -> HubDecision {
    use ConnectReturnCode::{BadClientId, NotAuthorized};
    let Some(u) = username else {
        return refuse(NotAuthorized, "malformed username");
    };
    if !u.host.eq_ignore_ascii_case(hub) {
        return refuse(
            NotAuthorized,
            format!("username names hub {}, this is {hub}", u.host),
        );
    }
    if u.module_id.is_some() {
        return refuse(NotAuthorized, "module identities are not supported");
    }
    if req.client_id != u.device_id {
        return refuse(
            BadClientId,
            "client id differs from the username's device id",
        );
    }
    let state = registry.lock();
    let mut fault_state = faults.lock();
    let options = fault_state.options;
    let Some(device) = state.devices.get(&u.device_id) else {
        return refuse(NotAuthorized, "unknown device");
    };
    let Some(identity) = device.identities.get(hub).copied() else {
        return refuse(NotAuthorized, "device not registered on this hub");
    };
    let blocked = device.blocked;
    let mut token_info = None;
    let credential = match (req.password, state.device_ca(device)) {
        (Some(token), _) => {
            let resource = format!("{hub}/devices/{}", u.device_id);
            let keys = state.device_keys(device);
            let now = registry
                .clock
                .unix_secs()
                .saturating_add_signed(-options.token_grace_secs);
            SasToken::parse(token)
                .and_then(|t| {
                    token_info = Some(TokenInfo {
                        fingerprint: t.fingerprint(),
                        expiry: t.expiry().unwrap_or(0),
                    });
                    t.verify(&resource, now, &keys)
                })
                .map_err(|e| match e {
                    SasError::Expired => Refused::Expired,
                    SasError::WrongResource => Refused::Bad("token for another resource"),
                    SasError::Malformed => Refused::Bad("malformed token"),
                    SasError::BadSignature => Refused::Bad("bad signature"),
                })
        }
        (None, Some(ca_pem)) => {
            let cn_ok = req
                .chain
                .first()
                .and_then(crate::certs::common_name)
                .as_deref()
                == Some(u.device_id.as_str());
            let chain_ok = crate::certs::first_pem_der(ca_pem)
                .is_ok_and(|ca| crate::tls::chain_leads_to(&ca, req.chain));
            if cn_ok && chain_ok {
                Ok(())
            } else {
                Err(Refused::Bad("client certificate not valid for this device"))
            }
        }
        (None, None) => Err(Refused::Bad("no credentials")),
    };
    if let (Ok(()), Some(t)) = (&credential, token_info) {
        fault_state
            .last_token
            .insert(u.device_id.clone(), t.fingerprint);
    }
    let revoked = token_info.is_some_and(|t| fault_state.revoked(&u.device_id, t.fingerprint));
    match credential {
        Err(Refused::Bad(why)) => return refuse(NotAuthorized, why),
        Err(Refused::Expired) => {
            return refuse(code(options.expired_connack), "token expired");
        }
        Ok(()) if revoked => {
            return refuse(code(options.expired_connack), "token expired (forced)");
        }
        Ok(()) if fault_state.stale_identity.contains(&u.device_id) => {
            return refuse(
                code(options.expired_connack),
                "key not accepted until the device registers with DPS again",
            );
        }
        Ok(()) => {}
    }
    if blocked {
        return refuse(code(options.blocked_connack), "device blocked");
    }
    if !identity.enabled {
        return refuse(
            code(options.disabled_connack),
            "device disabled on this hub",
        );
    }
    if let Some((c, why)) = faults.fault_refusal(&mut fault_state, hub, &u.device_id) {
        return refuse(code(c), why);
    }
    HubDecision::Accept {
        device: u.device_id.clone(),
        model_id: u.model_id.clone(),
        token: token_info,
    }
}

/// Why a credential was refused.
enum Refused {
    Expired,
    Bad(&'static str),
}

/// The CONNACK return code for a number (1..=5; anything else is 5).
pub(crate) fn code(n: u8) -> ConnectReturnCode {
    match n {
        1 => ConnectReturnCode::RefusedProtocolVersion,
        2 => ConnectReturnCode::BadClientId,
        3 => ConnectReturnCode::ServiceUnavailable,
        4 => ConnectReturnCode::BadUserNamePassword,
        _ => ConnectReturnCode::NotAuthorized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_usernames_from_every_sdk_parse() {
        let py = parse_hub_username(
            "h/d1/?api-version=2019-10-01&DeviceClientType=py%2F2.14&model-id=dtmi%3Acom%3Aa%3B1",
        )
        .expect("python");
        assert_eq!(
            (
                py.host.as_str(),
                py.device_id.as_str(),
                py.model_id.as_deref()
            ),
            ("h", "d1", Some("dtmi:com:a;1"))
        );
        let node = parse_hub_username(
            "h/d1/?api-version=2021-04-12&model-id=dtmi:com:a;1&DeviceClientType=node",
        )
        .expect("node");
        assert_eq!(node.model_id.as_deref(), Some("dtmi:com:a;1"));
        let any_order = parse_hub_username("h/d1/?DeviceClientType=x&api-version=1&auth-chain=z")
            .expect("any order");
        assert_eq!(any_order.model_id, None);
        let module = parse_hub_username("h/d1/m1/?api-version=1").expect("module");
        assert_eq!(module.module_id.as_deref(), Some("m1"));
        for bad in [
            "",
            "h/d1",
            "h/d1/?",
            "h/d1/?DeviceClientType=x",
            "/d1/?api-version=1",
            "h//?api-version=1",
            "h/d/m/x/?api-version=1",
        ] {
            assert_eq!(parse_hub_username(bad), None, "{bad}");
        }
    }

    #[test]
    fn dps_usernames_parse_with_and_without_client_version() {
        let u = parse_dps_username(
            "0ne00000A0A/registrations/dev1/api-version=2019-03-31&ClientVersion=c%2F1",
        )
        .expect("esdk");
        assert_eq!(
            (u.scope.as_str(), u.registration_id.as_str()),
            ("0ne00000A0A", "dev1")
        );
        assert!(
            parse_dps_username("0ne00000A0A/registrations/dev1/api-version=2021-06-01").is_some()
        );
        for bad in [
            "0ne/registrations/dev1",
            "0ne/devices/dev1/api-version=1",
            "h/dev1/?api-version=1",
            "0ne/registrations//api-version=1",
        ] {
            assert_eq!(parse_dps_username(bad), None, "{bad}");
        }
    }
}
