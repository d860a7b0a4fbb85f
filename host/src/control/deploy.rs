//! App versions and hot swaps: loads new versions off the request path, swaps the site atomically, keeps history for rollback and stores deployed modules.
//!
//! One [`Controller`] per host owns the running configuration. Every change
//! (a watched file, a deploy, a rollback, a reload) takes its lock, builds and
//! validates a complete new [`Site`] reusing the modules that did not change,
//! and only then calls [`Dispatcher::swap_site`]; a failure leaves the old
//! site serving and is recorded for the admin API.
//!
//! Deployed modules live under the data directory:
//! `DATA/deploy/APP/SHA256.wasm`, plus `DATA/deploy/APP/current` naming the
//! deployed version in force. When `current` exists at start-up, the app
//! serves that version instead of the module file named in `routes.json`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::{Dispatcher, Site};
use crate::config::{AppConfig, Config, RouteTarget, load_config};
use crate::fsutil::write_atomic;
use crate::sandbox::{GuestModule, LoadError, Runtime};

/// Largest module accepted by a deploy (and so the admin API's body limit):
/// real guests are a few MiB; anything near this is a mistake or an attack.
pub const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// Previous versions kept per app for rollback: enough to step back through a
/// bad afternoon of deploys while bounding the memory held by old module bytes.
pub const MAX_HISTORY: usize = 8;

/// A file modified more recently than this is taken to be still being written
/// and is read again later: editors and `cp` write in several steps.
pub const QUIET_PERIOD: Duration = Duration::from_millis(100);

/// Times a reload looks again at files still being written, `QUIET_PERIOD`
/// apart, before giving up: a copy that takes seconds is not a config edit.
const UNSTABLE_RETRIES: u32 = 30;

/// Where a version's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The module file named in `routes.json`.
    File,
    /// A deploy through the admin API (stored under the data directory).
    Deploy,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Deploy => "deploy",
        }
    }
}

/// One version of an app: its bytes, identified by their SHA-256.
#[derive(Clone)]
pub struct Version {
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
    bytes: Arc<[u8]>,
    pub origin: Origin,
    /// When this version was first loaded.
    pub loaded_at: SystemTime,
}

impl Version {
    fn new(bytes: Vec<u8>, origin: Origin) -> Version {
        Version {
            sha256: sha256_hex(&bytes),
            bytes: bytes.into(),
            origin,
            loaded_at: SystemTime::now(),
        }
    }
}

/// Why a change was refused. The old version keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("no app named \"{0}\"")]
    UnknownApp(String),
    #[error("module of {len} bytes exceeds the limit of {MAX_MODULE_BYTES} bytes")]
    TooLarge { len: u64 },
    #[error("module refused: {0}")]
    Refused(String),
    #[error("app \"{0}\" has no previous version to roll back to")]
    NoPrevious(String),
    #[error("config refused: {0}")]
    Config(String),
    #[error("cannot store the deployed module: {0}")]
    Storage(String),
    /// The cluster's Redis could not be reached: nothing changed anywhere.
    #[error("cannot announce the version to the cluster, so nothing changed: {0}")]
    Cluster(String),
    /// A file changed while it was being read; try again after a quiet period.
    #[error("{0} is still being written")]
    Unstable(PathBuf),
}

/// A failure kept for the admin API.
#[derive(Debug, Clone)]
struct ErrorRecord {
    message: String,
    at: SystemTime,
}

impl ErrorRecord {
    fn now(message: String) -> ErrorRecord {
        ErrorRecord {
            message,
            at: SystemTime::now(),
        }
    }

    fn to_json(&self) -> Value {
        json!({ "message": self.message, "at": unix(self.at) })
    }
}

/// What the controller knows about one app.
#[derive(Clone)]
struct AppState {
    /// The app's settings that `module` was linked with.
    config: AppConfig,
    /// The version serving now, and its loaded module.
    current: Version,
    module: Arc<GuestModule>,
    /// Earlier versions, oldest first; rollback pops the last.
    history: Vec<Version>,
    /// SHA-256 of the module file as last read, to tell a real change from a touch.
    file_sha: Option<String>,
    /// The last refused change, cleared by the next successful one.
    last_error: Option<ErrorRecord>,
}

