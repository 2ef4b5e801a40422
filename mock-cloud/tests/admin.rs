//! The admin REST API through [`AdminClient`], and a restart from the data folder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use common::{connect, hub_options, logged, provision_and_connect, provision_mqtt};
use hubswap_mock_cloud::{AdminClient, CloudConfig, Event, MockCloud};
use rumqttc::QoS;
use serde_json::{Value, json};

async fn start_with_admin(dir: Option<&std::path::Path>) -> MockCloud {
    hubswap_mock_cloud::tls::ensure_crypto_provider();
    let mut config = CloudConfig::for_tests(2);
    config.data_dir = dir.map(std::path::Path::to_path_buf);
    MockCloud::start(config).await.unwrap()
}

#[tokio::test]
async fn admin_api_drives_devices_twins_methods_c2d_and_streams_the_log() {
    let cloud = start_with_admin(None).await;
    let admin = AdminClient::for_addr(cloud.admin_addr().unwrap());
    let info = admin.request("GET", "/api/info", None).await.unwrap();
    assert_eq!(info["id_scope"], cloud.id_scope());
    assert_eq!(
        info["groups"][0]["primary_key"].as_str(),
        cloud.group_key("default").as_deref()
    );

    let (mut d, hub) = provision_and_connect(&cloud, "adm-1", true).await;
    d.client
        .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtMostOnce)
        .await
        .unwrap();
    d.client
        .subscribe("devices/adm-1/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    logged(&cloud, |r| matches!(&r.event, Event::Subscribed { filters, .. } if filters[0].0.starts_with("devices/"))).await;

    let devices = admin.request("GET", "/api/devices", None).await.unwrap();
    assert_eq!(devices[0]["id"], "adm-1");
    assert_eq!(devices[0]["connected_to"].as_str(), Some(hub.as_str()));
    let v = admin
        .request(
            "PATCH",
            "/api/devices/adm-1/twin/desired",
            Some(&json!({"fan": "on"})),
        )
        .await
        .unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(
        d.publish().await.unwrap().topic,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );
    let twin = admin
        .request("GET", "/api/devices/adm-1/twin", None)
        .await
        .unwrap();
    assert_eq!(twin["desired"], json!({"fan": "on", "$version": 2}));
    let sent = admin
        .request(
            "POST",
            "/api/devices/adm-1/c2d",
            Some(&json!({"payload": "hi", "properties": {"k": "v"}})),
        )
        .await
        .unwrap();
    let c2d = d.publish().await.unwrap();
    assert!(c2d.topic.contains("k=v") && c2d.topic.contains(sent["message_id"].as_str().unwrap()));
    let offline = admin
        .request(
            "POST",
            "/api/devices/adm-1/methods/m",
            Some(&json!({"timeout_secs": 1})),
        )
        .await;
    assert!(
        offline.unwrap_err().to_string().contains("404"),
        "not subscribed to methods = not online"
    );

    // Refusals are JSON errors.
    for (method, path, body) in [
        ("GET", "/api/nope", None),
        ("POST", "/api/devices", Some(json!("junk"))),
        ("DELETE", "/api/info", None),
    ] {
        let e = admin
            .request(method, path, body.as_ref())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("HTTP 4"), "{method} {path}: {e}");
    }

    // The log: read all, then stream from a sequence number and see a new event arrive.
    let log = admin.request("GET", "/api/log", None).await.unwrap();
    let last = log.as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let obs = admin
        .request("GET", "/api/observations", None)
        .await
        .unwrap();
    assert!(
        obs.as_array()
            .unwrap()
            .iter()
            .any(|o| o["device"] == "adm-1")
    );
    let streamer = {
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            admin
                .stream(&format!("/api/log/stream?since={last}"), |line| {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let done = v["type"] == "disconnected" && v["reason"] == "device blocked";
                    seen.push(v);
                    !done
                })
                .await
                .unwrap();
            seen
        })
    };
    admin
        .request("POST", "/api/devices/adm-1/block", None)
        .await
        .unwrap();
    let seen = tokio::time::timeout(common::WAIT, streamer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen[0]["seq"].as_u64(),
        Some(last),
        "the stream starts at `since`"
    );
    assert!(
        seen.iter()
            .any(|v| v["type"] == "control" && v["action"] == "device adm-1 blocked")
    );
    cloud.shutdown().await;
}

#[tokio::test]
async fn a_restart_from_the_data_folder_keeps_the_ca_keys_and_devices() {
    let dir = std::env::temp_dir().join(format!("hubswap-mock-cloud-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cloud = start_with_admin(Some(&dir)).await;
    let key = cloud.device_key("default", "keep-1").unwrap();
    let hub = provision_mqtt(&cloud, "keep-1", Some(&key), None).await["registrationState"]["assignedHub"].as_str().unwrap().to_owned();
    cloud.update_desired("keep-1", &json!({"x": 1})).unwrap();
    let ca = cloud.ca_pem().to_owned();
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cloud.json")).unwrap()).unwrap();
    assert_eq!(json["id_scope"], cloud.id_scope());
    assert!(
        json["admin_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    cloud.shutdown().await;

    let again = start_with_admin(Some(&dir)).await;
    assert_eq!(again.ca_pem(), ca, "devices keep trusting the same CA");
    assert_eq!(std::fs::read_to_string(again.ca_path()).unwrap(), ca);
    assert_eq!(
        again.device_key("default", "keep-1").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(again.twin("keep-1").unwrap().desired_version, 2);
    assert!(
        connect(hub_options(&again, &hub, "keep-1", &key, true))
            .await
            .is_ok(),
        "the device connects without provisioning again"
    );
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
