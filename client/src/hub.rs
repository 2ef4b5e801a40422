//! The hub link: one task that owns rumqttc's `EventLoop` and polls it only while the session
//! wants a connection (the session owns retry timing).
//!
//! After any error the task reports it and stops polling until the driver sends the next
//! [`HubCmd::Connect`]; rumqttc's own immediate reconnect never happens. Switching hub or
//! credentials replaces `eventloop.mqtt_options`. Before each connect (and on close) the task
//! discards rumqttc's pending requests: redelivery belongs to the outbox, so rumqttc must not
//! resend (and renumber) anything on its own. Every event carries the generation of the
//! connect command it belongs to, so that the session can drop events of a connection it has
//! already abandoned.

use hubswap_spec::ConnectFailure;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, StateError, SubscribeReasonCode,
};
use tokio::sync::mpsc;

use crate::session::HubEvent as S;

/// A command to the hub task. (`Debug` is written by hand: `MqttOptions`'s own `Debug` would
/// print the SAS token.)
pub(crate) enum HubCmd {
    /// Drop any connection and connect with these options.
    Connect {
        /// The generation of this connection.
        generation: u64,
        /// The options (hub address, credentials, TLS).
        options: Box<MqttOptions>,
    },
    /// Drop any connection and stay idle.
    Close {
        /// The generation of the idle state.
        generation: u64,
    },
}

impl std::fmt::Debug for HubCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect {
                generation,
                options,
            } => f
                .debug_struct("Connect")
                .field("generation", generation)
                .field("broker", &options.broker_address())
                .field("client_id", &options.client_id())
                .finish_non_exhaustive(),
            Self::Close { generation } => f
                .debug_struct("Close")
                .field("generation", generation)
                .finish(),
        }
    }
}

/// What happened on the connection of `generation`, in the session's vocabulary.
#[derive(Debug)]
pub(crate) struct HubEvent {
    pub generation: u64,
    pub event: crate::session::HubEvent,
}

/// The driver's handle on the hub task.
#[derive(Debug)]
pub(crate) struct HubLink {
    pub client: AsyncClient,
    cmd: mpsc::UnboundedSender<HubCmd>,
}

impl HubLink {
    /// Spawns the task. `options` only seeds the event loop; nothing connects until
    /// [`HubLink::connect`].
    pub(crate) fn spawn(
        options: MqttOptions,
        cap: usize,
        connect_timeout_s: u64,
    ) -> (Self, mpsc::UnboundedReceiver<HubEvent>) {
        let (client, mut el) = AsyncClient::new(options, cap);
        // rumqttc reserves room for 100 buffered events (14 KiB) per client; the task drains
        // them one at a time, so the queue starts empty and grows only if it must.
        el.state.events = std::collections::VecDeque::new();
        let mut net = el.network_options();
        net.set_connection_timeout(connect_timeout_s.max(1));
        el.set_network_options(net);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(el, cmd_rx, ev_tx));
        (
            Self {
                client,
                cmd: cmd_tx,
            },
            ev_rx,
        )
    }

    /// Starts connection `generation` (the session numbers them).
    pub(crate) fn connect(&mut self, generation: u64, options: MqttOptions) {
        let _ = self.cmd.send(HubCmd::Connect {
            generation,
            options: Box::new(options),
        });
    }

    /// Drops the connection (or the attempt); `generation` is the closed state's number.
    pub(crate) fn close(&mut self, generation: u64) {
        let _ = self.cmd.send(HubCmd::Close { generation });
    }
}

/// Forgets everything rumqttc kept of the previous connection: requests still in its channel,
/// its pending list, and the events and collision its protocol state still holds. The events
/// matter most: rumqttc queues the event of a publish before the write that fails, and would
/// yield it after the next CONNACK as if the new connection had sent it, which would pair the
/// session's packet ids with the wrong messages. (The state is cleared, not replaced, so that a
/// reconnect allocates nothing.)
fn reset(el: &mut EventLoop) {
    el.clean();
    el.pending.clear();
    el.state.events.clear();
    el.state.collision = None;
}

