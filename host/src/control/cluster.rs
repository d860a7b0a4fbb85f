//! Cluster-wide deploy and rollback through the shared Redis: announcing a version, the sync thread that applies announcements, and every node's status.
//!
//! Keys, under the host's Redis prefix `P` (docs/scale-out.md, "Deploys"):
//!
//! - `P deploy:module:SHA256`: a version's bytes, content-addressed; a node
//!   that fetches them checks their SHA-256 before it compiles them.
//! - `P deploy:current`: a hash, app → the SHA-256 the cluster serves.
//! - `P deploy:seq`: a counter raised with every announcement, in the same
//!   `MULTI` as the `current` change.
//! - `P nodes`: a hash, node name → that node's status (JSON): when it last
//!   wrote, and each app's version, status and last refusal.
//!
//! A deploy or rollback validates and compiles the version on the node that
//! received it, stores the bytes, then announces; only then does that node
//! swap. Every other node polls `deploy:seq` every [`SYNC_INTERVAL`] (one
//! `GET`), and when it moved, reads `deploy:current` and applies every app
//! whose cluster version changed since its last look: fetch, verify, compile,
//! validate and swap, exactly as a local deploy. Polling rather than pub/sub,
//! which is at-most-once: a node that was disconnected during a publish would
//! miss it for good, while the counter and the hash are state that any node
//! can read at any time, so a node that starts, or reconnects after Redis or
//! the network failed, catches up on its first round.
//!
//! A version one node refuses (for example one that needs an import only some
//! nodes grant) keeps its old version serving there; the refusal is in that
//! node's status for `wasmhost status` to show.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::control::deploy::{Controller, sha256_hex};
use crate::storage::StorageError;
use crate::storage::redis_store::RedisPool;

/// How often a node looks for announcements: well inside the 2 s in which a
/// deploy must reach every node, at one `GET` per round.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// How long a starting node keeps trying to read the cluster's versions
/// before it serves its local ones (Redis may be starting at the same time).
pub const STARTUP_SYNC_WAIT: Duration = Duration::from_secs(5);

/// How often a node rewrites its status record.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// A node whose status is older than this is shown as not seen: several
/// missed writes mean it is down or cut off from Redis.
pub const NODE_STALE_AFTER: Duration = Duration::from_secs(10);

/// Longest node name: a host name and a port.
pub const MAX_NODE_NAME: usize = 128;

/// One node's view of the shared deploy state.
pub struct Cluster {
    pool: RedisPool,
    node: String,
    /// The cluster versions this node has applied or tried, app → SHA-256.
    seen: Mutex<BTreeMap<String, String>>,
    /// The last `deploy:seq` read, `None` before the first round.
    seq: Mutex<Option<i64>>,
}

