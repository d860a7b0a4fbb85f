//! The shared [`KvStore`] backend: a Redis server that several hosts use at once (docs/scale-out.md).
//!
//! Layout, for a store labelled `LABEL` (`apps` or `host`) under the key
//! prefix `P` (default `wasmhost:`), per namespace `NS`:
//!
//! - `P LABEL:{NS}:kv`, a hash: field = key bytes, value = value bytes;
//! - `P LABEL:{NS}:idx`, a sorted set of the same keys, every score 0.
//!
//! The namespace is validated (`[a-z0-9][a-z0-9_-]*`), so it contains no `:`
//! and no brace and cannot name another namespace's keys; the guest's key
//! bytes are only ever a hash field or a set member, never part of a Redis
//! key name. A sorted set whose scores are all equal orders its members
//! bytewise (`memcmp`, shorter first on a tie), which is exactly the order
//! `docs/abi.md` promises, so `list` is one `ZRANGE … BYLEX … LIMIT` with
//! the prefix as a range and never a scan. The `{NS}` hash tag keeps both
//! keys of a namespace in one slot, as the scripts need.
//!
//! Atomicity: every write is one Lua script (`EVALSHA`), which Redis runs
//! with no other command in between. The scripts check the key limit with the
//! insert, keep the index in step with the hash, and decide compare-and-swap
//! on the server. Lua rather than `WATCH`/`MULTI`: a script cannot lose a
//! race and report success (an aborted `EXEC` returns nil, which is easy to
//! misread), needs no retry loop, and costs one round trip. `increment` uses
//! `HINCRBY` inside its script, which does exact 64-bit arithmetic and
//! refuses overflow without writing; a stored counter that `HINCRBY` does not
//! read but `docs/abi.md` allows (`+5`, `007`, `-0`) is read and rewritten by
//! a compare-and-swap loop instead, so the answers match the SQLite backend's.
//!
//! Reads are `HGET` and, for `get_many`, one `HMGET`: one round trip and one
//! point in time, whatever the number of keys.
//!
//! Durability is the server's: a write is acknowledged once Redis applied it,
//! and survives a `kill -9` of Redis only with `appendonly yes` and
//! `appendfsync always` (docs/scale-out.md, "Durability").
//!
//! Every call is bounded: connecting, each command and waiting for a pooled
//! connection have their own timeouts, so an unreachable or stalled Redis
//! gives `StorageError::Backend` within seconds instead of a hung worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{KvStore, Limits, Namespace, Page, StorageError, next_counter};

/// How long opening a TCP (or Unix socket) connection to Redis may take: a
/// reachable server on a LAN answers in milliseconds; beyond this it is down.
/// Short enough that a guest's default 1 s `cpu_time` (which counts host
/// calls) still leaves it time to answer its error page.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long one command may wait for its reply (or to be written): Redis runs
/// commands in microseconds, so this only ends calls to a stalled server,
/// again well inside a guest's default `cpu_time`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a storage call waits for a pooled connection: all of them busy
/// for this long means Redis is not keeping up, and the guest gets `Backend`.
pub const POOL_WAIT: Duration = Duration::from_millis(500);

/// Connections kept per host: one per worker thread that may be in a storage
/// call at once (the default worker count is 16), plus the deploy sync.
pub const POOL_SIZE: u32 = 32;

/// Connections kept open while idle, so that a request rarely waits for a
/// connect (r2d2 opens them in the background, and keeps retrying while
/// Redis is down).
pub const MIN_IDLE: u32 = 4;

/// The default prefix of every Redis key the host writes, so that one Redis
/// can hold other data beside it.
pub const DEFAULT_PREFIX: &str = "wasmhost:";

/// Longest key prefix accepted in the configuration: a short label.
pub const MAX_PREFIX_LEN: usize = 64;

/// Rounds of compare-and-swap `increment` tries on a non-canonical stored
/// counter before it reports `Backend`: each lost round means another writer
/// changed the key, and the first rewrite makes the value canonical.
const INCREMENT_ROUNDS: usize = 64;

