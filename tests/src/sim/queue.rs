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

/// Milliseconds the ring covers; events further ahead wait in a heap.
const WINDOW: u64 = 1 << 17;

/// A min-queue of events by time, FIFO among equal times: a calendar queue.
///
/// Events due within [`WINDOW`] ms go into a ring of one bucket per millisecond (push and pop
/// in O(1)); later ones wait in a binary heap ordered by (time, insertion) and move into the
/// ring, in that order, as soon as their millisecond comes within the window, before anything
/// else can be pushed for it. So the order is exactly (time, insertion), as with one heap, at a
/// fraction of the cost for the millions of near-term events a large fleet keeps queued.
#[derive(Debug)]
pub(crate) struct Queue {
    ring: Vec<Vec<Ev>>,
    /// The millisecond being popped; nothing earlier is queued.
    cursor: u64,
    /// The next event of the cursor's bucket.
    head: usize,
    in_ring: usize,
    far: BinaryHeap<Entry>,
    n: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            ring: (0..WINDOW).map(|_| Vec::new()).collect(),
            cursor: 0,
            head: 0,
            in_ring: 0,
            far: BinaryHeap::new(),
            n: 0,
        }
    }
}

impl Queue {
    fn bucket(&mut self, at: u64) -> &mut Vec<Ev> {
        let i = usize::try_from(at % WINDOW).unwrap_or(0);
        &mut self.ring[i]
    }

    /// Schedules `ev` at `at` (ms); a time already passed counts as now.
    pub(crate) fn push(&mut self, at: u64, ev: Ev) {
        let at = at.max(self.cursor);
        if at < self.cursor + WINDOW {
            self.bucket(at).push(ev);
            self.in_ring += 1;
        } else {
            self.n += 1;
            self.far.push(Entry { at, n: self.n, ev });
        }
    }

    /// Moves the heap's events that have come within the window into the ring.
    fn migrate(&mut self) {
        while let Some(top) = self.far.peek()
            && top.at < self.cursor + WINDOW
        {
            if let Some(e) = self.far.pop() {
                self.bucket(e.at).push(e.ev);
                self.in_ring += 1;
            }
        }
    }

    /// The earliest event.
    pub(crate) fn pop(&mut self) -> Option<(u64, Ev)> {
        loop {
            let (cursor, head) = (self.cursor, self.head);
            let b = self.bucket(cursor);
            if let Some(&ev) = b.get(head) {
                self.head += 1;
                self.in_ring -= 1;
                return Some((cursor, ev));
            }
            b.clear();
            self.head = 0;
            if self.in_ring == 0 {
                let next = self.far.peek()?.at;
                self.cursor = next.max(cursor + 1);
            } else {
                self.cursor += 1;
            }
            self.migrate();
        }
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.in_ring + self.far.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_events_keep_their_order_with_near_ones() {
        let mut q = Queue::default();
        let far = WINDOW * 3 + 5;
        q.push(far, Ev::Boot(1));
        q.push(far, Ev::Boot(2));
        q.push(10, Ev::Boot(3));
        assert_eq!(q.pop(), Some((10, Ev::Boot(3))));
        q.push(far, Ev::Boot(4));
        q.push(far - 1, Ev::Boot(5));
        assert_eq!(q.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (far - 1, Ev::Boot(5)),
                (far, Ev::Boot(1)),
                (far, Ev::Boot(2)),
                (far, Ev::Boot(4))
            ]
        );
        q.push(far + 2, Ev::Boot(6));
        q.push(0, Ev::Boot(7));
        assert_eq!(q.pop(), Some((far, Ev::Boot(7))), "the past counts as now");
        assert_eq!(q.pop(), Some((far + 2, Ev::Boot(6))));
        assert_eq!(q.pop(), None);
    }

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