impl AppState {
    /// Makes `version` current, keeping the old one for rollback.
    fn advance(&mut self, version: Version, module: Arc<GuestModule>) {
        let old = std::mem::replace(&mut self.current, version);
        self.history.retain(|v| v.sha256 != old.sha256);
        self.history.push(old);
        if self.history.len() > MAX_HISTORY {
            self.history.remove(0);
        }
        self.module = module;
        self.last_error = None;
    }
}

struct State {
    config: Config,
    config_loaded_at: SystemTime,
    config_error: Option<ErrorRecord>,
    apps: BTreeMap<String, AppState>,
}

/// What a watched-file change led to.
#[derive(Debug)]
pub enum FileOutcome {
    /// The bytes are those already known: nothing to do.
    Unchanged,
    /// A new version serves now.
    Swapped { app: String, sha256: String },
    /// The file is still being written: look again after a quiet period.
    Unstable,
    /// The new version was refused (and recorded); the old one keeps serving.
    Refused(String),
}

/// Owns the running configuration and every change to it.
pub struct Controller {
    runtime: Arc<Runtime>,
    dispatcher: Arc<Dispatcher>,
    routes: PathBuf,
    data_dir: Option<PathBuf>,
    state: Mutex<State>,
    /// The cluster this host belongs to, if it shares a Redis.
    cluster: Option<Arc<crate::control::cluster::Cluster>>,
}

impl Controller {
    /// Loads the config and every module (a deployed version where the data
    /// directory names one), and builds the dispatcher serving them.
    pub fn new(
        runtime: Arc<Runtime>,
        routes: PathBuf,
        data_dir: Option<PathBuf>,
        default_max_body: u64,
    ) -> anyhow::Result<Controller> {
        let config = load_config(&routes)?;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let mut apps = BTreeMap::new();
        for (name, app) in &config.apps {
            let state = initial_app(&runtime, data_dir.as_deref(), name, app)
                .map_err(|e| anyhow::anyhow!("{}: app \"{name}\": {e}", config.path.display()))?;
            apps.insert(name.clone(), state);
        }
        let site = Site::assemble(&config, &modules_of(&apps))?;
        let dispatcher = Arc::new(Dispatcher::new(runtime.clone(), site, default_max_body));
        Ok(Controller {
            runtime,
            dispatcher,
            routes,
            data_dir,
            state: Mutex::new(State {
                config,
                config_loaded_at: SystemTime::now(),
                config_error: None,
                apps,
            }),
            cluster: None,
        })
    }

    /// Makes deploys and rollbacks through this controller reach `cluster`.
    pub fn join_cluster(&mut self, cluster: Arc<crate::control::cluster::Cluster>) {
        self.cluster = Some(cluster);
    }

