//! Signing users in and out through the host's session service (ABI section 6.3).
//!
//! Only an app granted `sessions` in `routes.json` may call these (normally
//! the user app). The host owns the session: it sets or expires its cookie on
//! this request's response and reports the signed-in user to every app in
//! [`Request::user`](crate::Request::user). Natively, [`crate::native`]
//! records the calls instead (see [`crate::native::session`]).

use std::fmt;

use wasmhost_abi::status;

#[cfg(target_arch = "wasm32")]
use crate::ffi::host as backend;
use crate::kv::KvError;
#[cfg(not(target_arch = "wasm32"))]
use crate::native as backend;

/// Why the host refused to start or end a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionError {
    /// 10: the app is not granted `sessions`.
    NotGranted,
    /// 11: the id or name is not acceptable (e.g. longer than 256 bytes).
    BadArgument,
    /// 1–7: the host's storage, where sessions live, failed.
    Storage(KvError),
    /// Any other status.
    Unexpected(i32),
}

impl SessionError {
    /// The error for a status other than `OK` (and `ABSENT` for `end`).
    fn from_status(code: i32) -> SessionError {
        match code {
            status::NOT_GRANTED => SessionError::NotGranted,
            status::BAD_ARGUMENT => SessionError::BadArgument,
            status::KEY_TOO_LARGE..=status::BACKEND => {
                SessionError::Storage(KvError::from_status(code))
            }
            other => SessionError::Unexpected(other),
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NotGranted => f.write_str("sessions are not granted to this app"),
            SessionError::BadArgument => f.write_str("the host refused the user id or name"),
            SessionError::Storage(err) => write!(f, "session storage failed: {err}"),
            SessionError::Unexpected(code) => write!(f, "unexpected session status {code}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// Signs in the user `id` with display name `name` (UTF-8, at most 256
/// bytes each): the host creates a session and adds its cookie to this
/// request's response.
pub fn start(id: &str, name: &str) -> Result<(), SessionError> {
    match backend::start_session(id, name) {
        status::OK => Ok(()),
        other => Err(SessionError::from_status(other)),
    }
}

/// Signs out the user of this request: `true` if there was a session.
pub fn end() -> Result<bool, SessionError> {
    match backend::end_session() {
        status::OK => Ok(true),
        status::ABSENT => Ok(false),
        other => Err(SessionError::from_status(other)),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::native;

    #[test]
    fn start_and_end_are_recorded() {
        assert_eq!(end(), Ok(false));
        start("7", "alice").unwrap();
        let state = native::session();
        assert_eq!(
            state.current.as_ref().map(|u| u.name.as_str()),
            Some("alice")
        );
        assert_eq!(state.started, 1);
        assert_eq!(end(), Ok(true));
        assert_eq!(native::session().current, None);
        assert_eq!(start("7", &"x".repeat(257)), Err(SessionError::BadArgument));
    }

    #[test]
    fn statuses_map_to_errors() {
        let table = [
            (10, SessionError::NotGranted),
            (11, SessionError::BadArgument),
            (7, SessionError::Storage(KvError::Backend)),
            (99, SessionError::Unexpected(99)),
        ];
        for (code, want) in table {
            assert_eq!(SessionError::from_status(code), want);
        }
    }
}
