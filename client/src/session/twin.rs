//! The application's twin requests (GET and reported PATCH), kept across reconnects.
//!
//! A request waits until the device is `ready`, is sent with its own `$rid`, and is answered
//! by the matching `$iothub/twin/res/{status}` message, classified by the spec's table
//! (`spec::classify` on `WireSignal::TwinStatus`). A connection loss puts requests that were
//! sent but not answered back in the queue: a reported PATCH is a JSON merge patch, so sending
//! it again is harmless. A request answered 429 or 5xx (`Class::RequestTransient`: the
//! connection stands) is held for a full-jitter backoff on the spec's fast profile and sent
//! again, up to [`MAX_TRIES`] sends in all, before the application sees
//! [`ClientError::Rejected`].

use std::collections::{BTreeMap, VecDeque};

use hubswap_spec::{self as spec, Millis};

use crate::error::ClientError;
use crate::wire::hub::{TwinDoc, parse_twin};

/// How many times one request is sent before a 429 or 5xx answer reaches the application.
pub const MAX_TRIES: u32 = 5;

/// What the application asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwinOp {
    /// The full twin.
    Get,
    /// A reported-properties patch.
    Patch(serde_json::Value),
}

/// The answer to a twin request.
#[derive(Debug, Clone, PartialEq)]
pub enum TwinResult {
    /// A GET's document.
    Twin(Result<TwinDoc, ClientError>),
    /// A PATCH's new reported `$version`.
    Reported(Result<Option<u64>, ClientError>),
}

impl TwinOp {
    pub(crate) fn failed(&self, e: ClientError) -> TwinResult {
        match self {
            Self::Get => TwinResult::Twin(Err(e)),
            Self::Patch(_) => TwinResult::Reported(Err(e)),
        }
    }
}

/// A request, the caller waiting for it, and how many sends were answered 429 or 5xx.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) handle: u64,
    pub(crate) op: TwinOp,
    pub(crate) tries: u32,
}

/// What an answer did to its request.
#[derive(Debug)]
pub(crate) enum Answered {
    /// No request has this `$rid`.
    Unknown,
    /// The application has its result.
    Done(u64, TwinResult),
    /// Held for a backoff until the given time, then sent again.
    Held,
}

#[derive(Debug, Default)]
pub(crate) struct TwinRequests {
    waiting: VecDeque<Queued>,
    /// Sent and unanswered, by `$rid` (numbers, so the map keeps sending order).
    sent: BTreeMap<u64, Queued>,
    held: Vec<(Millis, Queued)>,
}

impl TwinRequests {
    pub(crate) fn push(&mut self, handle: u64, op: TwinOp) {
        self.waiting.push_back(Queued {
            handle,
            op,
            tries: 0,
        });
    }

    /// The next request to send, if any.
    pub(crate) fn next_waiting(&mut self) -> Option<Queued> {
        self.waiting.pop_front()
    }

    pub(crate) fn mark_sent(&mut self, rid: u64, q: Queued) {
        self.sent.insert(rid, q);
    }

    /// When the next held request may go again.
    pub(crate) fn next_release(&self) -> Option<Millis> {
        self.held.iter().map(|(at, _)| *at).min()
    }

    /// Moves every held request whose backoff has passed back to the queue.
    pub(crate) fn release_due(&mut self, now: Millis) {
        let (due, keep): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(at, _)| *at <= now);
        self.held = keep;
        self.waiting.extend(due.into_iter().map(|(_, q)| q));
    }

    /// The connection is gone: sent requests go back to the front of the queue, in order.
    pub(crate) fn interrupt(&mut self) {
        let sent = std::mem::take(&mut self.sent);
        for (_, q) in sent.into_iter().rev() {
            self.waiting.push_front(q);
        }
    }

    /// Answers the request `rid`: its result goes to the application, or, for a 429 or 5xx
    /// with sends left, it is held until `now` plus the fast profile's backoff for `draw`.
    pub(crate) fn answer(
        &mut self,
        rid: u64,
        status: u16,
        version: Option<u64>,
        body: &[u8],
        retry: (Millis, &spec::Profile, spec::Draw),
    ) -> Answered {
        let Some(mut q) = self.sent.remove(&rid) else {
            return Answered::Unknown;
        };
        let class = spec::classify(&spec::WireSignal::TwinStatus(status));
        if class == spec::Class::RequestTransient && q.tries + 1 < MAX_TRIES {
            let (now, profile, draw) = retry;
            q.tries += 1;
            let at = now.plus(spec::backoff(q.tries - 1, profile, None, draw));
            tracing::debug!(
                rid,
                status,
                tries = q.tries,
                ?at,
                "twin request held for a retry"
            );
            self.held.push((at, q));
            return Answered::Held;
        }
        let ok = class == spec::Class::Benign;
        let result = match (&q.op, ok) {
            (TwinOp::Get, true) => TwinResult::Twin(parse_twin(body).map_err(|e| {
                tracing::warn!(error = %e, "invalid twin document");
                ClientError::Invalid(e.to_string())
            })),
            (TwinOp::Patch(_), true) => TwinResult::Reported(Ok(version)),
            (op, false) => op.failed(ClientError::Rejected { status }),
        };
        Answered::Done(q.handle, result)
    }

    /// Fails everything (shutdown).
    pub(crate) fn close(&mut self) -> Vec<(u64, TwinResult)> {
        let sent = std::mem::take(&mut self.sent);
        self.waiting
            .drain(..)
            .chain(sent.into_values())
            .chain(self.held.drain(..).map(|(_, q)| q))
            .map(|q| (q.handle, q.op.failed(ClientError::Shutdown)))
            .collect()
    }
}