    /// Whether the host can serve every app fully: its store answers (a
    /// shared Redis, which also carries the cluster's deploys, is pinged).
    pub fn ready(&self) -> Result<(), String> {
        match self.runtime.services() {
            Some(services) => services.kv.ready().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The SHA-256 of the version `name` serves now.
    pub fn current_version(&self, name: &str) -> Option<String> {
        self.lock().apps.get(name).map(|a| a.current.sha256.clone())
    }

    /// Records a refused change of `name` for the status.
    pub fn record_refusal(&self, name: &str, message: &str) {
        if let Some(app) = self.lock().apps.get_mut(name) {
            app.last_error = Some(ErrorRecord::now(message.to_owned()));
        }
    }

    /// Each app's version and status, for the cluster's node records.
    pub fn version_summary(&self) -> Value {
        let st = self.lock();
        st.apps
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    json!({
                        "version": a.current.sha256,
                        "status": if a.last_error.is_some() { "error" } else { "ok" },
                        "last_error": a.last_error.as_ref().map(ErrorRecord::to_json),
                    }),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }

    /// Announces a version this host validated (no-op without a cluster).
    fn announce(&self, name: &str, version: &Version) -> Result<(), SwapError> {
        match &self.cluster {
            Some(cluster) => cluster
                .announce(name, &version.sha256, &version.bytes)
                .map_err(|e| SwapError::Cluster(e.to_string())),
            None => Ok(()),
        }
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The routes file and every module file it names, for the watcher.
    pub fn watched_files(&self) -> (PathBuf, Vec<PathBuf>) {
        let st = self.lock();
        let modules = st.config.apps.values().map(|a| a.module.clone()).collect();
        (self.routes.clone(), modules)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads `routes.json` and applies it as a whole, or rejects it as a
    /// whole. Unchanged apps keep their module (deployed versions included);
    /// apps whose module file changed load it.
    pub fn reload(&self) -> Result<Value, SwapError> {
        let mut tries = 0;
        loop {
            let mut st = self.lock();
            match self.reload_locked(&mut st) {
                Ok(summary) => return Ok(summary),
                Err(SwapError::Unstable(_)) if tries < UNSTABLE_RETRIES => {
                    drop(st);
                    tries += 1;
                    std::thread::sleep(QUIET_PERIOD);
                }
                Err(e) => {
                    tracing::warn!("reload refused; the running config keeps serving: {e}");
                    st.config_error = Some(ErrorRecord::now(e.to_string()));
                    return Err(e);
                }
            }
        }
    }

    fn reload_locked(&self, st: &mut State) -> Result<Value, SwapError> {
        let before = file_stamp(&self.routes);
        let config = load_config(&self.routes).map_err(|e| {
            if file_stamp(&self.routes) != before || recently_modified(&self.routes) {
                SwapError::Unstable(self.routes.clone())
            } else {
                SwapError::Config(e.to_string())
            }
        })?;
        let mut apps = BTreeMap::new();
        let mut swapped = Vec::new();
        for (name, app) in &config.apps {
            let context = |e: String| {
                SwapError::Config(format!("{}: app \"{name}\": {e}", config.path.display()))
            };
            let new_state = match st.apps.get(name) {
                None => initial_app(&self.runtime, self.data_dir.as_deref(), name, app)
                    .map_err(|e| context(e.to_string()))?,
                Some(old) => {
                    let bytes = read_stable(&app.module)?;
                    let sha = sha256_hex(&bytes);
                    let mut state = old.clone();
                    if old.file_sha.as_deref() != Some(sha.as_str()) {
                        let version = Version::new(bytes, Origin::File);
                        let module = compile(&self.runtime, name, app, &app.module, &version)
                            .map_err(|e| context(e.to_string()))?;
                        state.config = app.clone();
                        state.advance(version, Arc::new(module));
                        state.file_sha = Some(sha);
                    } else if old.config != *app {
                        // Same bytes, new settings: relink the current version.
                        let path = self.version_path(name, &state.current, app);
                        let module = compile(&self.runtime, name, app, &path, &state.current)
                            .map_err(|e| context(e.to_string()))?;
                        state.config = app.clone();
                        state.module = Arc::new(module);
                    }
                    state
                }
            };
            if st
                .apps
                .get(name)
                .is_none_or(|old| old.current.sha256 != new_state.current.sha256)
            {
                swapped.push(name.clone());
            }
            apps.insert(name.clone(), new_state);
        }
        let site = Site::assemble(&config, &modules_of(&apps))
            .map_err(|e| SwapError::Config(format!("{e:#}")))?;
        for name in &swapped {
            if let Some(state) = apps.get(name)
                && state.current.origin == Origin::File
            {
                self.clear_pointer(name);
            }
        }
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        self.dispatcher.swap_site(site);
        for name in &swapped {
            if st.apps.contains_key(name) {
                self.count_swap(name);
            }
        }
        st.config = config;
        st.apps = apps;
        st.config_loaded_at = SystemTime::now();
        st.config_error = None;
        tracing::info!(apps = st.apps.len(), swapped = ?swapped, "config reloaded");
        Ok(json!({ "reloaded": true, "swapped": swapped }))
    }

    /// Loads the module file at `path` for every app that names it, if its
    /// bytes changed. A file still being written is reported `Unstable`.
    pub fn file_changed(&self, path: &Path) -> Vec<FileOutcome> {
        let mut st = self.lock();
        let names: Vec<String> = st
            .config
            .apps
            .iter()
            .filter(|(_, a)| same_file(&a.module, path))
            .map(|(n, _)| n.clone())
            .collect();
        let mut outcomes = Vec::new();
        for name in names {
            outcomes.push(self.file_changed_locked(&mut st, &name));
        }
        outcomes
    }

    fn file_changed_locked(&self, st: &mut State, name: &str) -> FileOutcome {
        let Some(app) = st.config.apps.get(name).cloned() else {
            return FileOutcome::Unchanged;
        };
        let stamp = file_stamp(&app.module);
        let bytes = match read_stable(&app.module) {
            Ok(bytes) => bytes,
            Err(SwapError::Unstable(_)) => return FileOutcome::Unstable,
            Err(e) => {
                // Gone or unreadable: a replace may be under way; if it stays
                // so, the app keeps serving what it has.
                tracing::debug!(app = name, "module file not readable: {e}");
                return FileOutcome::Unstable;
            }
        };
        let sha = sha256_hex(&bytes);
        let Some(state) = st.apps.get(name) else {
            return FileOutcome::Unchanged;
        };
        if state.file_sha.as_deref() == Some(sha.as_str()) {
            return FileOutcome::Unchanged;
        }
        let version = Version::new(bytes, Origin::File);
        let module = match compile(&self.runtime, name, &app, &app.module, &version) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                if file_stamp(&app.module) != stamp {
                    return FileOutcome::Unstable;
                }
                let message = e.to_string();
                tracing::warn!(
                    app = name,
                    "new module refused; the old version keeps serving: {message}"
                );
                if let Some(state) = st.apps.get_mut(name) {
                    state.last_error = Some(ErrorRecord::now(message.clone()));
                }
                return FileOutcome::Refused(message);
            }
        };
        let mut new_state = state.clone();
        new_state.advance(version, module);
        new_state.file_sha = Some(sha.clone());
        if let Err(e) = self.install(st, name, new_state) {
            let message = e.to_string();
            if let Some(state) = st.apps.get_mut(name) {
                state.last_error = Some(ErrorRecord::now(message.clone()));
            }
            return FileOutcome::Refused(message);
        }
        self.clear_pointer(name);
        tracing::info!(app = name, version = %sha, "module file changed; new version serving");
        FileOutcome::Swapped {
            app: name.to_owned(),
            sha256: sha,
        }
    }

    /// Validates `bytes` as the app's new version, stores it, announces it
    /// to the cluster (if any), and swaps it in.
    pub fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Value, SwapError> {
        self.deploy_as(name, bytes, true)
    }

    /// Applies a version another node announced: as a deploy, without
    /// announcing it again; when it is the version before the current one,
    /// as a rollback, so that every node's history stays the same.
    pub fn apply_from_cluster(&self, name: &str, bytes: Vec<u8>) -> Result<Value, SwapError> {
        let sha = sha256_hex(&bytes);
        let is_previous = self
            .lock()
            .apps
            .get(name)
            .and_then(|a| a.history.last())
            .is_some_and(|v| v.sha256 == sha);
        if is_previous {
            self.rollback_as(name, false)
        } else {
            self.deploy_as(name, bytes, false)
        }
    }

    fn deploy_as(&self, name: &str, bytes: Vec<u8>, announce: bool) -> Result<Value, SwapError> {
        if bytes.len() as u64 > MAX_MODULE_BYTES {
            return Err(SwapError::TooLarge {
                len: bytes.len() as u64,
            });
        }
        let mut st = self.lock();
        let state = st
            .apps
            .get(name)
            .ok_or_else(|| SwapError::UnknownApp(name.to_owned()))?
            .clone();
        let version = Version::new(bytes, Origin::Deploy);
        if version.sha256 == state.current.sha256 {
            if announce {
                // The cluster converges on it even if it had another.
                self.announce(name, &version)?;
            }
            return Ok(json!({ "app": name, "version": version.sha256, "changed": false }));
        }
        let path = self.version_path(name, &version, &state.config);
        let module = match compile(&self.runtime, name, &state.config, &path, &version) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                // It was never stored: name it by what it is, not by a path.
                let message = e
                    .to_string()
                    .replace(&path.display().to_string(), "uploaded module");
                tracing::warn!(
                    app = name,
                    "deploy refused; the old version keeps serving: {message}"
                );
                if let Some(s) = st.apps.get_mut(name) {
                    s.last_error = Some(ErrorRecord::now(message.clone()));
                }
                return Err(SwapError::Refused(message));
            }
        };
        if announce {
            self.announce(name, &version)?;
        }
        self.store(name, &version)
            .map_err(|e| SwapError::Storage(e.to_string()))?;
        let previous = state.current.sha256.clone();
        let sha = version.sha256.clone();
        let mut new_state = state;
        new_state.advance(version, module);
        self.install(&mut st, name, new_state)?;
        tracing::info!(app = name, version = %sha, "deployed");
        Ok(json!({ "app": name, "version": sha, "previous": previous, "changed": true }))
    }

