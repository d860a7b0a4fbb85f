//! Throttling of failed sign-ins: fixed-window failure counters per (account, client address), per client address and per account, kept in the app's storage and checked before any password is.
//!
//! Every counter lives under `throttle/<window>/<scope>/<id>`, where
//! `<window>` is `now / WINDOW_SECS`, zero-padded to 12 digits so that keys
//! sort by window, and the scopes are
//!
//! | scope | id | limit |
//! |---|---|---|
//! | `ac` | `<client>/<account>` | [`LIMIT_ACCOUNT_CLIENT`] |
//! | `c` | `<client>` | [`LIMIT_CLIENT`] |
//! | `a` | `<account>` | [`LIMIT_ACCOUNT`] |
//!
//! `<account>` is the lowercased name as typed, whether or not such an
//! account exists (names that could never be registered share `~`), and
//! `<client>` is the client's IP: an IPv4 address, or the /64 of an IPv6
//! address (one subscriber usually holds a whole /64).
//!
//! An attempt first reads its counters ([`begin`]); if one that applies has
//! reached its limit, the attempt is refused until the window ends, without
//! writing anything. Otherwise it increments all three atomically *before*
//! the password is checked, so that concurrent attempts cannot all slip
//! through one check: an increment past a limit is taken back and refused.
//! The [`Reservation`] then either stays counted (a failure) or is taken back
//! ([`Reservation::succeeded`]), which also clears the (account, client)
//! counter. A trusted device (see [`crate::device`]) is exempt from the
//! per-client and per-account limits, never from the per (account, client)
//! one.
//!
//! **Bounded storage.** Each attempt that reaches the password check first
//! deletes up to [`PRUNE_PER_ATTEMPT`] keys of windows older than the
//! previous one (the oldest sort first), and then writes at most three keys.
//! So the keys of old windows shrink by at least `PRUNE_PER_ATTEMPT - 3` per
//! attempt until none are left: storage holds the counters of the current and
//! the previous window, plus at most one burst's leftovers while the app is
//! quiet, which the next attempts clear.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use guest_sdk::kv::{self, KvError};

/// The length of a window, in seconds: counts start from zero every 15
/// minutes, so no limit lasts longer than that.
pub const WINDOW_SECS: i64 = 15 * 60;
/// Failures per (account, client) per window: someone who mistypes gets
/// five tries; a guesser at one address gets five guesses per account.
pub const LIMIT_ACCOUNT_CLIENT: i64 = 5;
/// Failures per client address, all accounts together, per window: one
/// address cannot try a few common passwords on many accounts (spraying).
pub const LIMIT_CLIENT: i64 = 20;
/// Failures per account, all addresses together, per window: caps
/// distributed guessing at 100 per 15 minutes (9,600 a day) per account.
pub const LIMIT_ACCOUNT: i64 = 100;
/// Keys of old windows deleted at most per attempt: more than the three an
/// attempt writes, so old keys never pile up, yet a bounded cost per request.
pub const PRUNE_PER_ATTEMPT: u32 = 10;
/// How often a compare-and-swap is retried against concurrent writers before
/// giving up.
const CAS_TRIES: usize = 16;
/// The prefix of every throttle key; nothing else lives under it.
pub const PREFIX: &str = "throttle/";
/// The account id of names that can never be registered.
const INVALID_ACCOUNT: &str = "~";

/// What is counted: one sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The account id of the keys: the lowercased name, or `~`.
    pub account: String,
    /// The client id of the keys: see [`client_id`].
    pub client: String,
    /// Whether the attempt carries a valid device cookie of this account.
    pub trusted_device: bool,
}

impl Attempt {
    /// An attempt to sign in as `username` (as typed) from `client` (the
    /// request meta's `ip:port`).
    pub fn new(username: &str, client: &str, trusted_device: bool) -> Attempt {
        let name = username.trim();
        let account = match crate::check_username(name) {
            Ok(()) => name.to_ascii_lowercase(),
            Err(_) => INVALID_ACCOUNT.to_owned(),
        };
        Attempt {
            account,
            client: client_id(client),
            trusted_device,
        }
    }

    /// The attempt's counters in `window`: key, limit, and whether the limit
    /// applies to this attempt.
    fn counters(&self, window: i64) -> [(String, i64, bool); 3] {
        let (client, account) = (&self.client, &self.account);
        [
            (
                key(window, "ac", &format!("{client}/{account}")),
                LIMIT_ACCOUNT_CLIENT,
                true,
            ),
            (key(window, "c", client), LIMIT_CLIENT, !self.trusted_device),
            (
                key(window, "a", account),
                LIMIT_ACCOUNT,
                !self.trusted_device,
            ),
        ]
    }
}

