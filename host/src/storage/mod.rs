//! Durable per-app key-value storage behind a swappable [`KvStore`] trait.
//!
//! Every operation takes a [`Namespace`] (the app's name) and a key; the
//! namespace is always carried separately from the key down to the backend
//! (in SQLite, its own column), so no key a guest supplies can name an entry
//! in another app's namespace. Keys and values are arbitrary bytes and are
//! ordered bytewise (like `memcmp`, shorter first on a tie).
//!
//! Three backends implement the same trait and pass the same conformance
//! tests: [`sqlite::SqliteStore`] (durable, embedded, the server's default),
//! [`redis_store::RedisStore`] (a Redis server that several hosts share) and
//! [`MemoryStore`] (a `BTreeMap`, for tests). The semantics are described in `docs/abi.md`,
//! section "Storage".

pub mod redis_store;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Mutex, PoisonError};

use wasmhost_abi::status;

/// The storage limits of the ABI (key and value length, keys per app, i.e.
/// per namespace, and keys per `list` page), defined in `wasmhost-abi`.
pub use wasmhost_abi::limits::{MAX_KEY_LEN, MAX_KEYS_PER_APP, MAX_LIST_PAGE, MAX_VALUE_LEN};

/// Longest namespace name: app names are short identifiers.
pub const MAX_NAMESPACE_LEN: usize = 63;

/// Why a storage operation failed. The set of variants is closed: each maps to
/// a stable code for the guest ABI through [`StorageError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The key (or list prefix/cursor) is longer than the key limit.
    #[error("key is {len} bytes, the limit is {max}")]
    KeyTooLarge { len: usize, max: usize },
    /// The value is longer than the value limit.
    #[error("value is {len} bytes, the limit is {max}")]
    ValueTooLarge { len: usize, max: usize },
    /// Storing a new key would exceed the namespace's key limit.
    #[error("namespace already holds the maximum of {max} keys")]
    TooManyKeys { max: u64 },
    /// `increment` found a value that is not a decimal `i64`.
    #[error("stored value is not a decimal 64-bit integer")]
    NotAnInteger,
    /// `increment` would leave the range of `i64`.
    #[error("increment overflows a 64-bit integer")]
    Overflow,
    /// The namespace name is not `[a-z0-9][a-z0-9_-]{0,62}`.
    #[error("invalid namespace name {0:?}")]
    InvalidNamespace(String),
    /// The backend failed (I/O, SQLite); the message is for the host's log.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

impl StorageError {
    /// The stable code the guest ABI reports for this error; `0` means success
    /// and is never returned here. The table is in `docs/abi.md`, "Storage".
    pub fn code(&self) -> u32 {
        let code = match self {
            StorageError::KeyTooLarge { .. } => status::KEY_TOO_LARGE,
            StorageError::ValueTooLarge { .. } => status::VALUE_TOO_LARGE,
            StorageError::TooManyKeys { .. } => status::TOO_MANY_KEYS,
            StorageError::NotAnInteger => status::NOT_AN_INTEGER,
            StorageError::Overflow => status::OVERFLOW,
            StorageError::InvalidNamespace(_) => status::INVALID_NAMESPACE,
            StorageError::Backend(_) => status::BACKEND,
        };
        // Storage errors are the statuses 1 to 7: positive.
        code as u32
    }
}

/// A validated namespace: one app's private key space.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Accepts `[a-z0-9][a-z0-9_-]{0,62}`, the form of an app name.
    pub fn new(name: &str) -> Result<Namespace, StorageError> {
        let bytes = name.as_bytes();
        let valid = match bytes.split_first() {
            Some((first, rest)) => {
                bytes.len() <= MAX_NAMESPACE_LEN
                    && (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && rest.iter().all(|&b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            }
            None => false,
        };
        if valid {
            Ok(Namespace(name.to_owned()))
        } else {
            // Keep the log line bounded whatever the caller passed.
            let shown: String = name.chars().take(80).collect();
            Err(StorageError::InvalidNamespace(shown))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({:?})", self.0)
    }
}

/// One page of `list` results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Matching keys in ascending byte order.
    pub keys: Vec<Vec<u8>>,
    /// `Some(last key of this page)` when more keys may match; pass it back as
    /// `after` to get the next page. `None` when the listing is complete.
    pub next: Option<Vec<u8>>,
}

/// The limits a store enforces. `Limits::default()` is the `MAX_*` constants;
/// other values exist so tests can reach a limit quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key_len: usize,
    pub max_value_len: usize,
    pub max_keys_per_namespace: u64,
    pub max_list_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: MAX_KEY_LEN,
            max_value_len: MAX_VALUE_LEN,
            max_keys_per_namespace: MAX_KEYS_PER_APP,
            max_list_page: MAX_LIST_PAGE,
        }
    }
}

