//! Watching `routes.json` and the module files it names, and reloading them off the request path once they have been quiet.
//!
//! The watcher watches the *directories* holding those files (not the files):
//! editors and `cp`/`mv` replace a file, which a watch on the file itself
//! would lose. Events are debounced per file: nothing is loaded until a file
//! has had no event for `DEBOUNCE`, and the controller refuses to read a file
//! modified within its quiet period or changed while it was read, so a
//! half-written file is never loaded; such a file is looked at again after
//! the next quiet period.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};

use crate::control::deploy::{Controller, FileOutcome};

/// How long a file must have no event before it is loaded: long enough for
/// `cp` and editors to finish writing, short enough that a swap feels instant.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

enum Msg {
    Fs(notify::Result<notify::Event>),
    Reload,
    Stop,
}

/// A running watcher thread; dropping it stops the thread.
pub struct Watcher {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// Asks a watcher to reload everything now (SIGHUP).
#[derive(Clone)]
pub struct Reloader {
    tx: Sender<Msg>,
}

impl Reloader {
    pub fn reload(&self) {
        let _ = self.tx.send(Msg::Reload);
    }
}

impl Watcher {
    /// Starts watching the files the controller's config names.
    pub fn start(controller: Arc<Controller>) -> anyhow::Result<Watcher> {
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let fs_watcher = notify::recommended_watcher(move |event| {
            let _ = events.send(Msg::Fs(event));
        })
        .map_err(|e| anyhow::anyhow!("cannot watch files: {e}"))?;
        let mut state = Loop {
            controller,
            fs_watcher,
            dirs: BTreeSet::new(),
            routes: PathBuf::new(),
            modules: BTreeSet::new(),
            pending: HashMap::new(),
        };
        state.refresh_watches();
        let thread = std::thread::Builder::new()
            .name("watcher".into())
            .spawn(move || state.run(rx))?;
        Ok(Watcher {
            tx,
            thread: Some(thread),
        })
    }

    pub fn reloader(&self) -> Reloader {
        Reloader {
            tx: self.tx.clone(),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the watcher thread owns.
struct Loop {
    controller: Arc<Controller>,
    fs_watcher: notify::RecommendedWatcher,
    /// Directories watched now.
    dirs: BTreeSet<PathBuf>,
    /// Absolute paths of the files that matter.
    routes: PathBuf,
    modules: BTreeSet<PathBuf>,
    /// Files with events, and when each is due to be looked at.
    pending: HashMap<PathBuf, Instant>,
}

impl Loop {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let timeout = self
                .pending
                .values()
                .min()
                .map(|due| due.saturating_duration_since(Instant::now()));
            let msg = match timeout {
                Some(t) => rx.recv_timeout(t),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Fs(Ok(event))) => self.note(event),
                Ok(Msg::Fs(Err(e))) => tracing::warn!("file watch error: {e}"),
                Ok(Msg::Reload) => {
                    let routes = self.routes.clone();
                    self.pending.insert(routes, Instant::now());
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.process_due();
        }
    }

    /// Marks the files an event touched, restarting their quiet period.
    fn note(&mut self, event: notify::Event) {
        // Opening and reading (ours included) change nothing.
        if let EventKind::Access(kind) = event.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        let due = Instant::now() + DEBOUNCE;
        for path in event.paths {
            if path == self.routes || self.modules.contains(&path) {
                self.pending.insert(path, due);
            }
        }
    }

    fn process_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        for path in &due {
            self.pending.remove(path);
        }
        if due.contains(&self.routes) {
            // A whole reload reads every module file too.
            // Refusals are logged and recorded by the controller.
            let _ = self.controller.reload();
            self.pending.clear();
            self.refresh_watches();
            return;
        }
        for path in due {
            for outcome in self.controller.file_changed(&path) {
                if let FileOutcome::Unstable = outcome {
                    self.pending.insert(path.clone(), Instant::now() + DEBOUNCE);
                }
            }
        }
    }

    /// Watches the directories of the files the running config names.
    fn refresh_watches(&mut self) {
        let (routes, modules) = self.controller.watched_files();
        self.routes = absolute(&routes);
        self.modules = modules.iter().map(|m| absolute(m)).collect();
        let wanted: BTreeSet<PathBuf> = std::iter::once(&self.routes)
            .chain(self.modules.iter())
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        for dir in self.dirs.difference(&wanted) {
            let _ = self.fs_watcher.unwatch(dir);
        }
        for dir in wanted.difference(&self.dirs) {
            if let Err(e) = self.fs_watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", dir.display());
            }
        }
        self.dirs = wanted;
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
