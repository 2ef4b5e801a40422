//! DPS throttling: a sliding one-minute window of register requests across all devices, and a
//! per-device window of operation polls (D-DPSLIM: 1,000 registrations per minute per service,
//! 5 polls per 10 s per device). Off until a `throttle` fault sets a limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Edge, FaultState, edge};
use crate::log::DpsRequestKind;

const MINUTE: Duration = Duration::from_mins(1);
const DEFAULT_POLL_WINDOW: Duration = Duration::from_secs(10);

/// The limits of the live `throttle` faults (the strictest wins).
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    registrations: Option<u32>,
    polls: Option<(u32, Duration)>,
    retry_after: Option<u32>,
}

/// Admits one request into `window` of length `span` holding at most `limit`; on refusal returns
/// the seconds until the oldest entry leaves the window (at least 1).
fn admit(window: &mut VecDeque<Instant>, now: Instant, span: Duration, limit: u32) -> Option<u32> {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
    if window.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
        window.push_back(now);
        return None;
    }
    let oldest = window.front().copied().unwrap_or(now);
    let wait = span.saturating_sub(now.duration_since(oldest));
    Some(
        u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1),
    )
}

impl FaultState {
    /// `Some(retry_after)` when a `throttle` fault refuses this request.
    pub(crate) fn throttled(&mut self, request: DpsRequestKind, reg_id: &str) -> Option<u32> {
        let now = Instant::now();
        let limits = self
            .active
            .values()
            .filter(|a| a.until.is_none_or(|u| now < u))
            .filter_map(|a| match edge(&a.fault) {
                Edge::Throttle(t) => Some(t),
                _ => None,
            })
            .fold(Limits::default(), |acc, t| Limits {
                registrations: min_opt(acc.registrations, t.registrations_per_minute),
                polls: match (acc.polls, t.polls) {
                    (Some(a), Some(n)) => Some(if n < a.0 {
                        (n, t.poll_window.unwrap_or(DEFAULT_POLL_WINDOW))
                    } else {
                        a
                    }),
                    (None, Some(n)) => Some((n, t.poll_window.unwrap_or(DEFAULT_POLL_WINDOW))),
                    (a, None) => a,
                },
                retry_after: acc.retry_after.or(t.retry_after),
            });
        let refused = match request {
            DpsRequestKind::Register => limits
                .registrations
                .and_then(|n| admit(&mut self.registrations, now, MINUTE, n)),
            DpsRequestKind::Poll => limits.polls.and_then(|(n, span)| {
                let window = self.polls.entry(reg_id.to_owned()).or_default();
                admit(window, now, span, n)
            }),
            DpsRequestKind::Lookup => None,
        }?;
        Some(limits.retry_after.unwrap_or(refused))
    }
}

fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_the_limit_then_names_the_wait() {
        let mut w = VecDeque::new();
        let t0 = Instant::now();
        assert_eq!(admit(&mut w, t0, MINUTE, 2), None);
        assert_eq!(admit(&mut w, t0 + Duration::from_secs(10), MINUTE, 2), None);
        assert_eq!(
            admit(&mut w, t0 + Duration::from_secs(20), MINUTE, 2),
            Some(40),
            "the first slot frees at 60 s"
        );
        assert_eq!(
            admit(&mut w, t0 + Duration::from_mins(1), MINUTE, 2),
            None,
            "the first entry left the window"
        );
        assert_eq!(admit(&mut VecDeque::new(), t0, MINUTE, 0), Some(60));
    }
}
