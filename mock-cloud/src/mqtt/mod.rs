//! The MQTT 3.1.1 server shared by DPS and the hubs: an accept loop per listener, one task per
//! connection (see `conn`), built on rumqttc's v4 packet codec and tokio-rustls. It is not
//! rumqttd, which cannot carry `$iothub`/`$dps` topics or choose CONNACK codes (workspace README.md, "Decisions").

pub(crate) mod conn;
pub(crate) mod connect;
pub(crate) mod dps;
pub(crate) mod hub;
mod hub_c2d;
mod hub_faults;
pub(crate) mod listeners;
pub(crate) mod topics;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::log::{Endpoint, Event};
use crate::overlay::Gate;
use crate::shared::Shared;

/// What a listener serves: DPS only, or a hub (which also accepts DPS usernames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    Dps,
    Hub(String),
}

impl Role {
    pub(crate) fn endpoint(&self) -> Endpoint {
        match self {
            Self::Dps => Endpoint::DpsMqtt,
            Self::Hub(h) => Endpoint::Hub(h.clone()),
        }
    }
}

/// A running accept loop. Stopping it closes the socket, so new connections are refused;
/// connections already accepted live on.
#[derive(Debug)]
pub(crate) struct Listener {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Listener {
    /// Stops accepting and waits until the socket is closed.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Binds a TCP listener, naming `flag` in the error so users know how to move it.
pub(crate) fn bind(
    addr: SocketAddr,
    what: &str,
    flag: &str,
) -> Result<std::net::TcpListener, Error> {
    let err = |source| Error::Bind {
        addr,
        what: what.to_owned(),
        flag: flag.to_owned(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// Starts the accept loop on an already bound listener.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Arc<ServerConfig>,
    role: Role,
    tracker: TaskTracker,
) -> Result<Listener, Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("listener address: {e}")))?;
    let listener =
        TcpListener::from_std(listener).map_err(|e| Error::Config(format!("listener: {e}")))?;
    let stop = CancellationToken::new();
    let acceptor = TlsAcceptor::from(tls);
    let task = tokio::spawn(accept_loop(
        shared,
        listener,
        acceptor,
        role,
        tracker,
        stop.clone(),
    ));
    Ok(Listener { addr, stop, task })
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    role: Role,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                let conn = shared.registry.next_id();
                shared.log.record(
                    None,
                    Event::TcpAccepted {
                        endpoint: role.endpoint(),
                        conn,
                        peer: peer.to_string(),
                    },
                );
                let gate = match &role {
                    Role::Hub(hub) => shared.faults.hub_gate(hub),
                    Role::Dps => Gate::Open,
                };
                match (gate, &role) {
                    (Gate::Open, _) | (_, Role::Dps) => {
                        tracker.spawn(conn::run(
                            Arc::clone(&shared),
                            acceptor.clone(),
                            tcp,
                            role.clone(),
                            conn,
                        ));
                    }
                    (Gate::Reset, Role::Hub(hub)) => {
                        refused(&shared, None, hub, conn, &peer.to_string(), "reset");
                        let _ = tcp.set_zero_linger();
                        drop(tcp);
                    }
                    (Gate::Blackhole, Role::Hub(hub)) => {
                        refused(&shared, None, hub, conn, &peer.to_string(), "blackhole");
                        tracker.spawn(swallow(shared.shutdown.clone(), tcp));
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Logs a refusal below MQTT.
pub(crate) fn refused(
    shared: &Shared,
    device: Option<&str>,
    hub: &str,
    conn: u64,
    peer: &str,
    how: &str,
) {
    shared.log.record(
        device,
        Event::HubRefused {
            hub: hub.to_owned(),
            conn,
            peer: peer.to_owned(),
            how: how.to_owned(),
        },
    );
}

/// A blackhole: reads and discards everything until the peer gives up or the cloud stops.
pub(crate) async fn swallow<S: tokio::io::AsyncRead + Unpin>(
    stop: CancellationToken,
    mut stream: S,
) {
    let mut sink = tokio::io::sink();
    tokio::select! {
        () = stop.cancelled() => {}
        _ = tokio::io::copy(&mut stream, &mut sink) => {}
    }
}