impl Limits {
    /// Refuses a key (or list prefix/cursor) longer than the key limit.
    pub fn check_key(&self, key: &[u8]) -> Result<(), StorageError> {
        if key.len() > self.max_key_len {
            return Err(StorageError::KeyTooLarge {
                len: key.len(),
                max: self.max_key_len,
            });
        }
        Ok(())
    }

    /// Refuses a value longer than the value limit.
    pub fn check_value(&self, value: &[u8]) -> Result<(), StorageError> {
        if value.len() > self.max_value_len {
            return Err(StorageError::ValueTooLarge {
                len: value.len(),
                max: self.max_value_len,
            });
        }
        Ok(())
    }

    /// Refuses adding a key to a namespace that already holds `count` keys.
    pub fn check_new_key(&self, count: u64) -> Result<(), StorageError> {
        if count >= self.max_keys_per_namespace {
            return Err(StorageError::TooManyKeys {
                max: self.max_keys_per_namespace,
            });
        }
        Ok(())
    }

    /// The page size `list` uses: `0` or anything above the page limit means
    /// the page limit.
    pub fn page_size(&self, requested: usize) -> usize {
        if requested == 0 || requested > self.max_list_page {
            self.max_list_page
        } else {
            requested
        }
    }
}

/// The key range of one `list` page, from its checked arguments: every
/// backend lists exactly this range, in byte order, and at most `limit` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRange<'a> {
    /// Where the page starts: the cursor (excluded) when it is at or past the
    /// prefix, else the prefix itself (included).
    pub start: &'a [u8],
    pub start_included: bool,
    /// The first key past every key with the prefix (excluded); `None` when
    /// the prefix has no end (empty or all `0xff`).
    pub end: Option<Vec<u8>>,
    /// The page size (see [`Limits::page_size`]).
    pub limit: usize,
}

impl Limits {
    /// Checks `list`'s arguments against the key limit and turns them into
    /// the range its page covers.
    pub fn list_range<'a>(
        &self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> Result<ListRange<'a>, StorageError> {
        self.check_key(prefix)?;
        if let Some(after) = after {
            self.check_key(after)?;
        }
        let (start, start_included) = match after {
            Some(after) if after >= prefix => (after, false),
            _ => (prefix, true),
        };
        Ok(ListRange {
            start,
            start_included,
            end: prefix_end(prefix),
            limit: self.page_size(limit),
        })
    }
}

impl Page {
    /// The page from up to `limit + 1` keys read in order: the extra key, if
    /// read, only says that more follow.
    pub fn from_overfetch(mut keys: Vec<Vec<u8>>, limit: usize) -> Page {
        let next = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Page { keys, next }
    }
}

/// Per-app key-value storage. Implementations are shared by the host's worker
/// threads; every method is atomic on its own.
pub trait KvStore: Send + Sync {
    /// The value stored under `key`, if any.
    fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Stores `value` under `key`, replacing any previous value. Durable once
    /// it returns `Ok` (for durable backends).
    fn set(&self, ns: &Namespace, key: &[u8], value: &[u8]) -> Result<(), StorageError>;

    /// Removes `key`; returns whether it existed.
    fn delete(&self, ns: &Namespace, key: &[u8]) -> Result<bool, StorageError>;

