//! Twin requests of the application (GET and reported PATCH), kept across reconnects.
//!
//! A request waits until the machine is `ready`, is sent with its own `$rid`, and is answered
//! by the matching `$iothub/twin/res/{status}` message. A connection loss puts requests that
//! were sent but not answered back in the queue: a reported PATCH is a JSON merge patch, so
//! sending it again is harmless. A request answered 429 or 5xx (spec/PROTOCOL.md §4: throttled or
//! an internal error; the connection stands) is held for a full-jitter backoff on the spec's
//! fast profile and sent again, up to [`MAX_TRIES`] times in all, before the application sees
//! [`ClientError::Rejected`].

use std::collections::{HashMap, VecDeque};
use tokio::time::Instant;

use tokio::sync::oneshot;

use crate::api::Twin;
use crate::error::ClientError;
use crate::wire::hub::parse_twin;

#[derive(Debug)]
pub(crate) enum TwinOp {
    Get(oneshot::Sender<Result<Twin, ClientError>>),
    Patch {
        patch: serde_json::Value,
        done: oneshot::Sender<Result<Option<u64>, ClientError>>,
    },
}

impl TwinOp {
    fn fail(self, e: ClientError) {
        match self {
            Self::Get(tx) => {
                let _ = tx.send(Err(e));
            }
            Self::Patch { done, .. } => {
                let _ = done.send(Err(e));
            }
        }
    }
}

/// How many times one request is sent before a 429 or 5xx answer reaches the application.
pub(crate) const MAX_TRIES: u32 = 5;

/// A request and how many times it has been answered 429 or 5xx.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) op: TwinOp,
    pub(crate) tries: u32,
}

/// What an answer did to its request.
#[derive(Debug)]
pub(crate) enum Answered {
    /// No request has this `$rid`.
    Unknown,
    /// The application has its result.
    Done,
    /// Retriable: hold it for a backoff, then send it again.
    Retry(Queued),
}

#[derive(Debug, Default)]
pub(crate) struct TwinRequests {
    waiting: VecDeque<Queued>,
    sent: HashMap<String, Queued>,
    held: Vec<(Instant, Queued)>,
}

impl TwinRequests {
    pub(crate) fn push(&mut self, op: TwinOp) {
        self.waiting.push_back(Queued { op, tries: 0 });
    }

    /// Puts a request back at the front (it could not be handed to MQTT).
    pub(crate) fn push_front(&mut self, q: Queued) {
        self.waiting.push_front(q);
    }

    /// The next request to send, if any.
    pub(crate) fn next_waiting(&mut self) -> Option<Queued> {
        self.waiting.pop_front()
    }

    pub(crate) fn mark_sent(&mut self, rid: String, q: Queued) {
        self.sent.insert(rid, q);
    }

    /// Holds a request answered 429 or 5xx until `until`.
    pub(crate) fn hold(&mut self, until: Instant, q: Queued) {
        self.held.push((until, q));
    }

    /// When the next held request may go again.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.held.iter().map(|(at, _)| *at).min()
    }

    /// Moves every held request whose backoff has passed back to the queue.
    pub(crate) fn release_due(&mut self, now: Instant) {
        let (due, keep): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(at, _)| *at <= now);
        self.held = keep;
        self.waiting.extend(due.into_iter().map(|(_, q)| q));
    }

    /// The connection is gone: sent requests go back to the queue.
    pub(crate) fn interrupt(&mut self) {
        let mut sent: Vec<_> = self.sent.drain().collect();
        sent.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, q) in sent.into_iter().rev() {
            self.waiting.push_front(q);
        }
    }

    /// Answers the request `rid`: its result goes to the application, or, for a 429 or 5xx
    /// with tries left, it comes back for a retry.
    pub(crate) fn answer(
        &mut self,
        rid: &str,
        status: u16,
        version: Option<u64>,
        body: &[u8],
    ) -> Answered {
        let Some(mut q) = self.sent.remove(rid) else {
            return Answered::Unknown;
        };
        let class = hubswap_spec::classify(&hubswap_spec::WireSignal::TwinStatus(status));
        let retriable = class == hubswap_spec::Class::RequestTransient;
        if retriable && q.tries + 1 < MAX_TRIES {
            q.tries += 1;
            return Answered::Retry(q);
        }
        let ok = class == hubswap_spec::Class::Benign;
        match q.op {
            TwinOp::Get(tx) => {
                let r = if ok {
                    parse_twin(body).map_err(|e| {
                        tracing::warn!(error = %e, "invalid twin document");
                        ClientError::Invalid(e.to_string())
                    })
                } else {
                    Err(ClientError::Rejected { status })
                };
                let _ = tx.send(r);
            }
            TwinOp::Patch { done, .. } => {
                let _ = done.send(if ok {
                    Ok(version)
                } else {
                    Err(ClientError::Rejected { status })
                });
            }
        }
        Answered::Done
    }

    /// Fails everything (shutdown).
    pub(crate) fn close(&mut self) {
        for q in self
            .waiting
            .drain(..)
            .chain(self.sent.drain().map(|(_, q)| q))
            .chain(self.held.drain(..).map(|(_, q)| q))
        {
            q.op.fail(ClientError::Shutdown);
        }
    }
}
