//! How long to wait before trying a request again.

use std::time::Duration;

/// Longest wait between two tries, whether from the schedule or a registry's `Retry-After`.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30);

/// The wait before retry number `retry` (0 for the second try): `first` doubled each time, at
/// most [`MAX_DELAY`].
pub(crate) fn delay(first: Duration, retry: u32) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(retry))
        .min(MAX_DELAY)
}

/// A `Retry-After` header in seconds, at most [`MAX_DELAY`]; its HTTP-date form is ignored
/// (the schedule applies instead).
pub(crate) fn retry_after(header: Option<&str>) -> Option<Duration> {
    let seconds: u64 = header?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let first = Duration::from_millis(500);
        let schedule: Vec<_> = (0..8).map(|retry| delay(first, retry)).collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            schedule,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(16000),
                MAX_DELAY,
                MAX_DELAY
            ]
        );
        assert_eq!(delay(first, u32::MAX), MAX_DELAY);
        assert_eq!(delay(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn retry_after_in_seconds_capped() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 0 ")), Some(Duration::ZERO));
        assert_eq!(retry_after(Some("86400")), Some(MAX_DELAY));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }
}
