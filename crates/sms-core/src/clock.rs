//! Where time is read: the system clock, or a clock a test sets. Every expiry, window and
//! timestamp of the workspace reads a [`Clock`]; only [`unix_now_ms`] reads the system.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system clock in Unix milliseconds (0 before 1970, which no real clock reads).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The system clock in Unix seconds.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// The clock injected where an expiry or a window is decided: the system clock unless a test
/// sets one. Cheap to clone; clones read the same source.
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Fixed(FixedClock),
    Fn(Arc<dyn Fn() -> u64 + Send + Sync>),
}

impl Clock {
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock reading `now_ms` (Unix milliseconds).
    pub fn new(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Source::Fn(Arc::new(now_ms)))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System => unix_now_ms(),
            Source::Fixed(fixed) => fixed.now_ms(),
            Source::Fn(now_ms) => now_ms(),
        }
    }

    /// Unix seconds.
    pub fn now(&self) -> u64 {
        self.now_ms() / 1000
    }
}

impl From<FixedClock> for Clock {
    fn from(fixed: FixedClock) -> Self {
        Self(Source::Fixed(fixed))
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock(system)"),
            Source::Fixed(fixed) => write!(f, "Clock(fixed at {} ms)", fixed.now_ms()),
            Source::Fn(_) => f.write_str("Clock(injected)"),
        }
    }
}

/// A clock that reads what it was set to (tests), in seconds. Clones share the time; turned
/// into a [`Clock`] with `.into()`.
#[derive(Clone, Debug, Default)]
pub struct FixedClock(Arc<AtomicU64>);

impl FixedClock {
    /// At `now` Unix seconds.
    pub fn at(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now.saturating_mul(1000))))
    }

    pub fn set(&self, now: u64) {
        self.0.store(now.saturating_mul(1000), Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: u64) {
        self.0
            .fetch_add(seconds.saturating_mul(1000), Ordering::SeqCst);
    }

    pub fn now(&self) -> u64 {
        self.now_ms() / 1000
    }

    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// `YYYY-MM-DD HH:MM:SS` of unix seconds (civil-from-days, proleptic Gregorian).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_reads_what_it_was_set_to_and_clones_share_it() {
        let fixed = FixedClock::at(100);
        let clock = Clock::from(fixed.clone());
        fixed.advance(5);
        assert_eq!(clock.now(), 105);
        assert_eq!(clock.clone().now_ms(), 105_000);
        fixed.set(7);
        assert_eq!(clock.now(), 7);
        assert!(Clock::system().now() > 1_700_000_000);
        assert_eq!(Clock::new(|| 42_999).now(), 42);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_227_200), "2026-12-02 16:00:00");
        assert_eq!(utc(951_825_599), "2000-02-29 11:59:59");
    }
}
