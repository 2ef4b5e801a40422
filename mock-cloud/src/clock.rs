//! The mock cloud's two clocks: a monotonic one for the observation log and a Unix one, with a
//! settable offset, for SAS expiry (`se`) and timestamps in DPS answers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubswap_spec::Millis;

/// Monotonic time since the cloud started, plus wall-clock Unix time with an offset.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    offset_secs: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose monotonic epoch is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            offset_secs: AtomicI64::new(0),
        }
    }

    /// Milliseconds since the cloud started.
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The monotonic instant that corresponds to `at`.
    pub fn instant(&self, at: Millis) -> Instant {
        self.start + Duration::from_millis(at.0)
    }

    /// Unix seconds as the cloud sees them (wall clock plus the offset).
    pub fn unix_secs(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let wall = i64::try_from(wall).unwrap_or(i64::MAX);
        u64::try_from(wall.saturating_add(self.offset_secs.load(Ordering::Relaxed))).unwrap_or(0)
    }

    /// Shifts the cloud's Unix clock (simulated clock skew); SAS expiry uses the shifted clock.
    pub fn set_offset(&self, offset_secs: i64) {
        self.offset_secs.store(offset_secs, Ordering::Relaxed);
    }

    /// The current offset in seconds.
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// The cloud's Unix time as an RFC 3339 UTC string with 7 fractional digits, as DPS writes it.
    pub fn utc_string(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format_utc(self.unix_secs(), nanos)
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SS.fffffffZ`.
pub fn format_utc(secs: u64, nanos: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:07}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos / 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_like_dps() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(
            format_utc(1_586_488_273, 27_699_700),
            "2020-04-10T03:11:13.0276997Z"
        );
        assert_eq!(format_utc(951_782_400, 0), "2000-02-29T00:00:00.0000000Z");
    }

    #[test]
    fn offset_shifts_unix_time_only() {
        let c = Clock::new();
        let before = c.unix_secs();
        c.set_offset(3600);
        assert!(c.unix_secs() >= before + 3600);
        assert_eq!(c.offset(), 3600);
    }
}
