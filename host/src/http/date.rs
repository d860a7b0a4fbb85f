//! The `Date` header value (RFC 9110 §6.6.1), formatted at most once a second.

use std::time::{SystemTime, UNIX_EPOCH};

/// A formatted HTTP date and the second it was made for: a response head
/// needs the current second only, so formatting once a second is enough.
#[derive(Debug, Clone)]
pub struct DateCache {
    second: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> DateCache {
        DateCache {
            second: u64::MAX,
            text: String::new(),
        }
    }
}

impl DateCache {
    /// The HTTP date of `now`, reformatted only when the second changed.
    pub fn at(&mut self, now: SystemTime) -> &str {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_date_is_formatted_per_second_in_imf_fixdate() {
        let mut cache = DateCache::default();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(cache.at(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        // Within the same second the cached text is kept.
        assert_eq!(
            cache.at(t + Duration::from_millis(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            cache.at(t + Duration::from_secs(1)),
            "Sun, 06 Nov 1994 08:49:38 GMT"
        );
    }
}
