//! Native stand-ins for the host's storage and session services, so that guest logic can be unit-tested with plain `cargo test`.
//!
//! Compiled only when the target is not wasm32. [`crate::kv`] and
//! [`crate::session`] call these instead of the `wasmhost` imports; they
//! follow the semantics, limits and status codes of `docs/abi.md` (section 6
//! and "Storage") for a single app:
//!
//! - storage is an in-memory `BTreeMap` **per thread** (`cargo test` runs each
//!   test on its own thread, so every test starts with empty storage);
//! - a session is a thread-local record of the signed-in user that tests can
//!   read with [`session`] (the host's cookie is not simulated: tests put the
//!   user on the [`Request`](crate::Request) with
//!   [`Request::with_user`](crate::Request::with_user)).
//!
//! [`reset`] clears both.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use wasmhost_abi::limits::{
    MAX_GET_MANY_BYTES, MAX_GET_MANY_KEYS, MAX_KEY_LEN, MAX_KEYS_PER_APP, MAX_LIST_PAGE,
    MAX_USER_FIELD_LEN, MAX_VALUE_LEN,
};
use wasmhost_abi::{decode_key_list, encode_key_page, encode_value_list, status};

use crate::request::User;

/// What the fake session service has seen on this thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The user of the last `session_start`, cleared by `session_end`.
    pub current: Option<User>,
    /// How many times `session_start` succeeded.
    pub started: u32,
    /// How many times `session_end` was called.
    pub ended: u32,
}

thread_local! {
    static STORE: RefCell<BTreeMap<Vec<u8>, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    static SESSION: RefCell<SessionState> = RefCell::new(SessionState::default());
}

/// Empties this thread's fake storage and forgets its session.
pub fn reset() {
    STORE.with(|s| s.borrow_mut().clear());
    SESSION.with(|s| *s.borrow_mut() = SessionState::default());
}

/// This thread's session record.
pub fn session() -> SessionState {
    SESSION.with(|s| s.borrow().clone())
}

/// A copy of this thread's whole fake storage, for assertions.
pub fn dump() -> BTreeMap<Vec<u8>, Vec<u8>> {
    STORE.with(|s| s.borrow().clone())
}

/// Runs `f` on the store.
fn with_store<R>(f: impl FnOnce(&mut BTreeMap<Vec<u8>, Vec<u8>>) -> R) -> R {
    STORE.with(|s| f(&mut s.borrow_mut()))
}

/// Stores `value` under `key` in `store`, enforcing the limits.
fn put(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, key: &[u8], value: &[u8]) -> i32 {
    if value.len() > MAX_VALUE_LEN {
        return status::VALUE_TOO_LARGE;
    }
    if !store.contains_key(key) && store.len() as u64 >= MAX_KEYS_PER_APP {
        return status::TOO_MANY_KEYS;
    }
    store.insert(key.to_vec(), value.to_vec());
    status::OK
}

pub(crate) fn get(key: &[u8]) -> (i32, Option<Vec<u8>>) {
    if key.len() > MAX_KEY_LEN {
        return (status::KEY_TOO_LARGE, None);
    }
    match with_store(|s| s.get(key).cloned()) {
        Some(value) => (status::OK, Some(value)),
        None => (status::ABSENT, None),
    }
}

pub(crate) fn set(key: &[u8], value: &[u8]) -> i32 {
    if key.len() > MAX_KEY_LEN {
        return status::KEY_TOO_LARGE;
    }
    with_store(|s| put(s, key, value))
}

pub(crate) fn delete(key: &[u8]) -> i32 {
    if key.len() > MAX_KEY_LEN {
        return status::KEY_TOO_LARGE;
    }
    match with_store(|s| s.remove(key)) {
        Some(_) => status::OK,
        None => status::ABSENT,
    }
}

pub(crate) fn list(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> (i32, Option<Vec<u8>>) {
    if prefix.len() > MAX_KEY_LEN || after.is_some_and(|a| a.len() > MAX_KEY_LEN) {
        return (status::KEY_TOO_LARGE, None);
    }
    let limit = match usize::try_from(limit) {
        Ok(n) if (1..=MAX_LIST_PAGE).contains(&n) => n,
        _ => MAX_LIST_PAGE,
    };
    let lower = match after {
        Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
        _ => Bound::Included(prefix.to_vec()),
    };
    let (keys, more) = with_store(|s| {
        let mut iter = s
            .range((lower, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix));
        let keys: Vec<Vec<u8>> = iter.by_ref().take(limit).cloned().collect();
        (keys, iter.next().is_some())
    });
    // The ABI's page encoding (section 6.2), so that the SDK's decoder runs
    // natively too.
    let next = keys.last().filter(|_| more).map(Vec::as_slice);
    let out = encode_key_page(&keys, next);
    (status::OK, Some(out))
}

/// As the host's `kv_get_many`: the encoded key list in, the encoded value
/// list out, with the same key count and byte limits.
pub(crate) fn get_many(keys: &[u8]) -> (i32, Option<Vec<u8>>) {
    let Some(keys) = decode_key_list(keys) else {
        return (status::BAD_ARGUMENT, None);
    };
    if keys.len() > MAX_GET_MANY_KEYS {
        return (status::BAD_ARGUMENT, None);
    }
    if keys.iter().any(|k| k.len() > MAX_KEY_LEN) {
        return (status::KEY_TOO_LARGE, None);
    }
    let values = with_store(|s| {
        let mut values: Vec<Option<Vec<u8>>> = Vec::new();
        let mut total = 0usize;
        for key in &keys {
            let value = s.get(key).cloned();
            let len = value.as_ref().map_or(0, Vec::len);
            if !values.is_empty() && total + len > MAX_GET_MANY_BYTES {
                break;
            }
            total += len;
            values.push(value);
        }
        values
    });
    (status::OK, Some(encode_value_list(&values)))
}

pub(crate) fn increment(key: &[u8], delta: i64) -> (i32, i64) {
    if key.len() > MAX_KEY_LEN {
        return (status::KEY_TOO_LARGE, 0);
    }
    with_store(|s| {
        let current = match s.get(key) {
            None => 0,
            Some(value) => match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) => n,
                None => return (status::NOT_AN_INTEGER, 0),
            },
        };
        let Some(new) = i64::checked_add(current, delta) else {
            return (status::OVERFLOW, 0);
        };
        match put(s, key, new.to_string().as_bytes()) {
            status::OK => (status::OK, new),
            other => (other, 0),
        }
    })
}

pub(crate) fn cas(key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> i32 {
    if key.len() > MAX_KEY_LEN {
        return status::KEY_TOO_LARGE;
    }
    with_store(|s| {
        if s.get(key).map(Vec::as_slice) != expected {
            return status::MISMATCH;
        }
        match new {
            Some(value) => put(s, key, value),
            None => {
                s.remove(key);
                status::OK
            }
        }
    })
}

pub(crate) fn start_session(id: &str, name: &str) -> i32 {
    if id.len() > MAX_USER_FIELD_LEN || name.len() > MAX_USER_FIELD_LEN {
        return status::BAD_ARGUMENT;
    }
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.current = Some(User {
            id: id.to_owned(),
            name: name.to_owned(),
        });
        s.started += 1;
    });
    status::OK
}

pub(crate) fn end_session() -> i32 {
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.ended += 1;
        match s.current.take() {
            Some(_) => status::OK,
            None => status::ABSENT,
        }
    })
}