/// `set`: KEYS = kv, idx; ARGV = key, value, max keys.
/// Returns 1, or -1 when a new key would pass the limit.
const SET: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// `delete`: KEYS = kv, idx; ARGV = key. Returns whether it existed.
const DELETE: &str = r"
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
";

/// `compare_and_swap`: KEYS = kv, idx; ARGV = key, expected given (0/1),
/// expected, new given (0/1), new, max keys. Returns 1 swapped, 0 not, -1
/// when a new key would pass the limit.
const CAS: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if cur ~= ARGV[3] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '1' then
  if not cur then
    if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then return -1 end
    redis.call('ZADD', KEYS[2], 0, ARGV[1])
  end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
elseif cur then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
";

/// `increment`: KEYS = kv, idx; ARGV = key, delta, max keys. Returns
/// {'0', value}, {'1'} too many keys, {'2'} overflow, {'3'} a stored value
/// HINCRBY does not read (the caller decides with the exact parser). The
/// value is read back as a string: Lua turns an integer reply into a double,
/// which would round counters past 2^53.
const INCREMENT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {'1'} end
  redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  return {'0', redis.call('HGET', KEYS[1], ARGV[1])}
end
local r = redis.pcall('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'overflow') then return {'2'} end
  return {'3'}
end
return {'0', redis.call('HGET', KEYS[1], ARGV[1])}
";

/// A pooled connection and the failure epoch it was last known good in.
pub struct Tagged {
    conn: redis::Connection,
    checked: u64,
    broken: bool,
}

/// r2d2's view of a Redis server: connects with [`CONNECT_TIMEOUT`] and sets
/// [`COMMAND_TIMEOUT`] on every connection it makes.
pub struct Manager {
    client: redis::Client,
    health: Arc<Health>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Tagged;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Tagged, redis::RedisError> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(Tagged {
            conn,
            checked: self.health.epoch.load(Ordering::Acquire),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Tagged) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query::<String>(&mut conn.conn).map(drop)
    }

    fn has_broken(&self, conn: &mut Tagged) -> bool {
        conn.broken || !redis::ConnectionLike::is_open(&conn.conn)
    }
}

/// A circuit breaker: after a failure, calls fail at once instead of each
/// waiting for a connect that will not succeed, and one call in every
/// [`PROBE_INTERVAL`] tries Redis again.
#[derive(Default)]
struct Health {
    /// Raised by every failure: a pooled connection last known good in an
    /// older epoch is checked with `PING` before it is used again.
    epoch: AtomicU64,
    /// When Redis last failed and when it was last probed, while it is down.
    down: Mutex<Option<(Instant, Instant)>>,
}

/// While Redis is down, how often one storage call tries it again; the
/// others fail at once, so a dead server costs requests no time.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// A pool of connections to one Redis server, shared by the host's stores
/// and its deploy sync. Cloning shares the pool.
#[derive(Clone)]
pub struct RedisPool {
    pool: r2d2::Pool<Manager>,
    client: redis::Client,
    health: Arc<Health>,
    prefix: String,
    /// The URL without any password, for logs and errors.
    shown: String,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisPool({})", self.shown)
    }
}

/// A pooled connection, used as a `redis::Connection`.
pub struct PooledConnection(r2d2::PooledConnection<Manager>);

impl std::ops::Deref for PooledConnection {
    type Target = redis::Connection;
    fn deref(&self) -> &redis::Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut redis::Connection {
        &mut self.0.conn
    }
}

