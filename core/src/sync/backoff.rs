//! Retry delays after failed uploads: exponential, capped, with jitter so that a fleet of
//! devices that failed together does not retry together.

use rand::Rng;

/// Delay before the next attempt after `failures` consecutive failures (1 or more), in ms.
///
/// The delay doubles with each failure from `initial_ms` up to `max_ms`; the actual value is
/// drawn uniformly from the upper half of that range ("equal jitter"), which spreads retries
/// while keeping a floor under them.
pub(crate) fn delay_ms(failures: u32, initial_ms: u64, max_ms: u64, rng: &mut impl Rng) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    let ceiling = initial_ms.saturating_mul(1u64 << doublings).min(max_ms);
    let half = ceiling / 2;
    half + rng.random_range(0..=ceiling - half)
}

/// Parses a `Retry-After` header: delay in seconds, or an HTTP date. Returns milliseconds from
/// `now_ms`, never negative.
pub(crate) fn parse_retry_after(value: &str, now_ms: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let when_ms = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(when_ms.saturating_sub(now_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        for failures in 1..=12 {
            let ceiling = (1000u64 << (failures - 1)).min(60_000);
            for _ in 0..200 {
                let d = delay_ms(failures, 1000, 60_000, &mut rng);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "failures={failures} delay={d}"
                );
            }
        }
        assert!(delay_ms(u32::MAX, 1000, 60_000, &mut rng) <= 60_000);
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut rng = StdRng::seed_from_u64(1);
        let draws: std::collections::HashSet<u64> = (0..100)
            .map(|_| delay_ms(5, 1000, 60_000, &mut rng))
            .collect();
        assert!(draws.len() > 50, "only {} distinct delays", draws.len());
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        let now_ms = 1_445_412_480_000; // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now_ms),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now_ms),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now_ms), None);
    }
}