/// The client id of a request meta's `client` (`ip:port`): the IP, with
/// IPv4-mapped IPv6 as IPv4 and other IPv6 addresses cut to their /64;
/// `unknown` if it does not parse.
pub fn client_id(client: &str) -> String {
    let ip = match client.parse::<SocketAddr>() {
        Ok(addr) => addr.ip(),
        Err(_) => match client.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return "unknown".to_owned(),
        },
    };
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// The window of `now` (Unix seconds).
pub fn window(now: i64) -> i64 {
    now.div_euclid(WINDOW_SECS).max(0)
}

/// Seconds from `now` until its window ends (at least 1).
pub fn retry_after(now: i64) -> i64 {
    ((window(now) + 1) * WINDOW_SECS - now).max(1)
}

/// The key of counter `scope`/`id` in `window`.
fn key(window: i64, scope: &str, id: &str) -> String {
    format!("{PREFIX}{window:012}/{scope}/{id}")
}

/// The window of a throttle key, `None` if it is not one.
fn window_of(key: &[u8]) -> Option<i64> {
    let rest = key.strip_prefix(PREFIX.as_bytes())?;
    let digits = rest.split(|&b| b == b'/').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The value of counter `key` (absent: 0).
fn read(key: &str) -> Result<i64, KvError> {
    match kv::get(key.as_bytes())? {
        None => Ok(0),
        Some(value) => std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(KvError::NotAnInteger),
    }
}

/// Takes one back from counter `key`, deleting it at zero and never going
/// below: a compare-and-swap loop, as other requests count concurrently.
fn release(key: &str) -> Result<(), KvError> {
    for _ in 0..CAS_TRIES {
        let Some(old) = kv::get(key.as_bytes())? else {
            return Ok(());
        };
        let n: i64 = std::str::from_utf8(&old)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(KvError::NotAnInteger)?;
        let new = (n > 1).then(|| (n - 1).to_string());
        if kv::cas(
            key.as_bytes(),
            Some(&old),
            new.as_deref().map(str::as_bytes),
        )? {
            return Ok(());
        }
    }
    guest_sdk::log::warn(&format!("gave up releasing {key} under contention"));
    Ok(())
}

/// The outcome of [`begin`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The password may be checked; the attempt is counted as a failure
    /// unless [`Reservation::succeeded`] is called.
    Allowed(Reservation),
    /// Refused without checking the password, for `retry_after` seconds.
    Throttled {
        /// Seconds until the window ends.
        retry_after: i64,
    },
}

/// An attempt counted in advance as a failure.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "dropping a reservation counts the attempt as a failure"]
pub struct Reservation {
    /// The (account, client) counter.
    account_client: String,
    /// The per-client and per-account counters.
    others: [String; 2],
}

impl Reservation {
    /// The password was wrong (or the account unknown): the attempt stays
    /// counted.
    pub fn failed(self) {}

    /// The sign-in succeeded: clears the (account, client) counter and takes
    /// this attempt back from the others.
    pub fn succeeded(self) -> Result<(), KvError> {
        kv::delete(self.account_client.as_bytes())?;
        for key in &self.others {
            release(key)?;
        }
        Ok(())
    }
}

/// Decides whether `attempt` may have its password checked at `now` and, if
/// so, counts it in advance (see the module documentation).
pub fn begin(attempt: &Attempt, now: i64) -> Result<Decision, KvError> {
    let window = window(now);
    let throttled = Decision::Throttled {
        retry_after: retry_after(now),
    };
    let counters = attempt.counters(window);
    // A refused attempt writes nothing.
    for (key, limit, applies) in &counters {
        if *applies && read(key)? >= *limit {
            return Ok(throttled);
        }
    }
    prune(now, PRUNE_PER_ATTEMPT)?;
    let mut counted: Vec<&str> = Vec::new();
    let mut over = false;
    let mut failure = None;
    for (key, limit, applies) in &counters {
        match kv::increment(key.as_bytes(), 1) {
            Ok(n) => {
                counted.push(key);
                over |= *applies && n > *limit;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if over || failure.is_some() {
        // Concurrent attempts got there first (or storage failed): take back
        // what was counted.
        for key in counted {
            release(key)?;
        }
        return match failure {
            Some(e) => Err(e),
            None => Ok(throttled),
        };
    }
    let [(account_client, ..), (client, ..), (account, ..)] = counters;
    Ok(Decision::Allowed(Reservation {
        account_client,
        others: [client, account],
    }))
}

/// Deletes up to `max` throttle keys of windows older than the one before
/// `now`'s, oldest first; returns how many it deleted.
pub fn prune(now: i64, max: u32) -> Result<usize, KvError> {
    let keep_from = window(now) - 1;
    let page = kv::list(PREFIX.as_bytes(), None, max.max(1))?;
    let mut deleted = 0;
    for key in page.keys.iter().take(max as usize) {
        // Keys sort by window: the first one still in use ends the sweep. A
        // key that does not parse is not one of ours, and would stall the
        // sweep for ever if kept.
        if window_of(key).is_some_and(|w| w >= keep_from) {
            break;
        }
        kv::delete(key)?;
        deleted += 1;
    }
    Ok(deleted)
}