impl RedisPool {
    /// A pool for `url` (`redis://host:port/db`,
    /// `redis+unix:///path?db=N`). Does not connect: a host starts while
    /// Redis is down and reports itself not ready until it is back.
    pub fn open(url: &str, prefix: &str) -> Result<RedisPool, StorageError> {
        let shown = hide_password(url);
        if prefix.len() > MAX_PREFIX_LEN || prefix.chars().any(|c| c.is_control() || c == '{') {
            return Err(StorageError::Backend(format!(
                "invalid Redis key prefix {prefix:?}: at most {MAX_PREFIX_LEN} bytes, no braces or controls"
            )));
        }
        let client = redis::Client::open(url)
            .map_err(|e| StorageError::Backend(format!("invalid Redis URL {shown}: {e}")))?;
        let health = Arc::new(Health::default());
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(MIN_IDLE))
            .connection_timeout(POOL_WAIT)
            // No PING before every use (it would double the round trips):
            // only connections from before a failure are checked, in `get`.
            .test_on_check_out(false)
            // r2d2 would log every failed connect at error level; the
            // storage call's own error names the failure once.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager {
                client: client.clone(),
                health: health.clone(),
            });
        Ok(RedisPool {
            pool,
            client,
            health,
            prefix: prefix.to_owned(),
            shown,
        })
    }

    /// The server's URL, without a password.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> StorageError {
        StorageError::Backend(format!("Redis at {} is unreachable: {why}", self.shown))
    }

    fn mark_down(&self) {
        self.health.epoch.fetch_add(1, Ordering::AcqRel);
        let now = Instant::now();
        let mut down = self
            .health
            .down
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down.is_none() {
            *down = Some((now, now));
        }
    }

    /// While Redis is down: `Err` at once, except for one caller per
    /// [`PROBE_INTERVAL`], which tries a fresh connection.
    fn probe_if_down(&self) -> Result<(), StorageError> {
        {
            let mut down = self
                .health
                .down
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match down.as_mut() {
                None => return Ok(()),
                Some((since, last_probe)) => {
                    if last_probe.elapsed() < PROBE_INTERVAL {
                        return Err(self.unreachable(format_args!(
                            "down for {} ms; retried every {} ms",
                            since.elapsed().as_millis(),
                            PROBE_INTERVAL.as_millis()
                        )));
                    }
                    *last_probe = Instant::now();
                }
            }
        }
        let probe = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|mut c| {
                c.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                redis::cmd("PING").query::<String>(&mut c).map(drop)
            });
        match probe {
            Ok(()) => {
                *self
                    .health
                    .down
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                Ok(())
            }
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// A connection known to work since the last failure; `Backend` at once
    /// while Redis is down, or once [`POOL_WAIT`] has passed.
    pub fn get(&self) -> Result<PooledConnection, StorageError> {
        self.probe_if_down()?;
        // Each pooled connection from before the last failure is checked
        // once; a dead one is dropped and the next one tried.
        for _ in 0..=POOL_SIZE {
            let mut pooled = self.pool.get().map_err(|e| {
                self.mark_down();
                self.unreachable(e)
            })?;
            let epoch = self.health.epoch.load(Ordering::Acquire);
            if pooled.checked == epoch {
                return Ok(PooledConnection(pooled));
            }
            match redis::cmd("PING").query::<String>(&mut pooled.conn) {
                Ok(_) => {
                    pooled.checked = epoch;
                    return Ok(PooledConnection(pooled));
                }
                Err(_) => pooled.broken = true,
            }
        }
        self.mark_down();
        Err(self.unreachable("every pooled connection failed"))
    }

    /// Checks that Redis answers `PING` (for `/readyz`).
    pub fn ping(&self) -> Result<(), StorageError> {
        let mut conn = self.get()?;
        redis::cmd("PING")
            .query::<String>(&mut *conn)
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// A command failure as the storage error guests see; a failure of the
    /// connection itself (not a script's answer) opens the breaker.
    pub fn error(&self, e: redis::RedisError) -> StorageError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            self.mark_down();
        }
        StorageError::Backend(format!("Redis at {}: {e}", self.shown))
    }
}

/// `redis://user:secret@host` as `redis://user:***@host`.
fn hide_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A [`KvStore`] on Redis, under `PREFIX LABEL:`.
pub struct RedisStore {
    pool: RedisPool,
    label: String,
    limits: Limits,
    set: redis::Script,
    delete: redis::Script,
    cas: redis::Script,
    increment: redis::Script,
}

impl RedisStore {
    /// The store `label` (`apps`, `host`) on `pool`, with the default limits.
    pub fn new(pool: RedisPool, label: &str) -> RedisStore {
        RedisStore::with_limits(pool, label, Limits::default())
    }

