//! Failed-login limiting: a sliding log of failure times per key, in memory
//! (SYSTEM.md §1: one process serves a deployment, caches are local).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys whose failure count in the window reached `max` are refused until
/// the oldest failure leaves the window.
pub struct FailureLimiter {
    max: usize,
    window: Duration,
    log: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Bound on tracked keys: past it, keys with no failure in the window are
/// dropped, so a flood of distinct usernames cannot grow memory forever.
const MAX_KEYS: usize = 100_000;

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: usize::try_from(max.max(1)).unwrap_or(usize::MAX),
            window,
            log: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` while `key` is over its limit.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = log.get_mut(key) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.max {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait = self.window.saturating_sub(now.duration_since(oldest));
        Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    pub fn record_failure(&self, key: &str) {
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= MAX_KEYS && !log.contains_key(key) {
            let window = self.window;
            log.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let times = log.entry(key.to_owned()).or_default();
        times.push_back(now);
        while times.len() > self.max {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_passes() {
        let l = FailureLimiter::new(2, Duration::from_millis(200));
        assert!(l.check("a").is_ok());
        l.record_failure("a");
        assert!(l.check("a").is_ok());
        l.record_failure("a");
        let wait = l.check("a").unwrap_err();
        assert!((1..=1).contains(&wait));
        assert!(l.check("b").is_ok());
        std::thread::sleep(Duration::from_millis(220));
        assert!(l.check("a").is_ok());
    }
}
