//! Device cookies (OWASP's "device cookie" against lockout): a browser that once signed in to an account is trusted for it, so guessing from elsewhere cannot lock its owner out.
//!
//! A successful sign-in sets the cookie [`COOKIE`] (`HttpOnly`,
//! `SameSite=Lax`, `Path=/user`) to a random 128-bit token, stored as
//! `device/<account id>/<token>` → expiry (Unix seconds). A later attempt
//! that carries a token stored for the account it signs in to, not yet
//! expired, is exempt from the per-client and per-account limits of
//! [`crate::throttle`] (never from the per (account, client) one).
//!
//! Storage is bounded: an account keeps at most [`MAX_DEVICES`] tokens (a new
//! one evicts the expired ones and then the one that expires first), an
//! expired token is deleted when it is presented, and a browser that signs in
//! again with its valid token keeps it (its expiry moves on).

use guest_sdk::kv::{self, KvError};
use guest_sdk::{Cookie, SameSite};

/// The cookie's name.
pub const COOKIE: &str = "user_device";
/// How long a device stays trusted after its last sign-in: 30 days.
pub const DEVICE_TTL_SECS: i64 = 30 * 86_400;
/// Most trusted devices per account: enough for one person's browsers,
/// bounded however often someone signs in.
pub const MAX_DEVICES: usize = 10;
/// Token length in hex digits (16 random bytes).
const TOKEN_LEN: usize = 32;

/// The storage key of `token` for account `id`.
fn key(id: u64, token: &str) -> String {
    format!("device/{id}/{token}")
}

/// Whether `token` has the form of one of ours (so it is safe in a key).
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The expiry stored under `key`, if any.
fn expiry(key: &str) -> Result<Option<i64>, KvError> {
    Ok(kv::get(key.as_bytes())?.map(|v| {
        std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            // A value that does not parse is treated as expired.
            .unwrap_or(i64::MIN)
    }))
}

/// Whether `token` (the request's cookie, if any) is a device of account
/// `id` at `now`. An expired token is deleted.
pub fn is_trusted(token: Option<&str>, id: u64, now: i64) -> Result<bool, KvError> {
    let Some(token) = token.filter(|t| well_formed(t)) else {
        return Ok(false);
    };
    let key = key(id, token);
    match expiry(&key)? {
        Some(expires) if expires > now => Ok(true),
        Some(_) => {
            kv::delete(key.as_bytes())?;
            Ok(false)
        }
        None => Ok(false),
    }
}

/// Trusts the browser that just signed in to account `id` at `now`: renews
/// its token if `current` is a valid one of this account, else stores a new
/// one (evicting as [`MAX_DEVICES`] requires). Returns the token to set.
pub fn remember(current: Option<&str>, id: u64, now: i64) -> Result<String, String> {
    let expires = now.saturating_add(DEVICE_TTL_SECS).to_string();
    if let Some(token) = current
        && is_trusted(Some(token), id, now).map_err(|e| e.to_string())?
    {
        kv::set(key(id, token).as_bytes(), expires.as_bytes()).map_err(|e| e.to_string())?;
        return Ok(token.to_owned());
    }
    evict(id, now).map_err(|e| e.to_string())?;
    let mut bytes = [0u8; TOKEN_LEN / 2];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random device token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // `None` expected: a token is never reused, even by a 2^-128 chance.
    let stored = kv::cas(key(id, &token).as_bytes(), None, Some(expires.as_bytes()))
        .map_err(|e| e.to_string())?;
    if !stored {
        return Err("a fresh device token was already taken".into());
    }
    Ok(token)
}

/// Makes room for one more device of account `id`: deletes the expired ones,
/// then the earliest to expire until fewer than [`MAX_DEVICES`] are left.
fn evict(id: u64, now: i64) -> Result<(), KvError> {
    let prefix = format!("device/{id}/");
    let mut devices = Vec::new();
    for key in kv::list_all(prefix.as_bytes())? {
        let key = String::from_utf8_lossy(&key).into_owned();
        match expiry(&key)? {
            Some(expires) if expires > now => devices.push((expires, key)),
            Some(_) => {
                kv::delete(key.as_bytes())?;
            }
            None => {}
        }
    }
    devices.sort();
    let excess = (devices.len() + 1).saturating_sub(MAX_DEVICES);
    for (_, key) in devices.iter().take(excess) {
        kv::delete(key.as_bytes())?;
    }
    Ok(())
}

/// The `Set-Cookie` value that stores `token` in the browser.
pub fn cookie(token: &str) -> Cookie {
    Cookie::new(COOKIE, token)
        .path("/user")
        .max_age(DEVICE_TTL_SECS)
        .http_only()
        .same_site(SameSite::Lax)
}