    /// The same with the given limits (tests reach them quickly).
    pub fn with_limits(pool: RedisPool, label: &str, limits: Limits) -> RedisStore {
        RedisStore {
            pool,
            label: label.to_owned(),
            limits,
            set: redis::Script::new(SET),
            delete: redis::Script::new(DELETE),
            cas: redis::Script::new(CAS),
            increment: redis::Script::new(INCREMENT),
        }
    }

    /// The hash and the index of a namespace.
    fn keys(&self, ns: &Namespace) -> (String, String) {
        let base = format!("{}{}:{{{}}}", self.pool.prefix(), self.label, ns.as_str());
        (format!("{base}:kv"), format!("{base}:idx"))
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StorageError> {
        let mut conn = self.pool.get()?;
        f(&mut conn).map_err(|e| self.pool.error(e))
    }

    fn too_many(&self) -> StorageError {
        StorageError::TooManyKeys {
            max: self.limits.max_keys_per_namespace,
        }
    }
}

/// `[bytes` or `(bytes` as a ZRANGE BYLEX bound.
fn lex(inclusive: bool, bytes: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(bytes.len() + 1);
    bound.push(if inclusive { b'[' } else { b'(' });
    bound.extend_from_slice(bytes);
    bound
}

impl KvStore for RedisStore {
    fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.limits.check_key(key)?;
        let (kv, _) = self.keys(ns);
        self.run(|c| redis::cmd("HGET").arg(&kv).arg(key).query(c))
    }

    fn set(&self, ns: &Namespace, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.limits.check_key(key)?;
        self.limits.check_value(value)?;
        let (kv, idx) = self.keys(ns);
        let max = self.limits.max_keys_per_namespace;
        let done: i64 = self.run(|c| {
            self.set
                .key(&kv)
                .key(&idx)
                .arg(key)
                .arg(value)
                .arg(max)
                .invoke(c)
        })?;
        if done < 0 {
            return Err(self.too_many());
        }
        Ok(())
    }

    fn delete(&self, ns: &Namespace, key: &[u8]) -> Result<bool, StorageError> {
        self.limits.check_key(key)?;
        let (kv, idx) = self.keys(ns);
        let n: i64 = self.run(|c| self.delete.key(&kv).key(&idx).arg(key).invoke(c))?;
        Ok(n > 0)
    }