    /// Keys starting with `prefix` and greater than `after` (if given), in
    /// ascending byte order, at most `limit` of them (see [`Limits::page_size`]).
    fn list(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, StorageError>;

    /// The values of `keys`, in their order, read at one point in time (one
    /// read transaction, or one lock): as many leading keys as have values
    /// within `max_bytes` in all, and always at least the first key. A key
    /// without a value reads as `None`.
    fn get_many(
        &self,
        ns: &Namespace,
        keys: &[Vec<u8>],
        max_bytes: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError>;

    /// Atomically adds `delta` to the decimal `i64` stored under `key` (a
    /// missing key counts as 0), stores the result as decimal ASCII and
    /// returns it.
    fn increment(&self, ns: &Namespace, key: &[u8], delta: i64) -> Result<i64, StorageError>;

    /// Atomically: if the current value equals `expected` (`None` = the key
    /// must not exist), replace it with `new` (`None` = delete) and return
    /// `true`; otherwise change nothing and return `false`.
    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StorageError>;

    /// Whether the backend answers now (for `/readyz`): an embedded store
    /// always does; a server-backed one checks its server.
    fn ready(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Collects values for `get_many` from `read`, one key at a time, until the
/// next value would take the total past `max_bytes` (the first is always
/// taken): the stopping rule both backends share.
pub fn take_within(
    keys: &[Vec<u8>],
    max_bytes: usize,
    mut read: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, StorageError>,
) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
    let mut values = Vec::with_capacity(keys.len());
    let mut total = 0usize;
    for key in keys {
        let value = read(key)?;
        let len = value.as_ref().map_or(0, Vec::len);
        if !values.is_empty() && total.saturating_add(len) > max_bytes {
            break;
        }
        total = total.saturating_add(len);
        values.push(value);
    }
    Ok(values)
}

/// Parses a counter as `increment` stores it: ASCII decimal with an optional
/// sign, no whitespace, within `i64`.
pub fn parse_counter(value: &[u8]) -> Result<i64, StorageError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(StorageError::NotAnInteger)
}

/// `current + delta` for `increment`, from the stored value (if any).
pub fn next_counter(current: Option<&[u8]>, delta: i64) -> Result<i64, StorageError> {
    let base = match current {
        Some(value) => parse_counter(value)?,
        None => 0,
    };
    base.checked_add(delta).ok_or(StorageError::Overflow)
}

/// The smallest byte string greater than every string starting with `prefix`,
/// or `None` when there is none (`prefix` empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The in-memory backend: one `BTreeMap` per namespace behind one mutex.
/// Not durable; used by tests and as a second implementation of the trait.
#[derive(Debug, Default)]
pub struct MemoryStore {
    limits: Limits,
    data: Mutex<BTreeMap<Namespace, BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store with the default limits.
    pub fn new() -> MemoryStore {
        MemoryStore::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> MemoryStore {
        MemoryStore {
            limits,
            data: Mutex::new(BTreeMap::new()),
        }
    }

    fn with_ns<T>(
        &self,
        ns: &Namespace,
        f: impl FnOnce(&mut BTreeMap<Vec<u8>, Vec<u8>>) -> T,
    ) -> T {
        // A panic elsewhere cannot leave a map half-updated (each method
        // changes it with one call), so a poisoned lock is still usable.
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        let map = data.entry(ns.clone()).or_default();
        let result = f(map);
        if map.is_empty() {
            data.remove(ns);
        }
        result
    }

    fn put(
        &self,
        map: &mut BTreeMap<Vec<u8>, Vec<u8>>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StorageError> {
        if let Some(slot) = map.get_mut(key) {
            *slot = value.to_vec();
        } else {
            self.limits.check_new_key(map.len() as u64)?;
            map.insert(key.to_vec(), value.to_vec());
        }
        Ok(())
    }
}

impl KvStore for MemoryStore {
    fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.limits.check_key(key)?;
        Ok(self.with_ns(ns, |map| map.get(key).cloned()))
    }

    fn set(&self, ns: &Namespace, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.limits.check_key(key)?;
        self.limits.check_value(value)?;
        self.with_ns(ns, |map| self.put(map, key, value))
    }

    fn delete(&self, ns: &Namespace, key: &[u8]) -> Result<bool, StorageError> {
        self.limits.check_key(key)?;
        Ok(self.with_ns(ns, |map| map.remove(key).is_some()))
    }

    fn get_many(
        &self,
        ns: &Namespace,
        keys: &[Vec<u8>],
        max_bytes: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        for key in keys {
            self.limits.check_key(key)?;
        }
        self.with_ns(ns, |map| {
            take_within(keys, max_bytes, |key| Ok(map.get(key).cloned()))
        })
    }

    fn list(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, StorageError> {
        let range = self.limits.list_range(prefix, after, limit)?;
        let lower = if range.start_included {
            Bound::Included(range.start.to_vec())
        } else {
            Bound::Excluded(range.start.to_vec())
        };
        let upper = range.end.map_or(Bound::Unbounded, Bound::Excluded);
        if let (Bound::Excluded(lo), Bound::Excluded(hi)) = (&lower, &upper)
            && lo >= hi
        {
            // BTreeMap::range panics on an empty excluded range.
            return Ok(Page::default());
        }
        Ok(self.with_ns(ns, |map| {
            let keys = map
                .range((lower, upper))
                .take(range.limit + 1)
                .map(|(key, _)| key.clone())
                .collect();
            Page::from_overfetch(keys, range.limit)
        }))
    }

    fn increment(&self, ns: &Namespace, key: &[u8], delta: i64) -> Result<i64, StorageError> {
        self.limits.check_key(key)?;
        self.with_ns(ns, |map| {
            let value = next_counter(map.get(key).map(Vec::as_slice), delta)?;
            self.put(map, key, value.to_string().as_bytes())?;
            Ok(value)
        })
    }

    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StorageError> {
        self.limits.check_key(key)?;
        if let Some(new) = new {
            self.limits.check_value(new)?;
        }
        self.with_ns(ns, |map| {
            if map.get(key).map(Vec::as_slice) != expected {
                return Ok(false);
            }
            match new {
                Some(new) => self.put(map, key, new)?,
                None => {
                    map.remove(key);
                }
            }
            Ok(true)
        })
    }
}

/// Behaviour every backend must show. Each function takes a factory that
/// makes a fresh, empty store with the given limits; backends instantiate all
/// of them with [`conformance_tests!`].
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    /// A fresh store plus whatever keeps it alive (e.g. a temporary directory).
    pub(crate) struct Fixture {
        pub store: Box<dyn KvStore>,
        pub _guard: Option<Box<dyn std::any::Any>>,
    }

    pub(crate) type Factory = fn(Limits) -> Fixture;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).expect("test namespace is valid")
    }

    fn all_bytes() -> Vec<u8> {
        (0..=255u8).collect()
    }

    pub(crate) fn round_trip(make: Factory) {
        let fx = make(Limits::default());
        let s = &*fx.store;
        let a = ns("app");
        let long_key = vec![0xab; MAX_KEY_LEN];
        let long_value = vec![0x5a; MAX_VALUE_LEN];
        let all = all_bytes();
        let reversed: Vec<u8> = (0..=255u8).rev().collect();
        // (key, value): binary keys and values, including every byte value.
        let table: Vec<(&[u8], &[u8])> = vec![
            (b"plain", b"value"),
            (b"", b"empty key"),
            (b"empty value", b""),
            (&[0], &[0]),
            (&[0, 0], &[0, 0, 0]),
            (&[0xff], &[0xff, 0x00]),
            (b"all bytes", &all[..]),
        ];
        let table: Vec<(Vec<u8>, Vec<u8>)> = table
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .chain([
                (all.clone(), reversed.clone()),
                (reversed.clone(), all.clone()),
                (long_key.clone(), long_value.clone()),
            ])
            .collect();
        for (key, value) in &table {
            assert_eq!(s.get(&a, key).unwrap(), None, "fresh key {key:?}");
            s.set(&a, key, value).unwrap();
        }
        for (key, value) in &table {
            assert_eq!(s.get(&a, key).unwrap().as_ref(), Some(value), "key {key:?}");
        }
        // Overwrite, then delete each; delete reports whether it existed.
        for (key, _) in &table {
            s.set(&a, key, b"second").unwrap();
            assert_eq!(s.get(&a, key).unwrap().as_deref(), Some(&b"second"[..]));
            assert!(s.delete(&a, key).unwrap(), "delete existing {key:?}");
            assert!(!s.delete(&a, key).unwrap(), "delete missing {key:?}");
            assert_eq!(s.get(&a, key).unwrap(), None);
        }
        assert_eq!(s.list(&a, b"", None, 0).unwrap(), Page::default());
    }

    pub(crate) fn get_many(make: Factory) {
        let fx = make(Limits::default());
        let s = &*fx.store;
        let (a, b) = (ns("app"), ns("other"));
        s.set(&a, b"k1", b"one").unwrap();
        s.set(&a, b"", b"empty key").unwrap();
        s.set(&a, b"k3", b"").unwrap();
        s.set(&b, b"k2", b"b's").unwrap();
        let keys: Vec<Vec<u8>> = [&b"k1"[..], b"k2", b"", b"k3", b"k1"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        // In order, absent keys as None, repeats answered again, the other
        // namespace never seen.
        let want = vec![
            Some(b"one".to_vec()),
            None,
            Some(b"empty key".to_vec()),
            Some(Vec::new()),
            Some(b"one".to_vec()),
        ];
        assert_eq!(s.get_many(&a, &keys, MAX_VALUE_LEN).unwrap(), want);
        assert_eq!(
            s.get_many(&a, &[], MAX_VALUE_LEN).unwrap(),
            Vec::<Option<Vec<u8>>>::new()
        );
        assert_eq!(
            s.get_many(&b, &keys[..2], 3).unwrap(),
            vec![None, Some(b"b's".to_vec())]
        );
        // The byte budget stops before the value that would take the total
        // past it, but the first value always comes.
        assert_eq!(s.get_many(&a, &keys, 3).unwrap(), want[..2]);
        assert_eq!(s.get_many(&a, &keys[2..], 1).unwrap(), want[2..3]);
        assert_eq!(s.get_many(&a, &keys, 0).unwrap(), want[..1]);
        // Every key is checked: one too long refuses the call.
        let long = vec![vec![0u8; MAX_KEY_LEN + 1]];
        assert!(matches!(
            s.get_many(&a, &long, MAX_VALUE_LEN),
            Err(StorageError::KeyTooLarge { .. })
        ));
    }

    pub(crate) fn namespace_isolation(make: Factory) {
        let fx = make(Limits::default());
        let s = &*fx.store;
        let (a, b) = (ns("a"), ns("b"));
        // Keys that look like attempts to reach another namespace.
        let keys: &[&[u8]] = &[
            b"k",
            b"",
            b"\xff",
            b"b",
            b"b/k",
            b"../b/k",
            b"b\0k",
            b"\xff\xff",
        ];
        for key in keys {
            s.set(&a, key, b"from a").unwrap();
        }
        s.set(&b, b"only-b", b"from b").unwrap();
        s.set(&b, b"k", b"b's k").unwrap();
        for key in keys {
            assert_eq!(
                s.get(&a, key).unwrap().as_deref(),
                Some(&b"from a"[..]),
                "{key:?}"
            );
        }
        assert_eq!(s.get(&b, b"k").unwrap().as_deref(), Some(&b"b's k"[..]));
        assert_eq!(s.get(&b, b"").unwrap(), None);
        assert_eq!(s.get(&a, b"only-b").unwrap(), None);
        // (namespace, prefix, expected keys)
        let lists: Vec<(&Namespace, &[u8], Vec<&[u8]>)> = vec![
            (&b, b"", vec![b"k", b"only-b"]),
            (&b, b"\xff", vec![]),
            (&b, b"o", vec![b"only-b"]),
            (&a, b"o", vec![]),
            (&a, b"\xff", vec![b"\xff", b"\xff\xff"]),
            (&a, b"b", vec![b"b", b"b/k", b"b\0k"]),
        ];
        for (space, prefix, want) in lists {
            let page = s.list(space, prefix, None, 0).unwrap();
            let want: Vec<Vec<u8>> = want.into_iter().map(<[u8]>::to_vec).collect();
            let mut sorted = want.clone();
            sorted.sort();
            assert_eq!(page.keys, sorted, "list {space} {prefix:?}");
            assert_eq!(page.next, None);
        }
        assert_eq!(s.list(&a, b"", None, 0).unwrap().keys.len(), keys.len());
        // Deleting in one namespace leaves the other alone.
        assert!(s.delete(&b, b"k").unwrap());
        assert_eq!(s.get(&a, b"k").unwrap().as_deref(), Some(&b"from a"[..]));
        assert_eq!(s.increment(&b, b"n", 5).unwrap(), 5);
        assert_eq!(s.increment(&a, b"n", 1).unwrap(), 1);
        assert!(
            !s.compare_and_swap(&b, b"\xff", Some(b"from a"), None)
                .unwrap()
        );
        assert_eq!(s.get(&a, b"\xff").unwrap().as_deref(), Some(&b"from a"[..]));
    }

    pub(crate) fn list_pagination(make: Factory) {
        let fx = make(Limits {
            max_list_page: 4,
            ..Limits::default()
        });
        let s = &*fx.store;
        let a = ns("app");
        let keys: &[&[u8]] = &[
            b"a",
            b"a\0",
            b"a\xff",
            b"ab",
            b"abc",
            b"abd",
            b"ac",
            b"b",
            b"\xff",
            b"\xff\xff",
            b"",
        ];
        for key in keys.iter().rev() {
            s.set(&a, key, b"v").unwrap();
        }
        s.set(&ns("other"), b"ab", b"v").unwrap();
        type Row<'a> = (
            &'a [u8],
            Option<&'a [u8]>,
            usize,
            Vec<&'a [u8]>,
            Option<&'a [u8]>,
        );
        // (prefix, after, limit, expected keys, expected next)
        let table: Vec<Row> = vec![
            (
                b"a",
                None,
                10,
                vec![b"a", b"a\0", b"ab", b"abc"],
                Some(b"abc"),
            ),
            (b"a", Some(b"abc"), 4, vec![b"abd", b"ac", b"a\xff"], None),
            (b"a", None, 2, vec![b"a", b"a\0"], Some(b"a\0")),
            (b"a", Some(b"a\0"), 2, vec![b"ab", b"abc"], Some(b"abc")),
            (
                b"a",
                Some(b"ab"),
                3,
                vec![b"abc", b"abd", b"ac"],
                Some(b"ac"),
            ),
            (b"ab", None, 0, vec![b"ab", b"abc", b"abd"], None),
            (b"ab", Some(b"abc"), 1, vec![b"abd"], None),
            (b"a", Some(b""), 1, vec![b"a"], Some(b"a")),
            (b"a", Some(b"zzz"), 1, vec![], None),
            (b"a", Some(b"ac"), 5, vec![b"a\xff"], None),
            (b"b", Some(b"a"), 3, vec![b"b"], None),
            (b"", None, 3, vec![b"", b"a", b"a\0"], Some(b"a\0")),
            (
                b"",
                Some(b"ac"),
                3,
                vec![b"a\xff", b"b", b"\xff"],
                Some(b"\xff"),
            ),
            (b"\xff", None, 3, vec![b"\xff", b"\xff\xff"], None),
            (b"\xff", Some(b"\xff"), 3, vec![b"\xff\xff"], None),
            (b"\xff\xff\xff", None, 3, vec![], None),
            (b"c", None, 3, vec![], None),
            (b"abc", None, 1, vec![b"abc"], None),
        ];
        for (prefix, after, limit, want, next) in table {
            let page = s.list(&a, prefix, after, limit).unwrap();
            let want: Vec<Vec<u8>> = want.into_iter().map(<[u8]>::to_vec).collect();
            assert_eq!(
                page.keys, want,
                "list {prefix:?} after {after:?} limit {limit}"
            );
            assert_eq!(
                page.next.as_deref(),
                next,
                "next of {prefix:?} after {after:?}"
            );
        }
        // Following the cursor visits every key once, in order.
        let mut seen = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = s.list(&a, b"", after.as_deref(), 3).unwrap();
            seen.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut all: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        all.sort();
        assert_eq!(seen, all);
        // Oversized prefix or cursor is refused like an oversized key.
        let big = vec![0u8; MAX_KEY_LEN + 1];
        assert!(matches!(
            s.list(&a, &big, None, 1),
            Err(StorageError::KeyTooLarge { .. })
        ));
        assert!(matches!(
            s.list(&a, b"", Some(&big), 1),
            Err(StorageError::KeyTooLarge { .. })
        ));
    }

    pub(crate) fn increment(make: Factory) {
        let fx = make(Limits::default());
        let s = &*fx.store;
        let a = ns("app");
        s.set(&a, b"seven", b"7").unwrap();
        s.set(&a, b"neg", b"-5").unwrap();
        s.set(&a, b"max", i64::MAX.to_string().as_bytes()).unwrap();
        s.set(&a, b"min", i64::MIN.to_string().as_bytes()).unwrap();
        let bad: &[&[u8]] = &[
            b"",
            b"abc",
            b" 1",
            b"1 ",
            b"1.5",
            b"0x10",
            b"\xff",
            b"99999999999999999999",
        ];
        for (i, value) in bad.iter().enumerate() {
            s.set(&a, format!("bad{i}").as_bytes(), value).unwrap();
        }
        // (key, delta, expected result, stored value afterwards)
        type Row<'a> = (&'a [u8], i64, Result<i64, StorageError>, Option<&'a [u8]>);
        let mut table: Vec<Row> = vec![
            (b"missing", 1, Ok(1), Some(b"1")),
            (b"missing", 41, Ok(42), Some(b"42")),
            (b"zero", 0, Ok(0), Some(b"0")),
            (b"seven", -10, Ok(-3), Some(b"-3")),
            (b"neg", -5, Ok(-10), Some(b"-10")),
            (b"neg", 10, Ok(0), Some(b"0")),
            (
                b"max",
                1,
                Err(StorageError::Overflow),
                Some(b"9223372036854775807"),
            ),
            (b"max", -1, Ok(i64::MAX - 1), Some(b"9223372036854775806")),
            (
                b"min",
                -1,
                Err(StorageError::Overflow),
                Some(b"-9223372036854775808"),
            ),
            (
                b"fresh-min",
                i64::MIN,
                Ok(i64::MIN),
                Some(b"-9223372036854775808"),
            ),
        ];
        let bad_keys: Vec<Vec<u8>> = (0..bad.len())
            .map(|i| format!("bad{i}").into_bytes())
            .collect();
        for (key, value) in bad_keys.iter().zip(bad) {
            table.push((key, 1, Err(StorageError::NotAnInteger), Some(value)));
        }
        for (key, delta, want, stored) in table {
            assert_eq!(
                s.increment(&a, key, delta),
                want,
                "increment {key:?} by {delta}"
            );
            assert_eq!(s.get(&a, key).unwrap().as_deref(), stored, "after {key:?}");
        }
    }

    pub(crate) fn compare_and_swap(make: Factory) {
        let fx = make(Limits::default());
        let s = &*fx.store;
        let a = ns("app");
        type Row<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, bool, Option<&'a [u8]>);
        // Applied in order to one key: (expected, new, swapped?, value afterwards)
        let table: Vec<Row> = vec![
            (Some(b"x"), Some(b"y"), false, None), // expects a value; none there
            (None, None, true, None),              // absent -> stays absent
            (None, Some(b"one"), true, Some(b"one")), // create if absent
            (None, Some(b"two"), false, Some(b"one")), // must-not-exist fails
            (Some(b"on"), Some(b"two"), false, Some(b"one")), // prefix is a mismatch
            (Some(b"one\0"), Some(b"two"), false, Some(b"one")),
            (Some(b"one"), Some(b"two"), true, Some(b"two")),
            (Some(b"two"), Some(b""), true, Some(b"")), // empty value is a value
            (None, Some(b"x"), false, Some(b"")),
            (Some(b""), None, true, None), // delete on match
            (Some(b""), None, false, None),
        ];
        for (i, (expected, new, swapped, after)) in table.into_iter().enumerate() {
            assert_eq!(
                s.compare_and_swap(&a, b"k", expected, new).unwrap(),
                swapped,
                "row {i}: {expected:?} -> {new:?}"
            );
            assert_eq!(s.get(&a, b"k").unwrap().as_deref(), after, "row {i}");
        }
        let big = vec![0u8; MAX_VALUE_LEN + 1];
        assert!(matches!(
            s.compare_and_swap(&a, b"k", None, Some(&big)),
            Err(StorageError::ValueTooLarge { .. })
        ));
        assert_eq!(s.get(&a, b"k").unwrap(), None);
    }

    pub(crate) fn limits(make: Factory) {
        let max_keys = 5u64;
        let fx = make(Limits {
            max_keys_per_namespace: max_keys,
            ..Limits::default()
        });
        let s = &*fx.store;
        let (a, b) = (ns("app"), ns("other"));
        let big_key = vec![1u8; MAX_KEY_LEN + 1];
        let big_value = vec![1u8; MAX_VALUE_LEN + 1];
        let key_err = Err(StorageError::KeyTooLarge {
            len: MAX_KEY_LEN + 1,
            max: MAX_KEY_LEN,
        });
        let value_err = Err(StorageError::ValueTooLarge {
            len: MAX_VALUE_LEN + 1,
            max: MAX_VALUE_LEN,
        });
        // (operation, result is the expected error)
        let table: Vec<(&str, Result<(), StorageError>, Result<(), StorageError>)> = vec![
            ("set big key", s.set(&a, &big_key, b"v"), key_err.clone()),
            (
                "set big value",
                s.set(&a, b"k", &big_value),
                value_err.clone(),
            ),
            (
                "get big key",
                s.get(&a, &big_key).map(drop),
                key_err.clone(),
            ),
            (
                "delete big key",
                s.delete(&a, &big_key).map(drop),
                key_err.clone(),
            ),
            (
                "increment big key",
                s.increment(&a, &big_key, 1).map(drop),
                key_err.clone(),
            ),
            (
                "cas big key",
                s.compare_and_swap(&a, &big_key, None, Some(b"v")).map(drop),
                key_err,
            ),
            (
                "cas big value",
                s.compare_and_swap(&a, b"k", None, Some(&big_value))
                    .map(drop),
                value_err,
            ),
        ];
        for (what, got, want) in table {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(s.list(&a, b"", None, 0).unwrap(), Page::default());
        for i in 0..max_keys {
            s.set(&a, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        let full = Err(StorageError::TooManyKeys { max: max_keys });
        // At the limit: every way of adding a key fails, changing existing keys works.
        let table: Vec<(&str, Result<(), StorageError>, Result<(), StorageError>)> = vec![
            ("set new", s.set(&a, b"new", b"v"), full.clone()),
            (
                "increment new",
                s.increment(&a, b"new", 1).map(drop),
                full.clone(),
            ),
            (
                "cas new",
                s.compare_and_swap(&a, b"new", None, Some(b"v")).map(drop),
                full.clone(),
            ),
            ("overwrite", s.set(&a, b"k0", b"w"), Ok(())),
            (
                "cas existing",
                s.compare_and_swap(&a, b"k1", Some(b"v"), Some(b"w"))
                    .map(drop),
                Ok(()),
            ),
            ("other namespace", s.set(&b, b"new", b"v"), Ok(())),
            (
                "cas absent->absent",
                s.compare_and_swap(&a, b"new", None, None).map(drop),
                Ok(()),
            ),
        ];
        for (what, got, want) in table {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(s.get(&a, b"new").unwrap(), None);
        assert_eq!(
            s.list(&a, b"", None, 0).unwrap().keys.len() as u64,
            max_keys
        );
        // Deleting frees a slot, by delete and by compare_and_swap.
        assert!(s.delete(&a, b"k0").unwrap());
        s.set(&a, b"new", b"v").unwrap();
        assert_eq!(s.set(&a, b"new2", b"v"), full);
        assert!(s.compare_and_swap(&a, b"k1", Some(b"w"), None).unwrap());
        assert_eq!(s.increment(&a, b"new2", 3), Ok(3));
        assert_eq!(s.set(&a, b"new3", b"v"), full);
    }

    pub(crate) fn invalid_namespaces(_make: Factory) {
        let long = "a".repeat(64);
        let ok_long = "a".repeat(63);
        let table: &[(&str, bool)] = &[
            ("app", true),
            ("a", true),
            ("0", true),
            ("my-app_2", true),
            (&ok_long, true),
            (&long, false),
            ("", false),
            ("-app", false),
            ("_app", false),
            ("App", false),
            ("app.name", false),
            ("app/other", false),
            ("app name", false),
            ("app\0", false),
            ("ápp", false),
            ("..", false),
        ];
        for (name, valid) in table {
            let got = Namespace::new(name);
            assert_eq!(got.is_ok(), *valid, "{name:?}");
            if let Ok(space) = got {
                assert_eq!(space.as_str(), *name);
            } else {
                assert_eq!(got.map(drop).map_err(|e| e.code()), Err(6));
            }
        }
    }

    pub(crate) fn concurrent_increments(make: Factory) {
        let fx = make(Limits::default());
        let s = &*fx.store;
        let a = ns("app");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        s.increment(&a, b"counter", 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(
            s.get(&a, b"counter").unwrap().as_deref(),
            Some(&b"1600"[..])
        );
        // Racing CAS-based updates lose nothing either.
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        loop {
                            let current = s.get(&a, b"cas").unwrap();
                            let n = current.as_deref().map_or(Ok(0), parse_counter).unwrap();
                            let new = (n + 1).to_string();
                            if s.compare_and_swap(
                                &a,
                                b"cas",
                                current.as_deref(),
                                Some(new.as_bytes()),
                            )
                            .unwrap()
                            {
                                break;
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(s.get(&a, b"cas").unwrap().as_deref(), Some(&b"200"[..]));
    }

    #[test]
    fn error_codes_are_stable_and_distinct() {
        let table = [
            (StorageError::KeyTooLarge { len: 2, max: 1 }, 1),
            (StorageError::ValueTooLarge { len: 2, max: 1 }, 2),
            (StorageError::TooManyKeys { max: 1 }, 3),
            (StorageError::NotAnInteger, 4),
            (StorageError::Overflow, 5),
            (StorageError::InvalidNamespace("X".into()), 6),
            (StorageError::Backend("disk".into()), 7),
        ];
        for (error, code) in &table {
            assert_eq!(error.code(), *code, "{error}");
        }
    }

    #[test]
    fn prefix_end_table() {
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"", None),
            (b"\xff", None),
            (b"\xff\xff", None),
            (b"a", Some(b"b")),
            (b"a\xff", Some(b"b")),
            (b"a\xfe", Some(b"a\xff")),
            (b"\0", Some(b"\x01")),
        ];
        for (prefix, end) in table {
            assert_eq!(prefix_end(prefix).as_deref(), *end, "{prefix:?}");
        }
    }
}

/// Instantiates every [`conformance`] test for one backend, given an
/// expression of type `conformance::Factory`.
#[cfg(test)]
macro_rules! conformance_tests {
    ($factory:expr) => {
        #[test]
        fn round_trip() {
            $crate::storage::conformance::round_trip($factory);
        }
        #[test]
        fn namespace_isolation() {
            $crate::storage::conformance::namespace_isolation($factory);
        }
        #[test]
        fn list_pagination() {
            $crate::storage::conformance::list_pagination($factory);
        }
        #[test]
        fn increment() {
            $crate::storage::conformance::increment($factory);
        }
        #[test]
        fn get_many() {
            $crate::storage::conformance::get_many($factory);
        }
        #[test]
        fn compare_and_swap() {
            $crate::storage::conformance::compare_and_swap($factory);
        }
        #[test]
        fn limits() {
            $crate::storage::conformance::limits($factory);
        }
        #[test]
        fn invalid_namespaces() {
            $crate::storage::conformance::invalid_namespaces($factory);
        }
        #[test]
        fn concurrent_increments() {
            $crate::storage::conformance::concurrent_increments($factory);
        }
    };
}
#[cfg(test)]
pub(crate) use conformance_tests;

#[cfg(test)]
mod memory_tests {
    use super::conformance::Fixture;
    use super::*;

    fn make(limits: Limits) -> Fixture {
        Fixture {
            store: Box::new(MemoryStore::with_limits(limits)),
            _guard: None,
        }
    }

    conformance_tests!(make);
}
