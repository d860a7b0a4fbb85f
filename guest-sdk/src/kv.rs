//! The app's durable key-value storage (ABI section 6 and "Storage"): get, set, delete, paginated list, atomic increment and compare-and-swap.
//!
//! Every app sees only its own namespace; keys and values are arbitrary
//! bytes. The app needs the `storage` grant in `routes.json`, or every call
//! fails with [`KvError::NotGranted`].
//!
//! ```
//! use guest_sdk::kv;
//! kv::set(b"greeting", b"hello")?;
//! assert_eq!(kv::get(b"greeting")?, Some(b"hello".to_vec()));
//! assert_eq!(kv::increment(b"visits", 1)?, 1);
//! assert!(kv::cas(b"lock", None, Some(b"mine"))?);
//! assert!(!kv::cas(b"lock", None, Some(b"yours"))?);
//! # Ok::<(), kv::KvError>(())
//! ```
//!
//! Compiled for wasm32 these call the `wasmhost` imports. Natively (for
//! `cargo test`) they use the in-memory, per-thread stand-in of
//! [`crate::native`], which follows the same rules and limits, so app logic
//! that uses storage is unit-testable without a host.

use std::fmt;

use wasmhost_abi::limits::MAX_GET_MANY_KEYS;
use wasmhost_abi::{decode_key_page, decode_value_list, encode_key_list, status};

#[cfg(target_arch = "wasm32")]
use crate::ffi::host as backend;
#[cfg(not(target_arch = "wasm32"))]
use crate::native as backend;

/// Why a storage operation failed; each variant is one status code of the
/// ABI ("absent" and "mismatch" are not errors: they are the `None` and
/// `false` results of the functions below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvError {
    /// 1: the key, prefix or `after` is longer than 1024 bytes.
    KeyTooLarge,
    /// 2: the value is longer than 1 MiB.
    ValueTooLarge,
    /// 3: the app already holds the maximum number of keys.
    TooManyKeys,
    /// 4: `increment` found a value that is not a decimal 64-bit integer.
    NotAnInteger,
    /// 5: `increment` would leave the 64-bit range.
    Overflow,
    /// 6: the host is misconfigured (the app name is not a namespace).
    InvalidNamespace,
    /// 7: the host's storage failed; details are in the host log.
    Backend,
    /// 10: the app is not granted `storage` in `routes.json`.
    NotGranted,
    /// 11: the host refused an argument (a range outside memory, bad UTF-8).
    BadArgument,
    /// 12: the host could not allocate the result in guest memory.
    NoMemory,
    /// A status this operation never returns (including codes added by a
    /// later ABI version), or a result buffer that does not decode.
    Unexpected(i32),
}

impl KvError {
    /// The error for a status that is neither `OK` nor an expected outcome.
    pub(crate) fn from_status(code: i32) -> KvError {
        match code {
            status::KEY_TOO_LARGE => KvError::KeyTooLarge,
            status::VALUE_TOO_LARGE => KvError::ValueTooLarge,
            status::TOO_MANY_KEYS => KvError::TooManyKeys,
            status::NOT_AN_INTEGER => KvError::NotAnInteger,
            status::OVERFLOW => KvError::Overflow,
            status::INVALID_NAMESPACE => KvError::InvalidNamespace,
            status::BACKEND => KvError::Backend,
            status::NOT_GRANTED => KvError::NotGranted,
            status::BAD_ARGUMENT => KvError::BadArgument,
            status::NO_MEMORY => KvError::NoMemory,
            other => KvError::Unexpected(other),
        }
    }

    /// The ABI status code of this error.
    pub fn code(self) -> i32 {
        match self {
            KvError::KeyTooLarge => status::KEY_TOO_LARGE,
            KvError::ValueTooLarge => status::VALUE_TOO_LARGE,
            KvError::TooManyKeys => status::TOO_MANY_KEYS,
            KvError::NotAnInteger => status::NOT_AN_INTEGER,
            KvError::Overflow => status::OVERFLOW,
            KvError::InvalidNamespace => status::INVALID_NAMESPACE,
            KvError::Backend => status::BACKEND,
            KvError::NotGranted => status::NOT_GRANTED,
            KvError::BadArgument => status::BAD_ARGUMENT,
            KvError::NoMemory => status::NO_MEMORY,
            KvError::Unexpected(code) => code,
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::KeyTooLarge => f.write_str("key too large (at most 1024 bytes)"),
            KvError::ValueTooLarge => f.write_str("value too large (at most 1 MiB)"),
            KvError::TooManyKeys => f.write_str("too many keys for this app"),
            KvError::NotAnInteger => f.write_str("the stored value is not an integer"),
            KvError::Overflow => f.write_str("the counter would overflow"),
            KvError::InvalidNamespace => f.write_str("invalid storage namespace"),
            KvError::Backend => f.write_str("the host's storage failed"),
            KvError::NotGranted => f.write_str("storage is not granted to this app"),
            KvError::BadArgument => f.write_str("the host refused an argument"),
            KvError::NoMemory => f.write_str("out of guest memory"),
            KvError::Unexpected(code) => write!(f, "unexpected storage status {code}"),
        }
    }
}

