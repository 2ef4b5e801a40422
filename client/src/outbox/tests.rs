#![allow(clippy::disallowed_methods, reason = "tests pick arbitrary instants")]

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;

fn entry(body: &str) -> (Entry, oneshot::Receiver<Result<String, SendError>>) {
    let (tx, rx) = oneshot::channel();
    let e = Entry {
        seq: 0,
        mid: format!("m-{body}"),
        msg: Telemetry::new(body),
        deadline: None,
        done: Some(tx),
        permit: None,
    };
    (e, rx)
}

fn send_all(ob: &mut Outbox, now: Instant) -> Vec<u64> {
    let mut v = Vec::new();
    while let Some(e) = ob.next_to_send(now) {
        v.push(e.seq);
    }
    v
}

#[test]
fn nothing_flows_until_open_and_the_window_bounds_the_flight() {
    let mut ob = Outbox::new(2);
    let now = Instant::now();
    for b in ["a", "b", "c"] {
        ob.push(entry(b).0).unwrap();
    }
    assert!(send_all(&mut ob, now).is_empty());
    ob.open();
    assert_eq!(send_all(&mut ob, now), vec![1, 2]);
    ob.acked(1);
    assert_eq!(send_all(&mut ob, now), vec![3]);
    assert_eq!(ob.len(), 2);
}

#[test]
fn suspend_requeues_unacked_messages_in_order_and_ack_settles_once() {
    let mut ob = Outbox::new(8);
    let now = Instant::now();
    let (e1, mut r1) = entry("a");
    let (e2, r2) = entry("b");
    ob.push(e1).unwrap();
    ob.push(e2).unwrap();
    ob.open();
    assert_eq!(send_all(&mut ob, now), vec![1, 2]);
    ob.acked(1);
    assert_eq!(r1.try_recv().unwrap(), Ok("m-a".into()));
    // Connection lost before the PUBACK of 2: it is sent again on the next connection.
    ob.suspend();
    assert!(send_all(&mut ob, now).is_empty());
    ob.open();
    assert_eq!(send_all(&mut ob, now), vec![2]);
    ob.acked(2);
    ob.acked(2);
    drop(r2);
    assert_eq!(ob.len(), 0);
}

#[test]
fn expired_messages_fail_while_waiting_but_not_in_flight() {
    let mut ob = Outbox::new(1);
    let now = Instant::now();
    let (mut e1, r1) = entry("a");
    let (mut e2, mut r2) = entry("b");
    e1.deadline = Some(now + Duration::from_secs(1));
    e2.deadline = Some(now + Duration::from_secs(1));
    ob.push(e1).unwrap();
    ob.push(e2).unwrap();
    ob.open();
    assert_eq!(send_all(&mut ob, now), vec![1]);
    let later = now + Duration::from_secs(2);
    assert_eq!(ob.expire(later), None);
    assert_eq!(r2.try_recv().unwrap(), Err(SendError::Expired));
    // The in-flight one is still owed its PUBACK.
    ob.acked(1);
    drop(r1);
    assert_eq!(ob.len(), 0);
}

#[test]
fn close_fails_everything_with_the_reason() {
    let mut ob = Outbox::new(1);
    let (e, mut r) = entry("a");
    ob.push(e).unwrap();
    ob.close(&SendError::Shutdown);
    assert_eq!(r.try_recv().unwrap(), Err(SendError::Shutdown));
}

#[test]
fn the_journal_survives_a_restart_and_forgets_acked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    {
        let mut ob = Outbox::with_journal(4, dir.path()).unwrap();
        for b in ["a", "b", "c"] {
            ob.push(entry(b).0).unwrap();
        }
        ob.open();
        send_all(&mut ob, now);
        ob.acked(2);
    }
    std::fs::write(dir.path().join("junk.msg"), b"{broken").unwrap();
    let mut ob = Outbox::with_journal(4, dir.path()).unwrap();
    assert_eq!(ob.len(), 2);
    assert_eq!(ob.next_seq(), 4);
    ob.open();
    let mut bodies = Vec::new();
    while let Some(e) = ob.next_to_send(now) {
        bodies.push((e.seq, e.mid.clone(), e.msg.payload.clone()));
    }
    assert_eq!(
        bodies,
        vec![
            (1, "m-a".into(), b"a".to_vec()),
            (3, "m-c".into(), b"c".to_vec())
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let f = dir.path().join(format!("{:020}.msg", 1));
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