impl Cluster {
    pub fn new(pool: RedisPool, node: &str) -> Cluster {
        let node: String = node
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NODE_NAME)
            .collect();
        Cluster {
            pool,
            node,
            seen: Mutex::new(BTreeMap::new()),
            seq: Mutex::new(None),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.pool.prefix())
    }

    /// Stores `bytes` (if new) and makes `sha` the cluster's version of `app`.
    pub fn announce(&self, app: &str, sha: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let mut conn = self.pool.get()?;
        redis::pipe()
            .cmd("SET")
            .arg(self.key(&format!("deploy:module:{sha}")))
            .arg(bytes)
            .arg("NX")
            .ignore()
            .query::<()>(&mut *conn)
            .map_err(|e| self.pool.error(e))?;
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.key("deploy:current"))
            .arg(app)
            .arg(sha)
            .ignore()
            .cmd("INCR")
            .arg(self.key("deploy:seq"))
            .ignore()
            .query::<()>(&mut *conn)
            .map_err(|e| self.pool.error(e))?;
        // This node applies it itself; the sync must not apply it again.
        self.lock_seen().insert(app.to_owned(), sha.to_owned());
        Ok(())
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One round: when `deploy:seq` moved (or on the first round), applies
    /// every app whose cluster version changed since the last look.
    pub fn sync_once(&self, controller: &Controller) -> Result<(), StorageError> {
        let mut conn = self.pool.get()?;
        let seq: Option<i64> = redis::cmd("GET")
            .arg(self.key("deploy:seq"))
            .query(&mut *conn)
            .map_err(|e| self.pool.error(e))?;
        let seq = seq.unwrap_or(0);
        {
            let last = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
            if *last == Some(seq) {
                return Ok(());
            }
        }
        let current: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.key("deploy:current"))
            .query(&mut *conn)
            .map_err(|e| self.pool.error(e))?;
        drop(conn);
        for (app, sha) in &current {
            if self.lock_seen().get(app) == Some(sha) {
                continue;
            }
            if controller.current_version(app).as_deref() != Some(sha.as_str()) {
                self.apply(controller, app, sha)?;
            }
            self.lock_seen().insert(app.clone(), sha.clone());
        }
        *self.seq.lock().unwrap_or_else(PoisonError::into_inner) = Some(seq);
        Ok(())
    }

    /// Fetches, verifies and applies one announced version. A refusal is
    /// recorded by the controller and is not an error of the sync.
    fn apply(&self, controller: &Controller, app: &str, sha: &str) -> Result<(), StorageError> {
        let mut conn = self.pool.get()?;
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(&format!("deploy:module:{sha}")))
            .query(&mut *conn)
            .map_err(|e| self.pool.error(e))?;
        drop(conn);
        let outcome = match bytes {
            Some(bytes) if sha256_hex(&bytes) == sha => controller.apply_from_cluster(app, bytes),
            Some(_) => Err(crate::control::deploy::SwapError::Refused(format!(
                "the cluster's bytes for version {sha} do not have that SHA-256"
            ))),
            None => Err(crate::control::deploy::SwapError::Refused(format!(
                "the cluster names version {sha}, whose bytes are missing from Redis"
            ))),
        };
        match outcome {
            Ok(_) => tracing::info!(app, version = sha, "cluster version serving"),
            Err(e) => {
                controller.record_refusal(app, &e.to_string());
                tracing::warn!(
                    app,
                    version = sha,
                    "cluster version refused on this node: {e}"
                );
            }
        }
        Ok(())
    }

    /// Writes this node's status record.
    pub fn publish_status(&self, controller: &Controller) -> Result<(), StorageError> {
        let record = json!({
            "node": self.node,
            "seen": unix_now(),
            "apps": controller.version_summary(),
        });
        let mut conn = self.pool.get()?;
        redis::cmd("HSET")
            .arg(self.key("nodes"))
            .arg(&self.node)
            .arg(record.to_string())
            .query::<()>(&mut *conn)
            .map_err(|e| self.pool.error(e))
    }

    /// Removes this node's status record (a node that leaves on purpose).
    fn leave(&self) {
        if let Ok(mut conn) = self.pool.get() {
            let _ = redis::cmd("HDEL")
                .arg(self.key("nodes"))
                .arg(&self.node)
                .query::<()>(&mut *conn);
        }
    }

    /// Every node's status and the cluster's versions, for the admin API.
    pub fn status(&self) -> Value {
        let read =
            || -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), StorageError> {
                let mut conn = self.pool.get()?;
                let nodes = redis::cmd("HGETALL")
                    .arg(self.key("nodes"))
                    .query(&mut *conn)
                    .map_err(|e| self.pool.error(e))?;
                let current = redis::cmd("HGETALL")
                    .arg(self.key("deploy:current"))
                    .query(&mut *conn)
                    .map_err(|e| self.pool.error(e))?;
                Ok((nodes, current))
            };
        match read() {
            Ok((nodes, current)) => {
                let now = unix_now();
                let nodes: Vec<Value> = nodes
                    .values()
                    .filter_map(|text| serde_json::from_str::<Value>(text).ok())
                    .map(|mut node| {
                        let seen = node["seen"].as_u64().unwrap_or(0);
                        node["stale"] =
                            json!(now.saturating_sub(seen) > NODE_STALE_AFTER.as_secs());
                        node
                    })
                    .collect();
                json!({ "node": self.node, "redis": self.pool.url(), "versions": current, "nodes": nodes })
            }
            Err(e) => {
                json!({ "node": self.node, "redis": self.pool.url(), "error": e.to_string() })
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The sync thread; dropping the handle stops it and removes the node's
/// status record.
pub struct SyncHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    cluster: Arc<Cluster>,
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.cluster.leave();
    }
}

/// Runs a first round at once (a node that was down catches up before it
/// serves), then starts the sync thread.
pub fn start_sync(cluster: Arc<Cluster>, controller: Arc<Controller>) -> SyncHandle {
    let started = std::time::Instant::now();
    loop {
        match cluster.sync_once(&controller) {
            Ok(()) => break,
            Err(e) if started.elapsed() >= STARTUP_SYNC_WAIT => {
                tracing::warn!(
                    "cannot read the cluster's versions; serving the local ones and retrying in the background: {e}"
                );
                break;
            }
            Err(_) => std::thread::sleep(SYNC_INTERVAL),
        }
    }
    let _ = cluster.publish_status(&controller);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        let cluster = cluster.clone();
        std::thread::Builder::new()
            .name("cluster-sync".into())
            .spawn(move || sync_loop(&cluster, &controller, &stop))
            .ok()
    };
    if thread.is_none() {
        tracing::error!(
            "cannot start the cluster sync thread: deploys from other nodes will not arrive"
        );
    }
    SyncHandle {
        stop,
        thread,
        cluster,
    }
}

fn sync_loop(cluster: &Cluster, controller: &Controller, stop: &AtomicBool) {
    let mut failing = false;
    let mut last_status = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(SYNC_INTERVAL);
        match cluster.sync_once(controller) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the cluster's Redis answers again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("cluster sync failing (the node keeps serving its versions): {e}");
            }
            Err(_) => {}
        }
        if last_status.elapsed() >= STATUS_INTERVAL {
            last_status = std::time::Instant::now();
            let _ = cluster.publish_status(controller);
        }
    }
}