impl std::error::Error for KvError {}

/// One page of [`list`]: its keys, ascending, and the `next` cursor to
/// pass as `after` for the following page (`None` at the end).
pub use wasmhost_abi::KeyPage as Page;

/// Maps a status with no special outcome to `Ok(())` or the error.
fn check(code: i32) -> Result<(), KvError> {
    match code {
        status::OK => Ok(()),
        other => Err(KvError::from_status(other)),
    }
}

/// The value stored under `key`, or `None`.
pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
    match backend::get(key) {
        (status::OK, Some(value)) => Ok(Some(value)),
        (status::ABSENT, _) => Ok(None),
        (status::OK, None) => Err(KvError::Unexpected(status::OK)),
        (other, _) => Err(KvError::from_status(other)),
    }
}

/// Stores `value` under `key`, replacing any previous value.
pub fn set(key: &[u8], value: &[u8]) -> Result<(), KvError> {
    check(backend::set(key, value))
}

/// Removes `key`; `true` if it existed.
pub fn delete(key: &[u8]) -> Result<bool, KvError> {
    match backend::delete(key) {
        status::OK => Ok(true),
        status::ABSENT => Ok(false),
        other => Err(KvError::from_status(other)),
    }
}

/// One page of the keys starting with `prefix` that sort after `after` (if
/// given), ascending, at most `limit` of them (`0` or more than 1000: 1000).
pub fn list(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> Result<Page, KvError> {
    match backend::list(prefix, after, limit) {
        (status::OK, Some(buf)) => decode_key_page(&buf).ok_or(KvError::Unexpected(status::OK)),
        (status::OK, None) => Err(KvError::Unexpected(status::OK)),
        (other, _) => Err(KvError::from_status(other)),
    }
}

/// The values of `keys`, in their order (`None` for a key without one), in
/// as few host calls as the limits allow: one for up to 1000 keys whose
/// values total at most 8 MiB. Values read in one call come from one point
/// in time.
pub fn get_many<K: AsRef<[u8]>>(keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
    let mut values = Vec::with_capacity(keys.len());
    let mut rest = keys;
    while !rest.is_empty() {
        let batch = &rest[..rest.len().min(MAX_GET_MANY_KEYS)];
        let got = match backend::get_many(&encode_key_list(batch)) {
            (status::OK, Some(buf)) => {
                decode_value_list(&buf).ok_or(KvError::Unexpected(status::OK))?
            }
            (status::OK, None) => return Err(KvError::Unexpected(status::OK)),
            (other, _) => return Err(KvError::from_status(other)),
        };
        // The host answers at least one value, and never more than asked.
        if got.is_empty() || got.len() > batch.len() {
            return Err(KvError::Unexpected(status::OK));
        }
        rest = &rest[got.len()..];
        values.extend(got);
    }
    Ok(values)
}

/// Every key starting with `prefix`, ascending, reading page after page.
pub fn list_all(prefix: &[u8]) -> Result<Vec<Vec<u8>>, KvError> {
    let mut keys = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = list(prefix, after.as_deref(), 1000)?;
        keys.extend(page.keys);
        match page.next {
            // A `next` that does not advance would loop forever.
            Some(next) if after.as_ref() != Some(&next) => after = Some(next),
            _ => return Ok(keys),
        }
    }
}

/// Atomically adds `delta` to the integer under `key` (absent counts as 0)
/// and returns the new value.
pub fn increment(key: &[u8], delta: i64) -> Result<i64, KvError> {
    match backend::increment(key, delta) {
        (status::OK, value) => Ok(value),
        (other, _) => Err(KvError::from_status(other)),
    }
}

