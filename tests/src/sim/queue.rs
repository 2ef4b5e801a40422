//! The simulator's event queue: virtual time in milliseconds, ties broken by insertion order,
//! so that a run is a pure function of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use hubswap_spec::Timer;

/// Something that happens to one device, to the cloud, or to the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ev {
    /// The device's application issues `Command::Start`.
    Boot(u32),
    /// A timer the device's policy armed reaches its deadline.
    Timer(u32, Timer),
    /// A DPS request reaches DPS (`poll`: an operation poll, else a register).
    DpsArrive { dev: u32, seq: u32, poll: bool },
    /// A hub CONNECT reaches the hub's front door (throttle and queue).
    HubArrive { dev: u32, seq: u32, hub: u8 },
    /// A queued CONNECT is processed by the hub.
    HubServe { dev: u32, seq: u32, hub: u8 },
    /// The token of the connection opened by attempt `seq` expires on the hub's clock.
    Expire { dev: u32, seq: u32 },
    /// Step `n` of the scenario's timeline.
    Step(u16),
}

#[derive(Debug)]
struct Entry {
    at: u64,
    n: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.n) == (other.at, other.n)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap pops the earliest deadline, then the earliest insertion.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.n).cmp(&(self.at, self.n))
    }
}

/// A min-queue of events by time, FIFO among equal times.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Entry>,
    n: u64,
}

impl Queue {
    /// Schedules `ev` at `at` (ms).
    pub(crate) fn push(&mut self, at: u64, ev: Ev) {
        self.n += 1;
        self.heap.push(Entry { at, n: self.n, ev });
    }

    /// The earliest event.
    pub(crate) fn pop(&mut self) -> Option<(u64, Ev)> {
        self.heap.pop().map(|e| (e.at, e.ev))
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_by_insertion() {
        let mut q = Queue::default();
        q.push(5, Ev::Boot(1));
        q.push(3, Ev::Boot(2));
        q.push(5, Ev::Boot(3));
        q.push(3, Ev::Boot(4));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (3, Ev::Boot(2)),
                (3, Ev::Boot(4)),
                (5, Ev::Boot(1)),
                (5, Ev::Boot(3))
            ]
        );
    }
}
