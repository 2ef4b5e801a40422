//! Twin requests of the application (GET and reported PATCH), kept across reconnects.
//!
//! A request waits until the machine is `ready`, is sent with its own `$rid`, and is answered
//! by the matching `$iothub/twin/res/{status}` message. A connection loss puts requests that
//! were sent but not answered back in the queue: a reported PATCH is a JSON merge patch, so
//! sending it again is harmless.

use std::collections::{HashMap, VecDeque};

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

#[derive(Debug, Default)]
pub(crate) struct TwinRequests {
    waiting: VecDeque<TwinOp>,
    sent: HashMap<String, TwinOp>,
}

impl TwinRequests {
    pub(crate) fn push(&mut self, op: TwinOp) {
        self.waiting.push_back(op);
    }

    /// The next request to send, if any.
    pub(crate) fn next_waiting(&mut self) -> Option<TwinOp> {
        self.waiting.pop_front()
    }

    pub(crate) fn mark_sent(&mut self, rid: String, op: TwinOp) {
        self.sent.insert(rid, op);
    }

    /// The connection is gone: sent requests go back to the queue.
    pub(crate) fn interrupt(&mut self) {
        let mut sent: Vec<_> = self.sent.drain().collect();
        sent.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, op) in sent.into_iter().rev() {
            self.waiting.push_front(op);
        }
    }

    /// Answers the request `rid`; false if there is none. Returns the status class for the spec.
    pub(crate) fn answer(
        &mut self,
        rid: &str,
        status: u16,
        version: Option<u64>,
        body: &[u8],
    ) -> bool {
        let Some(op) = self.sent.remove(rid) else {
            return false;
        };
        let ok = (200..300).contains(&status);
        match op {
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
        true
    }

    /// Fails everything (shutdown).
    pub(crate) fn close(&mut self) {
        for op in self
            .waiting
            .drain(..)
            .chain(self.sent.drain().map(|(_, op)| op))
        {
            op.fail(ClientError::Shutdown);
        }
    }
}