async fn run(
    mut el: EventLoop,
    mut cmds: mpsc::UnboundedReceiver<HubCmd>,
    events: mpsc::UnboundedSender<HubEvent>,
) {
    // The generation being polled, and whether it got CONNACK 0.
    let mut current: Option<(u64, bool)> = None;
    loop {
        let Some((generation, up)) = current else {
            match cmds.recv().await {
                Some(cmd) => current = apply(&mut el, cmd),
                None => return,
            }
            continue;
        };
        // A command cancels a poll in progress: the connection is being discarded anyway.
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(cmd) => current = apply(&mut el, cmd),
                None => return,
            },
            ev = el.poll() => {
                let (event, next) = match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => (Some(S::ConnAck(0)), Some((generation, true))),
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        let refused = s.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure));
                        (Some(S::SubAck { refused }), current)
                    }
                    Ok(Event::Incoming(Packet::PubAck(p))) => (Some(S::PubAck(p.pkid)), current),
                    Ok(Event::Incoming(Packet::Publish(p))) => (Some(S::Publish { topic: p.topic, payload: p.payload.to_vec() }), current),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => (Some(S::Sent(pkid)), current),
                    Ok(_) => (None, current),
                    Err(ConnectionError::RequestsDone) => return,
                    Err(e) => {
                        reset(&mut el);
                        let event = if up {
                            tracing::info!(reason = %e, "hub connection lost");
                            S::Lost
                        } else {
                            classify_connect_error(&e)
                        };
                        (Some(event), None)
                    }
                };
                current = next;
                if let Some(event) = event && events.send(HubEvent { generation, event }).is_err() {
                    return;
                }
            }
        }
    }
}

fn apply(el: &mut EventLoop, cmd: HubCmd) -> Option<(u64, bool)> {
    reset(el);
    match cmd {
        HubCmd::Connect {
            generation,
            options,
        } => {
            el.mqtt_options = *options;
            Some((generation, false))
        }
        HubCmd::Close { .. } => None,
    }
}

/// Maps a failed connect to the spec's vocabulary: a CONNACK refusal keeps its code.
pub(crate) fn classify_connect_error(e: &ConnectionError) -> S {
    match e {
        ConnectionError::ConnectionRefused(code) => S::ConnAck(connack_code(*code)),
        other => S::Failed(connect_failure(other)),
    }
}

/// The failure class of a connect error that carried no CONNACK.
pub(crate) fn connect_failure(e: &ConnectionError) -> ConnectFailure {
    match e {
        ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => ConnectFailure::Timeout,
        ConnectionError::Tls(_) => ConnectFailure::Tls,
        ConnectionError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput => ConnectFailure::Dns,
            std::io::ErrorKind::TimedOut => ConnectFailure::Timeout,
            _ if io.to_string().contains("lookup") => ConnectFailure::Dns,
            _ => ConnectFailure::Reset,
        },
        ConnectionError::MqttState(StateError::Io(io))
            if io.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            ConnectFailure::Refused
        }
        _ => ConnectFailure::Reset,
    }
}

/// The MQTT 3.1.1 return code number.
pub(crate) fn connack_code(code: ConnectReturnCode) -> u8 {
    // rumqttc declares the enum `#[repr(u8)]` with the MQTT 3.1.1 numbers (0 = accepted ... 5).
    code as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_commands_never_print_the_password() {
        let mut o = MqttOptions::new("dev1", "hub.example", 8883);
        o.set_credentials("user", "SharedAccessSignature sr=secret");
        let cmd = HubCmd::Connect {
            generation: 1,
            options: Box::new(o),
        };
        let text = format!("{cmd:?}");
        assert!(
            text.contains("hub.example") && !text.contains("SharedAccessSignature"),
            "{text}"
        );
    }

    #[test]
    fn a_reset_forgets_the_events_of_the_previous_connection() {
        let (_client, mut el) = AsyncClient::new(MqttOptions::new("dev1", "hub.example", 8883), 8);
        // What a failed write leaves behind: the event of a publish that never left.
        el.state
            .events
            .push_back(Event::Outgoing(Outgoing::Publish(7)));
        el.state
            .events
            .push_back(Event::Incoming(Packet::PubAck(rumqttc::PubAck::new(3))));
        let mut next = MqttOptions::new("dev1", "hub-2.example", 8883);
        next.set_inflight(12);
        let generation = apply(
            &mut el,
            HubCmd::Connect {
                generation: 2,
                options: Box::new(next),
            },
        );
        assert_eq!(generation, Some((2, false)));
        assert!(el.state.events.is_empty(), "{:?}", el.state.events);
        assert!(el.pending.is_empty());
    }

    #[test]
    fn connect_errors_map_to_the_spec_vocabulary() {
        let refused =
            ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            classify_connect_error(&refused),
            S::Failed(ConnectFailure::Refused)
        ));
        assert!(matches!(
            classify_connect_error(&ConnectionError::NetworkTimeout),
            S::Failed(ConnectFailure::Timeout)
        ));
        assert!(matches!(
            classify_connect_error(&ConnectionError::ConnectionRefused(
                ConnectReturnCode::ServiceUnavailable
            )),
            S::ConnAck(3)
        ));
        assert!(matches!(
            classify_connect_error(&ConnectionError::MqttState(StateError::ConnectionAborted)),
            S::Failed(ConnectFailure::Reset)
        ));
    }
}
