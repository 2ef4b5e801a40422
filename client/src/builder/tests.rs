use super::*;
use crate::auth::SecretKey;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn ok() -> DeviceClientBuilder {
    DeviceClientBuilder::default()
        .id_scope("0ne00000A0A")
        .registration_id("dev-1")
        .group_key(KEY)
        .memory_store()
}

fn err(b: DeviceClientBuilder) -> ConfigError {
    match b.validate() {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn a_minimal_config_validates_and_derives_the_device_key() {
    let s = ok().validate().unwrap();
    assert_eq!(s.identity, "0ne00000A0A/dev-1");
    let expect = SecretKey::new(KEY)
        .unwrap()
        .derive_device_key("dev-1")
        .unwrap();
    assert_eq!(s.hub_key, Some(expect));
    assert_eq!(s.dps.port, 8883);
    assert_eq!((s.resolver)("h.example"), ("h.example".to_owned(), 8883));
}

#[test]
fn every_rule_has_its_error() {
    assert!(matches!(
        err(DeviceClientBuilder::default()),
        ConfigError::MissingIdScope
    ));
    assert!(matches!(
        err(ok().id_scope("bad scope")),
        ConfigError::InvalidIdScope(_)
    ));
    assert!(matches!(
        err(DeviceClientBuilder::default().id_scope("s").group_key(KEY)),
        ConfigError::MissingRegistrationId
    ));
    assert!(matches!(
        err(ok().registration_id("bad/id")),
        ConfigError::InvalidRegistrationId(_)
    ));
    assert!(matches!(
        err(ok().registration_id("ends.")),
        ConfigError::InvalidRegistrationId(_)
    ));
    assert!(matches!(
        err(ok().device_key(KEY)),
        ConfigError::ConflictingCredentials
    ));
    assert!(matches!(
        err(DeviceClientBuilder::default()
            .id_scope("s")
            .registration_id("d")),
        ConfigError::MissingCredential
    ));
    assert!(matches!(
        err(DeviceClientBuilder::default()
            .id_scope("s")
            .registration_id("d")
            .device_key("**")),
        ConfigError::InvalidKey(_)
    ));
    assert!(matches!(
        err(ok().model_id("thermostat")),
        ConfigError::InvalidModelId(_)
    ));
    assert!(matches!(
        err(ok().outbox_capacity(0)),
        ConfigError::ZeroOutboxCapacity
    ));
    let bad_timing = spec::Config {
        unreachable_threshold: 0,
        ..spec::Config::default()
    };
    assert!(matches!(err(ok().timing(bad_timing)), ConfigError::Spec(_)));
    assert!(matches!(
        err(ok().keep_alive(Duration::from_millis(10))),
        ConfigError::KeepAlive
    ));
    assert!(matches!(
        err(ok().dps_endpoint("", 1)),
        ConfigError::InvalidEndpoint(_)
    ));
    assert!(matches!(
        err(ok().trust_ca_pem("garbage")),
        ConfigError::InvalidPem { .. }
    ));
    assert!(matches!(
        err(DeviceClientBuilder::default().id_scope("s").x509("x", "y")),
        ConfigError::InvalidPem { .. }
    ));
}

#[test]
fn x509_takes_the_registration_id_from_the_certificate() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cert-dev");
    let cert = params.self_signed(&key).unwrap();
    let s = DeviceClientBuilder::default()
        .id_scope("s")
        .x509(cert.pem(), key.serialize_pem())
        .dps_transport(DpsTransport::Https)
        .memory_store()
        .validate()
        .unwrap();
    assert_eq!(s.registration_id, "cert-dev");
    assert!(s.hub_key.is_none());
    assert_eq!(s.dps.port, 443);
}

#[test]
fn a_local_cloud_sets_the_scope_the_dps_listener_and_the_hub_addresses() {
    // Addresses as data only: the builder stores them, nothing binds or dials them here.
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let cloud = LocalCloud {
        id_scope: "0neLOCAL".into(),
        ca_pem: "pem".into(),
        dps_mqtt: addr("127.0.0.1:4001"),
        dps_https: addr("127.0.0.2:4002"),
        hubs: vec![("hub-a.example".into(), addr("127.0.0.3:4003"))],
    };
    let b = DeviceClientBuilder::default().local_cloud(&cloud, DpsTransport::Https);
    assert_eq!(b.id_scope.as_deref(), Some("0neLOCAL"));
    assert_eq!((b.dps_host.as_str(), b.dps_port), ("127.0.0.2", Some(4002)));
    assert_eq!(b.ca_pem.as_deref(), Some(&b"pem"[..]));
    let resolve = b.resolver.expect("a resolver");
    assert_eq!(resolve("hub-a.example"), ("127.0.0.3".to_owned(), 4003));
    assert_eq!(resolve("other.example"), ("other.example".to_owned(), 8883));
    let b = DeviceClientBuilder::default().local_cloud(&cloud, DpsTransport::Mqtt);
    assert_eq!((b.dps_host.as_str(), b.dps_port), ("127.0.0.1", Some(4001)));
}
