//! Host-owned sessions: unguessable cookie tokens mapped to a signed-in user, kept in the storage backend.
//!
//! Guests never see a token: the host strips its cookie from the request,
//! tells the guest who is signed in, and creates or ends sessions only for
//! apps granted the `sessions` service.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{KvStore, Namespace, StorageError};

/// The cookie that carries the session token.
pub const COOKIE_NAME: &str = "wasmhost_session";

/// How long a session lasts: two weeks, the usual "remember me" span; after
/// it the user signs in again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// Longest user id or display name a guest may set, in bytes (the ABI's
/// limit, from `wasmhost-abi`).
pub use wasmhost_abi::limits::MAX_USER_FIELD_LEN as MAX_USER_FIELD;

/// Random bytes in a token: 256 bits cannot be guessed.
const TOKEN_BYTES: usize = 32;

/// The host's own storage namespace for sessions (in the host's store, apart from the apps').
const NAMESPACE: &str = "sessions";

/// A signed-in user, as apps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
}

impl User {
    /// Checks what a guest passed to `session_start`.
    pub fn new(id: &str, name: &str) -> Option<User> {
        let ok = |s: &str| {
            !s.is_empty() && s.len() <= MAX_USER_FIELD && !s.chars().any(char::is_control)
        };
        (ok(id) && ok(name)).then(|| User {
            id: id.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    user: User,
    /// Unix seconds after which the session is void.
    expires: u64,
}

/// What a guest asked the host to do with the session during a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAction {
    Start(User),
    End,
}

/// The session store.
pub struct Sessions {
    store: Arc<dyn KvStore>,
    ns: Namespace,
}

impl Sessions {
    pub fn new(store: Arc<dyn KvStore>) -> Sessions {
        Sessions {
            store,
            ns: Namespace::new(NAMESPACE).expect("a valid constant namespace"),
        }
    }

    /// The user of a valid, unexpired session token.
    pub fn lookup(&self, token: &str) -> Option<User> {
        let key = key_of(token)?;
        let bytes = match self.store.get(&self.ns, &key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!("session lookup failed: {e}");
                return None;
            }
        };
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        if record.expires <= now_secs() {
            let _ = self.store.delete(&self.ns, &key);
            return None;
        }
        Some(record.user)
    }

    /// Creates a session for `user`; returns its token.
    pub fn start(&self, user: &User) -> Result<String, StorageError> {
        let mut raw = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut raw)
            .map_err(|e| StorageError::Backend(format!("no randomness: {e}")))?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let record = Record {
            user: user.clone(),
            expires: now_secs() + SESSION_LIFETIME.as_secs(),
        };
        let value =
            serde_json::to_vec(&record).map_err(|e| StorageError::Backend(e.to_string()))?;
        let key = key_of(&token).ok_or_else(|| StorageError::Backend("bad token".into()))?;
        self.store.set(&self.ns, &key, &value)?;
        Ok(token)
    }

    /// Ends a session; whether it existed.
    pub fn end(&self, token: &str) -> Result<bool, StorageError> {
        match key_of(token) {
            Some(key) => self.store.delete(&self.ns, &key),
            None => Ok(false),
        }
    }
}

/// The storage key of a token: its SHA-256, so the database never holds a
/// usable token. `None` for anything that is not a well-formed token.
fn key_of(token: &str) -> Option<Vec<u8>> {
    let well_formed =
        token.len() == TOKEN_BYTES * 2 && token.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| Sha256::digest(token.as_bytes()).to_vec())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Set-Cookie` value that stores a token in the browser.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// Whether a cookie name is the session cookie's, as the host reads it:
/// trimmed of whitespace, exactly [`COOKIE_NAME`] (names are case-sensitive).
pub fn is_cookie_name(name: &str) -> bool {
    name.trim() == COOKIE_NAME
}

/// Whether one `name=value` pair of a `Cookie` header is the session
/// cookie, as the host reads it: the name before the first `=` is
/// [`is_cookie_name`].
pub fn is_session_pair(pair: &str) -> bool {
    pair.split_once('=')
        .is_some_and(|(name, _)| is_cookie_name(name))
}

/// The session token in a request's `Cookie` headers, if any.
pub fn token_in(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .find_map(|pair| {
            let pair = pair.trim();
            let (_, value) = pair.split_once('=')?;
            is_session_pair(pair).then(|| value.trim())
        })
}

/// Removes the session cookie from `Cookie` headers (dropping a header left
/// empty), so that a guest never sees a token.
pub fn strip_cookie(headers: &mut Vec<(String, String)>) {
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("cookie") {
            let kept: Vec<&str> = value
                .split(';')
                .map(str::trim)
                .filter(|pair| !is_session_pair(pair))
                .filter(|pair| !pair.is_empty())
                .collect();
            *value = kept.join("; ");
        }
    }
    headers.retain(|(name, value)| !(name.eq_ignore_ascii_case("cookie") && value.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;

    fn sessions() -> Sessions {
        Sessions::new(Arc::new(MemoryStore::new()))
    }

    #[test]
    fn start_lookup_end() {
        let s = sessions();
        let alice = User::new("1", "alice").unwrap();
        let token = s.start(&alice).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(s.lookup(&token), Some(alice.clone()));
        let other = s.start(&alice).unwrap();
        assert_ne!(token, other, "tokens must be random");
        assert!(s.end(&token).unwrap());
        assert_eq!(s.lookup(&token), None);
        assert!(!s.end(&token).unwrap());
        assert_eq!(s.lookup(&other), Some(alice));
    }

    #[test]
    fn malformed_or_unknown_tokens_find_nobody() {
        let s = sessions();
        let table = [
            "",
            "abc",
            &"0".repeat(64),
            &"g".repeat(64),
            "../../etc",
            &"0".repeat(65),
        ];
        for token in table {
            assert_eq!(s.lookup(token), None, "{token:?}");
        }
    }

    #[test]
    fn user_fields_are_checked() {
        let long = "x".repeat(MAX_USER_FIELD + 1);
        let table: &[(&str, &str, bool)] = &[
            ("1", "alice", true),
            ("", "alice", false),
            ("1", "", false),
            ("1", "a\nb", false),
            (&long, "a", false),
        ];
        for (id, name, ok) in table {
            assert_eq!(User::new(id, name).is_some(), *ok, "{id:?} {name:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_and_stripped() {
        let token = "ab".repeat(32);
        let mut headers = vec![
            ("Host".to_owned(), "h".to_owned()),
            (
                "Cookie".to_owned(),
                format!("a=1; {COOKIE_NAME}={token}; b=2"),
            ),
            ("cookie".to_owned(), format!("{COOKIE_NAME}={token}")),
        ];
        assert_eq!(token_in(&headers), Some(token.as_str()));
        strip_cookie(&mut headers);
        assert_eq!(
            headers,
            vec![
                ("Host".to_owned(), "h".to_owned()),
                ("Cookie".to_owned(), "a=1; b=2".to_owned())
            ]
        );
        assert_eq!(token_in(&headers), None);
        assert!(set_cookie(&token).contains("HttpOnly; SameSite=Lax"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