    /// Swaps the app back to the version before the current one.
    pub fn rollback(&self, name: &str) -> Result<Value, SwapError> {
        self.rollback_as(name, true)
    }

    fn rollback_as(&self, name: &str, announce: bool) -> Result<Value, SwapError> {
        let mut st = self.lock();
        let state = st
            .apps
            .get(name)
            .ok_or_else(|| SwapError::UnknownApp(name.to_owned()))?
            .clone();
        let mut new_state = state.clone();
        let version = new_state
            .history
            .pop()
            .ok_or_else(|| SwapError::NoPrevious(name.to_owned()))?;
        let path = self.version_path(name, &version, &state.config);
        let module = compile(&self.runtime, name, &state.config, &path, &version)
            .map_err(|e| SwapError::Refused(e.to_string()))?;
        if announce {
            self.announce(name, &version)?;
        }
        match version.origin {
            Origin::Deploy => self
                .store(name, &version)
                .map_err(|e| SwapError::Storage(e.to_string()))?,
            Origin::File => self.clear_pointer(name),
        }
        let sha = version.sha256.clone();
        new_state.current = version;
        new_state.module = Arc::new(module);
        new_state.last_error = None;
        self.install(&mut st, name, new_state)?;
        tracing::info!(app = name, version = %sha, from = %state.current.sha256, "rolled back");
        Ok(json!({ "app": name, "version": sha, "previous": state.current.sha256 }))
    }

