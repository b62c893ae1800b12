use std::time::Duration;

/// Exponential backoff between `base` and `max` with "equal jitter": half of
/// the exponential step is fixed, half random, so retries spread out without
/// ever collapsing to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
        }
    }

    /// The exponential step before jitter for the `failures`-th consecutive
    /// failure (1-based): `base * 2^(failures-1)`, capped at `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << exp).min(self.max)
    }

    /// The delay before the next try, in `[ceiling/2, ceiling]`.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        let spread = u64::try_from(ceiling.saturating_sub(half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::random_range(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_caps() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(b.ceiling(1), Duration::from_secs(10));
        assert_eq!(b.ceiling(2), Duration::from_secs(20));
        assert_eq!(b.ceiling(3), Duration::from_secs(40));
        assert_eq!(b.ceiling(4), Duration::from_secs(60));
        assert_eq!(b.ceiling(1000), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_half_and_full_step() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        for failures in 1..12 {
            let ceiling = b.ceiling(failures);
            for _ in 0..50 {
                let d = b.delay(failures);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "{d:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
    }

    #[test]
    fn max_below_base_is_raised_to_base() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.ceiling(3), Duration::from_secs(5));
    }
}
