//! Bad input from the hub reaches the driver: it is classified, logged and dropped; nothing
//! panics and the queued telemetry stays queued.

use std::sync::Arc;

use hubswap_spec::Assignment;
use rumqttc::{Publish, QoS};
use tokio::sync::{mpsc, oneshot, watch};

use super::Driver;
use crate::api::{DeviceEvent, Request};
use crate::builder::{DeviceClientBuilder, MAX_MESSAGE};
use crate::hub::{HubEvent, HubEventKind};
use crate::machine::{ClientTimer, Event, State};
use crate::outbox::{Entry, Outbox, Telemetry};
use crate::status::{ConnectionStatus, StatusKind};
use crate::store::MemoryStore;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn driver() -> (
    Driver,
    mpsc::UnboundedReceiver<DeviceEvent>,
    mpsc::UnboundedSender<Request>,
) {
    let a = Assignment {
        hub: "hub.test".into(),
        device_id: "dev1".into(),
    };
    let s = DeviceClientBuilder::default()
        .id_scope("s")
        .registration_id("dev1")
        .device_key(KEY)
        .store(MemoryStore::with("s/dev1", a))
        // Nothing listens there: the hub task's connect fails, and these tests feed the
        // driver's hub events by hand instead.
        .hub_resolver(|_| ("127.0.0.1".into(), 1))
        .validate()
        .unwrap();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (api_tx, api_rx) = mpsc::unbounded_channel();
    let (status_tx, _) = watch::channel(ConnectionStatus {
        kind: StatusKind::Idle,
        reason: None,
    });
    let (d, _inputs) = Driver::new(
        Arc::new(s),
        Outbox::new(4),
        ev_tx,
        api_tx.downgrade(),
        status_tx,
        api_rx,
    )
    .unwrap();
    (d, ev_rx, api_tx)
}

fn hub(d: &mut Driver, kind: HubEventKind) {
    let generation = d.hub.generation();
    d.hub_event(HubEvent { generation, kind });
}

fn publish(d: &mut Driver, topic: &str, payload: Vec<u8>) {
    hub(
        d,
        HubEventKind::Publish(Publish::new(topic, QoS::AtMostOnce, payload)),
    );
}

#[tokio::test]
async fn bad_hub_input_is_dropped_and_queued_telemetry_survives() {
    let (mut d, mut events, _api) = driver();
    d.feed(&Event::command(hubswap_spec::Command::Start));
    assert!(matches!(d.m.state(), State::Connecting { .. }));
    let mut waiting = Vec::new();
    for i in 0..3 {
        let (tx, rx) = oneshot::channel();
        let e = Entry {
            seq: 0,
            mid: String::new(),
            msg: Telemetry::new(format!("m{i}")),
            deadline: None,
            done: Some(tx),
            permit: None,
        };
        d.api_request(Request::Telemetry(e));
        waiting.push(rx);
    }
    hub(&mut d, HubEventKind::ConnAck(0));
    hub(&mut d, HubEventKind::SubAck(vec![]));
    d.pump();
    assert!(matches!(d.m.state(), State::Syncing { .. }));
    let rid = d.twin_sync_rid.clone().expect("twin GET sent");

    // Invalid twin JSON: a failed request, retried later; the connection stands.
    publish(
        &mut d,
        &format!("$iothub/twin/res/200/?$rid={rid}"),
        b"{not a twin".to_vec(),
    );
    assert!(matches!(d.m.state(), State::Syncing { .. }));
    assert!(d.client_timers.contains_key(&ClientTimer::TwinRetry));
    // Unexpected topics, a malformed method topic, an invalid desired patch, an oversized C2D.
    publish(&mut d, "some/other/topic", b"x".to_vec());
    publish(&mut d, "$iothub/methods/POST//?$rid=1", b"{}".to_vec());
    publish(
        &mut d,
        "devices/someone-else/messages/devicebound/",
        b"x".to_vec(),
    );
    publish(
        &mut d,
        "$iothub/twin/PATCH/properties/desired/?$version=2",
        b"[1,2".to_vec(),
    );
    publish(
        &mut d,
        "devices/dev1/messages/devicebound/",
        vec![b'x'; MAX_MESSAGE + 1],
    );
    // A twin response nobody asked for.
    publish(&mut d, "$iothub/twin/res/200/?$rid=unknown", b"{}".to_vec());
    assert!(
        events.try_recv().is_err(),
        "nothing was delivered to the application"
    );
    assert_eq!(d.outbox.len(), 3, "no queued message was lost");
    assert!(matches!(d.m.state(), State::Syncing { .. }));

    // The retry gets a valid twin: in sync, connected.
    d.feed(&Event::ClientTimerFired(ClientTimer::TwinRetry));
    let rid = d.twin_sync_rid.clone().expect("twin GET sent again");
    publish(
        &mut d,
        &format!("$iothub/twin/res/200/?$rid={rid}"),
        br#"{"desired":{"$version":1},"reported":{}}"#.to_vec(),
    );
    assert!(matches!(d.m.state(), State::Ready { .. }));
    assert!(matches!(events.try_recv(), Ok(DeviceEvent::Twin(_))));

    // A connection loss requeues the unacknowledged messages; none is settled.
    hub(&mut d, HubEventKind::Lost("test".into()));
    assert!(matches!(d.m.state(), State::Waiting { .. }));
    assert_eq!(d.outbox.len(), 3);
    for mut rx in waiting {
        assert!(rx.try_recv().is_err());
    }
}

#[tokio::test]
async fn events_of_an_abandoned_connection_are_ignored() {
    let (mut d, _events, _api) = driver();
    d.feed(&Event::command(hubswap_spec::Command::Start));
    let stale = d.hub.generation();
    d.hub.close();
    d.hub_event(HubEvent {
        generation: stale,
        kind: HubEventKind::ConnAck(0),
    });
    assert!(
        matches!(d.m.state(), State::Connecting { .. }),
        "a stale CONNACK must not connect"
    );
}

#[tokio::test]
async fn puback_settles_exactly_the_matching_message() {
    let (mut d, _events, _api) = driver();
    d.feed(&Event::command(hubswap_spec::Command::Start));
    let (tx, mut rx) = oneshot::channel();
    let e = Entry {
        seq: 0,
        mid: String::new(),
        msg: Telemetry::new("x"),
        deadline: None,
        done: Some(tx),
        permit: None,
    };
    d.api_request(Request::Telemetry(e));
    hub(&mut d, HubEventKind::ConnAck(0));
    d.pump();
    hub(&mut d, HubEventKind::Sent(7));
    hub(&mut d, HubEventKind::PubAck(8));
    assert!(rx.try_recv().is_err());
    hub(&mut d, HubEventKind::PubAck(7));
    let mid = rx.try_recv().unwrap().unwrap();
    assert!(mid.ends_with("-1"), "{mid}");
    assert_eq!(d.outbox.len(), 0);
}