    /// Builds a site with `new_state` for `name` and every other app as is,
    /// swaps it in and records the state.
    fn install(&self, st: &mut State, name: &str, new_state: AppState) -> Result<(), SwapError> {
        let mut modules = modules_of(&st.apps);
        modules.insert(name.to_owned(), new_state.module.clone());
        let site = Site::assemble(&st.config, &modules)
            .map_err(|e| SwapError::Refused(format!("{e:#}")))?;
        self.dispatcher.swap_site(site);
        st.apps.insert(name.to_owned(), new_state);
        self.count_swap(name);
        Ok(())
    }

    fn count_swap(&self, name: &str) {
        self.dispatcher
            .metrics()
            .app(name)
            .swaps
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Every app with its routes, version, load time and status, as JSON.
    pub fn status(&self) -> Value {
        let site = self.dispatcher().site();
        let st = self.lock();
        let apps: Vec<Value> = st
            .apps
            .iter()
            .map(|(name, state)| {
                let routes: Vec<Value> = st
                    .config
                    .routes
                    .iter()
                    .filter(|r| matches!(&r.target, RouteTarget::App(a) if a == name))
                    .map(|r| json!({ "host": r.host, "path": r.path }))
                    .collect();
                json!({
                    "name": name,
                    "module": state.config.module.display().to_string(),
                    "routes": routes,
                    "version": state.current.sha256,
                    "origin": state.current.origin.as_str(),
                    "loaded_at": unix(state.current.loaded_at),
                    "tier": site.tier_of(name).map(|t| t.name()),
                    "status": if state.last_error.is_some() { "error" } else { "ok" },
                    "last_error": state.last_error.as_ref().map(ErrorRecord::to_json),
                    "previous": state.history.iter().rev().map(|v| v.sha256.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut status = json!({
            "routes": self.routes.display().to_string(),
            "config_loaded_at": unix(st.config_loaded_at),
            "config_error": st.config_error.as_ref().map(ErrorRecord::to_json),
            "apps": apps,
        });
        drop(st);
        if let Some(cluster) = &self.cluster {
            status["cluster"] = cluster.status();
        }
        status
    }

    /// Where a version's bytes are (or would be) on disk, for error messages
    /// and the module's recorded path.
    fn version_path(&self, name: &str, version: &Version, app: &AppConfig) -> PathBuf {
        match (version.origin, &self.data_dir) {
            (Origin::Deploy, Some(dir)) => {
                deploy_dir(dir, name).join(format!("{}.wasm", version.sha256))
            }
            (Origin::Deploy, None) => PathBuf::from(format!("deploy:{}", version.sha256)),
            (Origin::File, _) => app.module.clone(),
        }
    }

    /// Stores a deployed version and points `current` at it.
    fn store(&self, name: &str, version: &Version) -> io::Result<()> {
        let Some(data) = &self.data_dir else {
            return Ok(());
        };
        let dir = deploy_dir(data, name);
        fs::create_dir_all(&dir)?;
        let module = dir.join(format!("{}.wasm", version.sha256));
        if fs::read(&module)
            .ok()
            .is_none_or(|b| sha256_hex(&b) != version.sha256)
        {
            write_atomic(&module, &version.bytes)?;
        }
        write_atomic(
            &dir.join("current"),
            format!("{}\n", version.sha256).as_bytes(),
        )
    }

    /// Makes the module file authoritative again after a restart.
    fn clear_pointer(&self, name: &str) {
        if let Some(data) = &self.data_dir {
            let pointer = deploy_dir(data, name).join("current");
            if let Err(e) = fs::remove_file(&pointer)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", pointer.display());
            }
        }
    }
}

/// Loads an app for the first time: its module file, and in front of it the
/// deployed version the data directory names, if any.
fn initial_app(
    runtime: &Runtime,
    data_dir: Option<&Path>,
    name: &str,
    app: &AppConfig,
) -> Result<AppState, LoadError> {
    let bytes = fs::read(&app.module).map_err(|source| LoadError::Read {
        path: app.module.clone(),
        source,
    })?;
    let version = Version::new(bytes, Origin::File);
    let file_sha = Some(version.sha256.clone());
    let deployed = data_dir.and_then(|d| deployed_version(d, name));
    let file_module = compile(runtime, name, app, &app.module, &version);
    if let Some((path, deployed)) = deployed {
        match compile(runtime, name, app, &path, &deployed) {
            Ok(module) => {
                tracing::info!(app = name, version = %deployed.sha256, "serving the deployed version");
                let history = match file_module {
                    Ok(_) if version.sha256 != deployed.sha256 => vec![version],
                    _ => Vec::new(),
                };
                return Ok(AppState {
                    config: app.clone(),
                    current: deployed,
                    module: Arc::new(module),
                    history,
                    file_sha,
                    last_error: None,
                });
            }
            Err(e) => {
                tracing::warn!(
                    app = name,
                    "deployed version refused, serving the module file: {e}"
                );
            }
        }
    }
    Ok(AppState {
        config: app.clone(),
        current: version,
        module: Arc::new(file_module?),
        history: Vec::new(),
        file_sha,
        last_error: None,
    })
}

/// The deployed version `DATA/deploy/APP/current` names, if it is intact.
fn deployed_version(data: &Path, name: &str) -> Option<(PathBuf, Version)> {
    let dir = deploy_dir(data, name);
    let pointer = fs::read_to_string(dir.join("current")).ok()?;
    let sha = pointer.trim();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        tracing::warn!(app = name, "ignoring a malformed deploy pointer");
        return None;
    }
    let path = dir.join(format!("{sha}.wasm"));
    let bytes = fs::read(&path).ok()?;
    let mut version = Version::new(bytes, Origin::Deploy);
    if version.sha256 != sha {
        tracing::warn!(
            app = name,
            "ignoring {}: its content does not match its name",
            path.display()
        );
        return None;
    }
    version.loaded_at = SystemTime::now();
    Some((path, version))
}

fn deploy_dir(data: &Path, name: &str) -> PathBuf {
    data.join("deploy").join(name)
}

/// Compiles, links and validates one version for an app.
fn compile(
    runtime: &Runtime,
    name: &str,
    app: &AppConfig,
    path: &Path,
    version: &Version,
) -> Result<GuestModule, LoadError> {
    runtime.load_app_bytes(name, app, path, &version.bytes)
}

fn modules_of(apps: &BTreeMap<String, AppState>) -> HashMap<String, Arc<GuestModule>> {
    apps.iter()
        .map(|(n, s)| (n.clone(), s.module.clone()))
        .collect()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Size and modification time: a change of either means the file changed.
fn file_stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Whether the file was modified within the quiet period (a future time counts as not).
fn recently_modified(path: &Path) -> bool {
    file_stamp(path)
        .and_then(|(_, m)| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age < QUIET_PERIOD)
}

/// Reads a file that has been quiet for `QUIET_PERIOD` and did not change
/// while being read; otherwise `Unstable`.
fn read_stable(path: &Path) -> Result<Vec<u8>, SwapError> {
    let unstable = || SwapError::Unstable(path.to_owned());
    let before = file_stamp(path);
    if recently_modified(path) {
        return Err(unstable());
    }
    let bytes = fs::read(path)
        .map_err(|e| SwapError::Config(format!("cannot read {}: {e}", path.display())))?;
    if before.is_none()
        || file_stamp(path) != before
        || before.is_some_and(|(len, _)| len != bytes.len() as u64)
    {
        return Err(unstable());
    }
    Ok(bytes)
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || std::path::absolute(a).ok() == std::path::absolute(b).ok()
}

/// Seconds since the Unix epoch.
fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
