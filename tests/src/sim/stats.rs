//! What a run records while it runs: per-second bins, per-device counters, and each incident's
//! affected devices with the instant each one was connected again.

use super::scenario::{T0, Target, targeted};

/// Where a device is, as the cloud model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not started.
    Idle,
    /// Nothing in flight, not connected.
    Waiting,
    /// A DPS request is in flight.
    Dps,
    /// A hub CONNECT is in flight.
    Connecting,
    /// Connected to a hub.
    Connected,
}

impl Status {
    /// Every status, in chart order.
    pub(crate) const ALL: [Self; 5] = [
        Self::Connected,
        Self::Connecting,
        Self::Dps,
        Self::Waiting,
        Self::Idle,
    ];

    fn index(self) -> usize {
        match self {
            Self::Connected => 0,
            Self::Connecting => 1,
            Self::Dps => 2,
            Self::Waiting => 3,
            Self::Idle => 4,
        }
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Connecting => "connecting",
            Self::Dps => "at DPS",
            Self::Waiting => "waiting",
            Self::Idle => "idle",
        }
    }
}

/// A device's requests over the whole run (from the timeline's start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DeviceCounts {
    pub(crate) registers: u32,
    pub(crate) polls: u32,
    pub(crate) connects: u32,
    pub(crate) invalidations: u32,
}

/// One virtual second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bin {
    pub(crate) registers: u32,
    pub(crate) polls: u32,
    pub(crate) admitted: u32,
    pub(crate) throttled: u32,
    pub(crate) errors: u32,
    /// Devices per [`Status`] at the end of the second, in [`Status::ALL`] order.
    pub(crate) status: [u32; 5],
}

/// When an incident started and cleared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) start: Option<u64>,
    pub(crate) clear: Option<u64>,
    target: Target,
}

/// Not affected by the incident.
pub(crate) const UNAFFECTED: u64 = 0;
/// Affected and not connected again yet.
pub(crate) const DOWN: u64 = u64::MAX;

/// Everything a run records.
pub(crate) struct Stats {
    hubs: usize,
    counts: [usize; 5],
    cur: u64,
    pub(crate) bins: Vec<Bin>,
    /// Hub CONNECT arrivals per second, `hubs` per second.
    pub(crate) hub_bins: Vec<u32>,
    pub(crate) clocks: Vec<Clock>,
    /// Per incident, per device: [`UNAFFECTED`], [`DOWN`], or when it was connected again.
    pub(crate) recovered: Vec<Vec<u64>>,
    pub(crate) events: u64,
    /// Affected devices, over every incident, not connected again yet.
    pub(crate) down: usize,
    pub(crate) throttle_refusals: u64,
    pub(crate) end: u64,
    pub(crate) queue_left: usize,
}

impl Stats {
    pub(crate) fn new(n: u32, hubs: u8, incidents: usize) -> Self {
        let n = n as usize;
        Self {
            hubs: usize::from(hubs),
            counts: [0, 0, 0, 0, n],
            cur: 0,
            bins: Vec::new(),
            hub_bins: Vec::new(),
            clocks: vec![
                Clock {
                    start: None,
                    clear: None,
                    target: Target::All,
                };
                incidents
            ],
            recovered: vec![vec![UNAFFECTED; n]; incidents],
            events: 0,
            down: 0,
            throttle_refusals: 0,
            end: 0,
            queue_left: 0,
        }
    }

    fn bin(&mut self, now: u64) -> Option<&mut Bin> {
        let s = usize::try_from(now.checked_sub(T0)? / 1000).ok()?;
        if self.bins.len() <= s {
            self.bins.resize(s + 1, Bin::default());
            self.hub_bins.resize((s + 1) * self.hubs, 0);
        }
        self.bins.get_mut(s)
    }

    /// Closes every second before `now`'s with the status counts as they stand.
    pub(crate) fn advance(&mut self, now: u64) {
        let Some(sec) = now.checked_sub(T0).map(|t| t / 1000) else {
            return;
        };
        while self.cur < sec {
            let snapshot = self.snapshot();
            let cur = self.cur;
            if let Some(b) = self.bin(T0 + cur * 1000) {
                b.status = snapshot;
            }
            self.cur += 1;
        }
    }

    fn snapshot(&self) -> [u32; 5] {
        self.counts.map(|c| u32::try_from(c).unwrap_or(u32::MAX))
    }

    pub(crate) fn finish(&mut self, now: u64, queue_left: usize) {
        self.advance(now + 1000);
        self.end = now;
        self.queue_left = queue_left;
    }

    pub(crate) fn dps_request(&mut self, now: u64, poll: bool) {
        if let Some(b) = self.bin(now) {
            if poll {
                b.polls += 1;
            } else {
                b.registers += 1;
            }
        }
    }

    pub(crate) fn dps_admitted(&mut self, now: u64) {
        if let Some(b) = self.bin(now) {
            b.admitted += 1;
        }
    }

    pub(crate) fn dps_throttled(&mut self, now: u64) {
        if let Some(b) = self.bin(now) {
            b.throttled += 1;
        }
    }

    pub(crate) fn dps_error(&mut self, now: u64) {
        if let Some(b) = self.bin(now) {
            b.errors += 1;
        }
    }

    pub(crate) fn hub_connect(&mut self, now: u64, hub: u8) {
        let hubs = self.hubs;
        if self.bin(now).is_some() {
            let s = usize::try_from((now - T0) / 1000).unwrap_or(0);
            if let Some(c) = self.hub_bins.get_mut(s * hubs + usize::from(hub)) {
                *c += 1;
            }
        }
    }

    /// Device `d` went from `old` to `new` at `now`.
    pub(crate) fn status_changed(
        &mut self,
        d: u32,
        old: Status,
        new: Status,
        (first_home, subset): (u8, bool),
        now: u64,
    ) {
        if old == new {
            return;
        }
        self.counts[old.index()] -= 1;
        self.counts[new.index()] += 1;
        let d = d as usize;
        let was = old == Status::Connected;
        let is = new == Status::Connected;
        for (i, c) in self.clocks.iter().enumerate() {
            let Some(_) = c.start else { continue };
            let rec = &mut self.recovered[i][d];
            if was && !is && c.clear.is_none() && targeted(c.target, first_home, subset) {
                self.down += usize::from(*rec != DOWN);
                *rec = DOWN;
            } else if is && *rec == DOWN {
                *rec = now;
                self.down -= 1;
            }
        }
    }

    /// Incident `i` starts: its targets that are not connected are affected. `devs` gives each
    /// device's first hub, whether it is in the subset, and its status.
    pub(crate) fn incident_start(
        &mut self,
        i: usize,
        now: u64,
        target: Target,
        devs: impl IntoIterator<Item = (u8, bool, Status)>,
    ) {
        self.clocks[i] = Clock {
            start: Some(now),
            clear: None,
            target,
        };
        for (d, (first_home, subset, status)) in devs.into_iter().enumerate() {
            if targeted(target, first_home, subset)
                && status != Status::Connected
                && self.recovered[i][d] != DOWN
            {
                self.recovered[i][d] = DOWN;
                self.down += 1;
            }
        }
    }

    pub(crate) fn incident_clear(&mut self, i: usize, now: u64) {
        self.clocks[i].clear = Some(now);
    }
}