    fn list(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, StorageError> {
        let range = self.limits.list_range(prefix, after, limit)?;
        let lower = lex(range.start_included, range.start);
        let upper = range
            .end
            .map_or_else(|| b"+".to_vec(), |end| lex(false, &end));
        let (_, idx) = self.keys(ns);
        let keys: Vec<Vec<u8>> = self.run(|c| {
            redis::cmd("ZRANGE")
                .arg(&idx)
                .arg(lower)
                .arg(upper)
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(range.limit + 1)
                .query(c)
        })?;
        Ok(Page::from_overfetch(keys, range.limit))
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (kv, _) = self.keys(ns);
        // One HMGET: every value from one point in time, one round trip.
        let values: Vec<Option<Vec<u8>>> =
            self.run(|c| redis::cmd("HMGET").arg(&kv).arg(keys).query(c))?;
        let mut values = values.into_iter();
        super::take_within(keys, max_bytes, |_| Ok(values.next().flatten()))
    }

    fn increment(&self, ns: &Namespace, key: &[u8], delta: i64) -> Result<i64, StorageError> {
        self.limits.check_key(key)?;
        let (kv, idx) = self.keys(ns);
        let max = self.limits.max_keys_per_namespace;
        let reply: Vec<String> = self.run(|c| {
            self.increment
                .key(&kv)
                .key(&idx)
                .arg(key)
                .arg(delta)
                .arg(max)
                .invoke(c)
        })?;
        let reply: Vec<&str> = reply.iter().map(String::as_str).collect();
        match reply.as_slice() {
            ["0", value] => super::parse_counter(value.as_bytes()),
            ["1"] => Err(self.too_many()),
            ["2"] => Err(StorageError::Overflow),
            ["3"] => {
                // A value HINCRBY does not read: decide with the exact parser
                // and write the result back only if nobody changed it since.
                for _ in 0..INCREMENT_ROUNDS {
                    let current = self.get(ns, key)?;
                    let value = next_counter(current.as_deref(), delta)?;
                    let text = value.to_string();
                    if self.compare_and_swap(ns, key, current.as_deref(), Some(text.as_bytes()))? {
                        return Ok(value);
                    }
                }
                Err(StorageError::Backend(format!(
                    "increment lost {INCREMENT_ROUNDS} races in a row"
                )))
            }
            other => Err(StorageError::Backend(format!(
                "unexpected increment reply {other:?}"
            ))),
        }
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
        let (kv, idx) = self.keys(ns);
        let max = self.limits.max_keys_per_namespace;
        let flag = |given: bool| if given { "1" } else { "0" };
        let reply: i64 = self.run(|c| {
            self.cas
                .key(&kv)
                .key(&idx)
                .arg(key)
                .arg(flag(expected.is_some()))
                .arg(expected.unwrap_or_default())
                .arg(flag(new.is_some()))
                .arg(new.unwrap_or_default())
                .arg(max)
                .invoke(c)
        })?;
        match reply {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(self.too_many()),
        }
    }

    fn ready(&self) -> Result<(), StorageError> {
        self.pool.ping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::Fixture;
    use crate::storage::conformance_tests;

    /// A store on the test Redis server, in a namespace prefix of its own so
    /// that tests running at once never see each other's keys.
    fn make(limits: Limits) -> Fixture {
        let server = testing::server();
        let pool = RedisPool::open(&server.url, &testing::fresh_prefix()).expect("pool");
        Fixture {
            store: Box::new(RedisStore::with_limits(pool, "apps", limits)),
            _guard: None,
        }
    }

    conformance_tests!(make);

    #[test]
    fn passwords_are_hidden_in_logs() {
        let table = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
            ("redis://u:pw@h/0", "redis://u:***@h/0"),
            ("redis://u@h/0", "redis://u@h/0"),
            ("redis+unix:///run/r.sock", "redis+unix:///run/r.sock"),
        ];
        for (url, shown) in table {
            assert_eq!(hide_password(url), shown, "{url}");
        }
    }

    #[test]
    fn an_unreachable_server_is_a_backend_error_within_the_timeouts() {
        // A port nothing listens on: connection refused at once.
        let port = testing::free_port();
        let pool = RedisPool::open(&format!("redis://127.0.0.1:{port}/0"), "t:").unwrap();
        let store = RedisStore::new(pool.clone(), "apps");
        let ns = Namespace::new("app").unwrap();
        let started = std::time::Instant::now();
        let err = store.get(&ns, b"k").unwrap_err();
        assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
        assert!(pool.ping().is_err());
        // Generous: the bound is POOL_WAIT plus one connect timeout.
        assert!(
            started.elapsed() < POOL_WAIT + CONNECT_TIMEOUT * 4,
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_stalled_server_is_a_backend_error_within_the_timeouts() {
        // A listener that never accepts: the kernel completes the connect,
        // and nothing ever answers a command.
        let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = stalled.local_addr().unwrap().port();
        let pool = RedisPool::open(&format!("redis://127.0.0.1:{port}/0"), "t:").unwrap();
        let store = RedisStore::new(pool, "apps");
        let ns = Namespace::new("app").unwrap();
        let started = std::time::Instant::now();
        let err = store.set(&ns, b"k", b"v").unwrap_err();
        assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
        // Generous: the bound is a pool wait plus a connect and a command.
        let bound = (POOL_WAIT + CONNECT_TIMEOUT + COMMAND_TIMEOUT) * 4;
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
        // The breaker is open now: the next call fails at once, without
        // trying the server again.
        let err = store.get(&ns, b"k").unwrap_err();
        assert!(err.to_string().contains("retried every"), "{err}");
    }

    #[test]
    fn non_canonical_counters_increment_as_the_exact_parser_reads_them() {
        let server = testing::server();
        let pool = RedisPool::open(&server.url, &testing::fresh_prefix()).unwrap();
        let store = RedisStore::new(pool, "apps");
        let ns = Namespace::new("app").unwrap();
        for (stored, delta, want) in [
            (&b"+5"[..], 1, Ok(6)),
            (b"007", 1, Ok(8)),
            (b"-0", -1, Ok(-1)),
            (b"9223372036854775807", 1, Err(StorageError::Overflow)),
            (b"12 ", 1, Err(StorageError::NotAnInteger)),
            (b"x", 1, Err(StorageError::NotAnInteger)),
        ] {
            store.set(&ns, b"n", stored).unwrap();
            assert_eq!(store.increment(&ns, b"n", delta), want, "{stored:?}");
        }
    }

    #[test]
    fn a_unix_socket_url_reaches_the_same_server() {
        let server = testing::server();
        let prefix = testing::fresh_prefix();
        let tcp = RedisStore::new(RedisPool::open(&server.url, &prefix).unwrap(), "apps");
        let unix = RedisStore::new(RedisPool::open(&server.unix_url, &prefix).unwrap(), "apps");
        let ns = Namespace::new("app").unwrap();
        unix.set(&ns, b"k", b"through the socket").unwrap();
        assert_eq!(
            tcp.get(&ns, b"k").unwrap().as_deref(),
            Some(&b"through the socket"[..])
        );
        assert!(unix.ready().is_ok());
    }

    #[test]
    fn namespaces_and_labels_use_separate_redis_keys() {
        let server = testing::server();
        let pool = RedisPool::open(&server.url, &testing::fresh_prefix()).unwrap();
        let apps = RedisStore::new(pool.clone(), "apps");
        let host = RedisStore::new(pool, "host");
        let ns = Namespace::new("sessions").unwrap();
        apps.set(&ns, b"k", b"app value").unwrap();
        assert_eq!(host.get(&ns, b"k").unwrap(), None);
        host.set(&ns, b"k", b"host value").unwrap();
        assert_eq!(
            apps.get(&ns, b"k").unwrap().as_deref(),
            Some(&b"app value"[..])
        );
    }
}

/// A real `redis-server` for tests: one per test process, on a free loopback
/// port, with its own directory and the durability settings of
/// docs/scale-out.md.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// The shell that runs the server stops it (and removes its directory)
    /// when its standard input closes, that is when the test process exits,
    /// however it exits: statics are never dropped.
    const WRAPPER: &str = r#"dir=$(mktemp -d); "$0" "$@" --dir "$dir" & pid=$!; read -r _; kill "$pid"; wait "$pid"; rm -rf "$dir""#;

    pub(crate) struct Server {
        pub url: String,
        /// The same server through its Unix socket (`redis+unix://`).
        pub unix_url: String,
    }

    /// Where the test server's Unix socket is.
    fn socket_path() -> PathBuf {
        std::env::temp_dir().join(format!("wasmhost-test-redis-{}.sock", std::process::id()))
    }

    pub(crate) fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    /// A key prefix no other test uses.
    pub(crate) fn fresh_prefix() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "test{}-{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn binary() -> PathBuf {
        let found = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        match found {
            Some(path) => path,
            None => panic!(
                "redis-server not found: the Redis backend tests need the Debian package \
                 redis-server (`apt-get install redis-server`; .ci/run installs it)"
            ),
        }
    }

    /// The shared test server, started on first use.
    pub(crate) fn server() -> Server {
        // The child is kept (never waited on: the shell ends when the test
        // process exits and its stdin closes).
        static SERVER: OnceLock<(String, Mutex<(Child, ChildStdin)>)> = OnceLock::new();
        let (url, _) = SERVER.get_or_init(|| {
            let port = free_port();
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(WRAPPER)
                .arg(binary())
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--unixsocket")
                .arg(socket_path())
                .args(["--unixsocketperm", "700"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let stdin = child.stdin.take().expect("piped stdin");
            let url = format!("redis://127.0.0.1:{port}/0");
            let deadline = Instant::now() + Duration::from_secs(20);
            let client = redis::Client::open(url.as_str()).expect("url");
            loop {
                if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1))
                    && redis::cmd("PING").query::<String>(&mut c).is_ok()
                {
                    break;
                }
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            (url, Mutex::new((child, stdin)))
        });
        Server {
            url: url.clone(),
            unix_url: format!("redis+unix://{}?db=0", socket_path().display()),
        }
    }
}
