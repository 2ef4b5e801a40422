//! DPS over MQTT and HTTPS: attestation kinds, allocation, the 202 → 200 flow, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod common;

use common::{
    connect, far_future, https, https_as, logged, options, provision_mqtt, refusal, start,
};
use hubswap_mock_cloud::Event;
use hubswap_mock_cloud::sas::mint;
use serde_json::Value;

/// method, path, authorization, body, expected status
type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a [u8], u16);

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn group_devices_spread_evenly_and_reregistering_keeps_the_hub() {
    let cloud = start(2).await;
    let mut hubs = Vec::new();
    for i in 0..4 {
        let reg = format!("spread-{i}");
        let key = cloud.device_key("default", &reg).unwrap();
        let answer = provision_mqtt(&cloud, &reg, Some(&key), None).await;
        assert_eq!(answer["status"], "assigned");
        let state = &answer["registrationState"];
        assert_eq!(state["deviceId"], reg.as_str());
        assert_eq!(state["symmetricKey"]["enrollmentGroupId"], "default");
        hubs.push(state["assignedHub"].as_str().unwrap().to_owned());
    }
    for host in cloud.hub_hosts() {
        assert_eq!(
            hubs.iter().filter(|h| **h == host).count(),
            2,
            "two devices on {host}: {hubs:?}"
        );
    }
    let key = cloud.device_key("default", "spread-0").unwrap();
    let again = provision_mqtt(&cloud, "spread-0", Some(&key), None).await;
    assert_eq!(
        again["registrationState"]["assignedHub"].as_str(),
        Some(hubs[0].as_str())
    );
    assert_eq!(
        cloud.device("spread-1").unwrap().device.model_id.as_deref(),
        Some("dtmi:test:model;1")
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn rest_register_answers_202_with_retry_after_then_200_for_every_sr_encoding() {
    let cloud = start(1).await;
    let scope = cloud.id_scope().to_owned();
    for (reg, sr) in [
        ("rest-node", "raw"),
        ("rest-py", "upper"),
        ("rest-esdk", "lower"),
    ] {
        let key = cloud.device_key("default", reg).unwrap();
        let resource = format!("{scope}/registrations/{reg}");
        let se = far_future();
        let sr_text = match sr {
            "raw" => resource.clone(),
            "upper" => resource.replace('/', "%2F"),
            _ => resource.replace('/', "%2f"),
        };
        let sig = hubswap_mock_cloud::sas::sign(&key, &format!("{sr_text}\n{se}")).unwrap();
        let token = format!(
            "SharedAccessSignature sr={sr_text}&sig={}&skn=registration&se={se}",
            urlencoding::encode(&sig)
        );
        let body =
            format!(r#"{{"registrationId":"{reg}","payload":{{"iotcModelId":"dtmi:legacy;1"}}}}"#);
        let path = format!("/{scope}/registrations/{reg}/register?api-version=2019-03-31");
        let (status, headers, body) =
            https(&cloud, "PUT", &path, Some(&token), body.as_bytes()).await;
        assert_eq!(status, 202, "{sr}: {}", String::from_utf8_lossy(&body));
        assert_eq!(header(&headers, "retry-after"), Some("1"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "assigning");
        let op = v["operationId"].as_str().unwrap();
        let (status, _, body) = https(
            &cloud,
            "GET",
            &format!("/{scope}/registrations/{reg}/operations/{op}?api-version=2021-06-01"),
            Some(&token),
            b"",
        )
        .await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "assigned");
        assert_eq!(
            v["registrationState"]["assignedHub"].as_str(),
            cloud.hub_hosts().first().map(String::as_str)
        );
        assert!(
            v["registrationState"]["createdDateTimeUtc"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        let (status, _, body) = https(
            &cloud,
            "POST",
            &format!("/{scope}/registrations/{reg}?api-version=2021-06-01"),
            Some(&token),
            b"{}",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["deviceId"],
            reg
        );
        assert_eq!(
            cloud.device(reg).unwrap().device.model_id.as_deref(),
            Some("dtmi:legacy;1")
        );
    }
    cloud.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_and_garbage_get_json_errors_over_rest_and_mqtt() {
    let cloud = start(1).await;
    let scope = cloud.id_scope().to_owned();
    let path = format!("/{scope}/registrations/dev-x/register?api-version=2019-03-31");
    let wrong = mint(
        &cloud.device_key("default", "other").unwrap(),
        &format!("{scope}/registrations/dev-x"),
        far_future(),
        Some("registration"),
    )
    .unwrap();
    let cases: [Case<'_>; 6] = [
        ("PUT", path.as_str(), Some(wrong.as_str()), b"{}", 401),
        ("PUT", path.as_str(), None, b"{}", 401),
        (
            "PUT",
            path.as_str(),
            Some("SharedAccessSignature garbage"),
            b"{}",
            401,
        ),
        (
            "PUT",
            "/nope/registrations/dev-x/register",
            Some(wrong.as_str()),
            b"{}",
            404,
        ),
        ("GET", "/no/such/route", None, b"", 404),
        ("DELETE", path.as_str(), None, b"", 405),
    ];
    for (method, p, auth, body, want) in cases {
        let (status, headers, body) = https(&cloud, method, p, auth, body).await;
        assert_eq!(status, want, "{method} {p}");
        let v: Value = serde_json::from_slice(&body).expect("a JSON error body");
        assert!(
            v["errorCode"].as_u64().is_some()
                && v["trackingId"].is_string()
                && v["timestampUtc"].is_string(),
            "{v}"
        );
        assert!(
            header(&headers, "content-type").is_some_and(|c| c.starts_with("application/json"))
        );
    }
    let key = cloud.device_key("default", "dev-x").unwrap();
    let token = mint(
        &key,
        &format!("{scope}/registrations/dev-x"),
        far_future(),
        None,
    )
    .unwrap();
    let (status, _, body) = https(&cloud, "PUT", &path, Some(&token), b"{garbage").await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errorCode"],
        400_004
    );
    let expired = mint(&key, &format!("{scope}/registrations/dev-x"), 1_000, None).unwrap();
    assert_eq!(
        https(&cloud, "PUT", &path, Some(&expired), b"{}").await.0,
        401
    );

    // Over MQTT a bad token comes back on the response topic as 401.
    let answer = provision_mqtt(
        &cloud,
        "dev-y",
        Some(&cloud.device_key("default", "dev-z").unwrap()),
        None,
    )
    .await;
    assert_eq!(answer["errorCode"], 401_002);
    logged(&cloud, |r| {
        matches!(&r.event, Event::DpsResponse { status: 401, .. })
            && r.device.as_deref() == Some("dev-y")
    })
    .await;
    // A DPS CONNECT for another scope is refused with CONNACK 5.
    let mut o = options(&cloud, "dev-y", cloud.dps_mqtt_addr().port(), None);
    o.set_credentials("0neOTHER/registrations/dev-y/api-version=2019-03-31", "x");
    assert_eq!(connect(o).await.err().as_ref().and_then(refusal), Some(5));
    cloud.shutdown().await;
}

#[tokio::test]
async fn individual_enrollments_provision_with_their_own_key() {
    let cloud = start(1).await;
    let e = cloud.add_individual("solo-1", None);
    let answer = provision_mqtt(&cloud, "solo-1", Some(&e.primary_key), None).await;
    assert_eq!(answer["status"], "assigned");
    assert!(answer["registrationState"].get("symmetricKey").is_none());
    let hub = answer["registrationState"]["assignedHub"].as_str().unwrap();
    let d = connect(common::hub_options(
        &cloud,
        hub,
        "solo-1",
        &e.secondary_key,
        true,
    ))
    .await;
    assert!(d.is_ok(), "the secondary key works on the hub too");
    cloud.shutdown().await;
}

#[tokio::test]
async fn x509_group_devices_attest_with_their_chain_and_connect_without_a_password() {
    let cloud = start(2).await;
    let ca = cloud.add_x509_group("x509-fleet").unwrap();
    let id = ca.issue_device("cert-dev-1").unwrap();
    let auth = Some((
        id.cert_pem.clone().into_bytes(),
        id.key_pem.clone().into_bytes(),
    ));
    let answer = provision_mqtt(&cloud, "cert-dev-1", None, auth.clone()).await;
    assert_eq!(answer["status"], "assigned", "{answer}");
    assert_eq!(
        answer["registrationState"]["x509"]["enrollmentGroupId"],
        "x509-fleet"
    );
    let hub = answer["registrationState"]["assignedHub"]
        .as_str()
        .unwrap()
        .to_owned();

    let port = cloud.hub_addr(&hub).unwrap().port();
    let mut o = options(&cloud, "cert-dev-1", port, auth);
    o.set_credentials(format!("{hub}/cert-dev-1/?api-version=2021-04-12"), "");
    assert!(
        connect(o).await.is_ok(),
        "CN == device id and the chain leads to the group CA"
    );

    // A certificate from another CA, or for another CN, is refused.
    let stranger = hubswap_mock_cloud::certs::CertificateAuthority::generate("stranger")
        .unwrap()
        .issue_device("cert-dev-1")
        .unwrap();
    let bad = Some((
        stranger.cert_pem.into_bytes(),
        stranger.key_pem.into_bytes(),
    ));
    let mut o = options(&cloud, "cert-dev-1", port, bad.clone());
    o.set_credentials(format!("{hub}/cert-dev-1/?api-version=2021-04-12"), "");
    assert_eq!(connect(o).await.err().as_ref().and_then(refusal), Some(5));
    assert_eq!(
        provision_mqtt(&cloud, "cert-dev-1", None, bad).await["errorCode"],
        401_002
    );
    let other_cn = ca.issue_device("cert-dev-2").unwrap();
    let wrong_cn = Some((
        other_cn.cert_pem.into_bytes(),
        other_cn.key_pem.into_bytes(),
    ));
    assert_eq!(
        provision_mqtt(&cloud, "cert-dev-1", None, wrong_cn).await["errorCode"],
        401_002
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn x509_group_devices_provision_over_rest_with_their_tls_client_certificate() {
    let cloud = start(2).await;
    let scope = cloud.id_scope().to_owned();
    let ca = cloud.add_x509_group("x509-rest").unwrap();
    let id = ca.issue_device("rest-cert-1").unwrap();
    let register = format!("/{scope}/registrations/rest-cert-1/register?api-version=2021-06-01");
    let body = br#"{"registrationId":"rest-cert-1"}"#;
    // No Authorization header: the chain of the TLS connection attests.
    let (status, headers, answer) = https_as(&cloud, Some(&id), "PUT", &register, None, body).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    let op = serde_json::from_slice::<Value>(&answer).unwrap()["operationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = format!("/{scope}/registrations/rest-cert-1/operations/{op}?api-version=2021-06-01");
    let (status, _, answer) = https_as(&cloud, Some(&id), "GET", &poll, None, b"").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["status"], "assigned", "{v}");
    let state = &v["registrationState"];
    assert_eq!(
        state["deviceId"], "rest-cert-1",
        "the leaf CN is the device id"
    );
    assert_eq!(state["x509"]["enrollmentGroupId"], "x509-rest");
    assert!(
        cloud
            .hub_hosts()
            .iter()
            .any(|h| state["assignedHub"].as_str() == Some(h.as_str()))
    );
    // The same certificate without TLS client auth is unauthorised.
    assert_eq!(https(&cloud, "PUT", &register, None, body).await.0, 401);
    cloud.shutdown().await;
}

#[tokio::test]
async fn x509_rest_registration_with_a_chain_from_another_ca_is_refused() {
    let cloud = start(1).await;
    let scope = cloud.id_scope().to_owned();
    let ca = cloud.add_x509_group("x509-rest").unwrap();
    let stranger = hubswap_mock_cloud::certs::CertificateAuthority::generate("stranger")
        .unwrap()
        .issue_device("rest-cert-2")
        .unwrap();
    let register = format!("/{scope}/registrations/rest-cert-2/register?api-version=2021-06-01");
    let (status, headers, answer) =
        https_as(&cloud, Some(&stranger), "PUT", &register, None, b"{}").await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&answer));
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["errorCode"], 401_002);
    assert_eq!(header(&headers, "x-ms-error-code"), Some("401002"));
    // A certificate from the right CA but for another CN does not register this id either.
    let other = ca.issue_device("rest-cert-3").unwrap();
    assert_eq!(
        https_as(&cloud, Some(&other), "PUT", &register, None, b"{}")
            .await
            .0,
        401
    );
    assert!(
        cloud.device("rest-cert-2").is_err(),
        "nothing was registered"
    );
    cloud.shutdown().await;
}
