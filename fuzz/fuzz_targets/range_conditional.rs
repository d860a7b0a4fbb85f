//! Fuzz target `range_conditional`: `Range`, `If-Range` and the conditional headers of a static GET, evaluated for arbitrary files (`static_files/range.rs`, `conditional.rs`, `validators.rs`).
//!
//! Input: 8 bytes of file length, 8 of modification time (seconds, signed:
//! before the epoch too), 8 of the current time, one flag byte, then header
//! lines. A line `Name: value` is a header; a line starting with one of
//! `R I M N S U` is `Range`, `If-Range`, `If-Match`, `If-None-Match`,
//! `If-Modified-Since` or `If-Unmodified-Since` with the rest as its value.
//! In values, `$ETAG` and `$DATE` stand for the file's entity-tag and
//! Last-Modified date, so that matching validators are reachable.
//!
//! Properties: nothing panics (dates far in the past or future included); a
//! satisfiable range lies within the file (`first <= last < len`) and comes
//! from exactly one `Range` header; without one the whole file is sent; a
//! 304 needs `If-None-Match` or `If-Modified-Since`, a 412 needs `If-Match`
//! or `If-Unmodified-Since`, and with none of them the request proceeds; a
//! plain `bytes=N-M` within the file gives exactly that range; and the file's
//! own validators work: its Last-Modified parses back to the same second and
//! as `If-Modified-Since` gives 304, its entity-tag gives 304 as
//! `If-None-Match`, passes `If-Match`, and makes `If-Range` honour a range.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use wasmhost::static_files::fuzzing::{FuzzPrecondition, FuzzRange, fuzz_evaluate};

type Headers = Vec<(String, String)>;

fuzz_target!(|data: &[u8]| {
    if data.len() < 25 {
        return;
    }
    let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let flags = data[24];
    // Small lengths are the interesting ones; bit 0 keeps the full range.
    let len = if flags & 1 != 0 {
        word(0)
    } else {
        word(0) % 1000
    };
    let mtime_secs = word(8) as i64;
    let mtime = if flags & 2 != 0 {
        None
    } else if mtime_secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(
            mtime_secs.unsigned_abs(),
            u32::from(flags) << 20,
        ))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(mtime_secs.unsigned_abs()))
    };
    let now = UNIX_EPOCH
        .checked_add(Duration::from_secs(word(16) % (1 << 40)))
        .expect("in range");
    let text = String::from_utf8_lossy(&data[25..]);

    let file = fuzz_evaluate(&[], len, mtime, now);
    assert_eq!(file.precondition, FuzzPrecondition::Proceed);
    assert_eq!(file.range, FuzzRange::Full);
    let etag = file.etag.clone();
    let date = file.last_modified.clone();
    let headers = headers(&text, &etag, date.as_deref().unwrap_or("$DATE"));

    let got = fuzz_evaluate(&headers, len, mtime, now);
    let count = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    match got.range {
        FuzzRange::Partial { first, last } => {
            assert!(first <= last && last < len, "{first}-{last} of {len}");
            assert_eq!(count("range"), 1);
        }
        FuzzRange::Unsatisfiable => assert_eq!(count("range"), 1),
        FuzzRange::Full => {}
    }
    match got.precondition {
        FuzzPrecondition::NotModified => {
            assert!(count("if-none-match") + count("if-modified-since") > 0)
        }
        FuzzPrecondition::Failed => assert!(count("if-match") + count("if-unmodified-since") > 0),
        FuzzPrecondition::Proceed => {}
    }

    // Known answers for this file.
    let eval = |headers: &[(&str, &str)]| {
        let headers: Headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        fuzz_evaluate(&headers, len, mtime, now)
    };
    let (first, last) = (word(0) % 64, word(8) % 64);
    if first <= last && last < len {
        let range = format!("bytes={first}-{last}");
        assert_eq!(
            eval(&[("Range", &range)]).range,
            FuzzRange::Partial { first, last }
        );
        let honoured = eval(&[("Range", &range), ("If-Range", &etag)]).range;
        assert_eq!(honoured, FuzzRange::Partial { first, last });
    }
    assert_eq!(
        eval(&[("If-None-Match", &etag)]).precondition,
        FuzzPrecondition::NotModified
    );
    assert_eq!(
        eval(&[("If-Match", &etag)]).precondition,
        FuzzPrecondition::Proceed
    );
    if let Some(date) = &date {
        let parsed = httpdate::parse_http_date(date).expect("our own Last-Modified");
        let back = parsed
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs();
        let expected = mtime
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map(|d| {
                d.as_secs()
                    .min(now.duration_since(UNIX_EPOCH).map_or(0, |n| n.as_secs()))
            });
        assert_eq!(Some(back), expected, "{date}");
        assert_eq!(
            eval(&[("If-Modified-Since", date)]).precondition,
            FuzzPrecondition::NotModified
        );
        assert_eq!(
            eval(&[("If-Unmodified-Since", date)]).precondition,
            FuzzPrecondition::Proceed
        );
    }
});

/// The header lines of the input, placeholders replaced.
fn headers(text: &str, etag: &str, date: &str) -> Headers {
    text.split('\n')
        .filter_map(|line| {
            let line = line.replace("$ETAG", etag).replace("$DATE", date);
            let short = |name: &str| Some((name.to_owned(), line[1..].to_owned()));
            match line.as_bytes().first()? {
                b'R' => short("Range"),
                b'I' => short("If-Range"),
                b'M' => short("If-Match"),
                b'N' => short("If-None-Match"),
                b'S' => short("If-Modified-Since"),
                b'U' => short("If-Unmodified-Since"),
                _ => {
                    let (name, value) = line.split_once(':')?;
                    Some((name.to_owned(), value.trim().to_owned()))
                }
            }
        })
        .collect()
}