/// Compare-and-swap: if the value under `key` equals `expected` (`None`: the
/// key must not exist), replaces it with `new` (`None`: deletes the key) and
/// returns `true`; otherwise changes nothing and returns `false`.
pub fn cas(key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, KvError> {
    match backend::cas(key, expected, new) {
        status::OK => Ok(true),
        status::MISMATCH => Ok(false),
        other => Err(KvError::from_status(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_many_reads_in_order_across_calls_and_within_the_byte_budget() {
        crate::native::reset();
        let keys: Vec<Vec<u8>> = (0..2500).map(|i| format!("k{i:04}").into_bytes()).collect();
        for key in keys.iter().step_by(2) {
            set(key, key).unwrap();
        }
        // More keys than one call takes: answered in order, absent as None.
        let values = get_many(&keys).unwrap();
        assert_eq!(values.len(), keys.len());
        for (i, (key, value)) in keys.iter().zip(&values).enumerate() {
            assert_eq!(value.as_ref(), (i % 2 == 0).then_some(key), "{i}");
        }
        // Values beyond the 8 MiB budget of one call come in the next.
        crate::native::reset();
        let big = vec![7u8; 1024 * 1024];
        let names: Vec<String> = (0..10).map(|i| format!("big{i}")).collect();
        for name in &names {
            set(name.as_bytes(), &big).unwrap();
        }
        let values = get_many(&names).unwrap();
        assert_eq!(values.len(), 10);
        assert!(values.iter().all(|v| v.as_deref() == Some(&big[..])));
        assert_eq!(
            get_many::<&[u8]>(&[]).unwrap(),
            Vec::<Option<Vec<u8>>>::new()
        );
        assert_eq!(get_many(&[vec![0u8; 2000]]), Err(KvError::KeyTooLarge));
    }

    #[test]
    fn get_set_delete() {
        assert_eq!(get(b"a"), Ok(None));
        set(b"a", b"1").unwrap();
        set(b"", b"").unwrap();
        assert_eq!(get(b"a"), Ok(Some(b"1".to_vec())));
        assert_eq!(get(b""), Ok(Some(Vec::new())));
        set(b"a", b"2").unwrap();
        assert_eq!(get(b"a"), Ok(Some(b"2".to_vec())));
        assert_eq!(delete(b"a"), Ok(true));
        assert_eq!(delete(b"a"), Ok(false));
        assert_eq!(get(b"a"), Ok(None));
    }

    #[test]
    fn limits_are_errors() {
        let long_key = vec![b'k'; 1025];
        let big_value = vec![0; 1024 * 1024 + 1];
        assert_eq!(get(&long_key), Err(KvError::KeyTooLarge));
        assert_eq!(set(&long_key, b""), Err(KvError::KeyTooLarge));
        assert_eq!(set(b"k", &big_value), Err(KvError::ValueTooLarge));
        assert_eq!(list(&long_key, None, 0), Err(KvError::KeyTooLarge));
        assert_eq!(set(&long_key[..1024], &big_value[1..]), Ok(()));
    }

    #[test]
    fn list_pages_through_a_prefix() {
        for i in 0..25u8 {
            set(format!("p/{i:03}").as_bytes(), b"").unwrap();
        }
        set(b"p", b"").unwrap();
        set(b"q/000", b"").unwrap();
        set(b"o/999", b"").unwrap();
        let first = list(b"p/", None, 10).unwrap();
        assert_eq!(first.keys.len(), 10);
        assert_eq!(first.keys[0], b"p/000");
        assert_eq!(first.next.as_deref(), Some(&b"p/009"[..]));
        let second = list(b"p/", first.next.as_deref(), 10).unwrap();
        assert_eq!(second.keys[0], b"p/010");
        let third = list(b"p/", second.next.as_deref(), 10).unwrap();
        assert_eq!(third.keys.len(), 5);
        assert_eq!(third.next, None);
        let all = list_all(b"p/").unwrap();
        assert_eq!(all.len(), 25);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(list_all(b"").unwrap().len(), 28);
        assert_eq!(list(b"none/", None, 0).unwrap(), Page::default());
    }

    #[test]
    fn increment_counts_and_checks() {
        assert_eq!(increment(b"n", 1), Ok(1));
        assert_eq!(increment(b"n", 41), Ok(42));
        assert_eq!(increment(b"n", -50), Ok(-8));
        assert_eq!(get(b"n"), Ok(Some(b"-8".to_vec())));
        set(b"text", b"abc").unwrap();
        assert_eq!(increment(b"text", 1), Err(KvError::NotAnInteger));
        set(b"max", i64::MAX.to_string().as_bytes()).unwrap();
        assert_eq!(increment(b"max", 1), Err(KvError::Overflow));
        assert_eq!(get(b"max"), Ok(Some(i64::MAX.to_string().into_bytes())));
    }

    #[test]
    fn compare_and_swap() {
        assert_eq!(cas(b"c", None, Some(b"1")), Ok(true));
        assert_eq!(cas(b"c", None, Some(b"2")), Ok(false));
        assert_eq!(cas(b"c", Some(b"2"), Some(b"3")), Ok(false));
        assert_eq!(cas(b"c", Some(b"1"), Some(b"3")), Ok(true));
        assert_eq!(get(b"c"), Ok(Some(b"3".to_vec())));
        assert_eq!(cas(b"c", Some(b"3"), None), Ok(true));
        assert_eq!(get(b"c"), Ok(None));
        assert_eq!(cas(b"c", Some(b"3"), None), Ok(false));
    }

    #[test]
    fn errors_map_to_codes_and_back() {
        for code in 1..=13 {
            let err = KvError::from_status(code);
            assert_eq!(err.code(), code);
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(KvError::from_status(8), KvError::Unexpected(8));
    }
}
