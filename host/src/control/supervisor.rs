//! Starting a host with hot swap: the server, the file watcher and the admin listener around one deploy controller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Options;
use crate::admin::{self, AdminConfig, AdminHandle};
use crate::deploy::Controller;
use crate::server::{self, ServerHandle, Stopper};
use crate::watcher::{Reloader, Watcher};

/// Hot-swap settings, beside the serving `Options`.
#[derive(Debug, Clone, Default)]
pub struct HotSwap {
    /// Watch `routes.json` and the module files, and swap on change.
    pub watch: bool,
    /// The admin listener; `None` leaves it off.
    pub admin: Option<AdminConfig>,
    /// Where deployed modules are stored; `None` keeps deploys in memory only.
    pub data_dir: Option<PathBuf>,
}

/// A running host: server, watcher and admin listener. Dropping it stops all three.
pub struct Host {
    server: Option<ServerHandle>,
    watcher: Option<Watcher>,
    admin: Option<AdminHandle>,
    controller: Arc<Controller>,
}

/// Forces a reload of everything (SIGHUP).
#[derive(Clone)]
pub enum ReloadTrigger {
    Watcher(Reloader),
    Direct(Arc<Controller>),
}

impl ReloadTrigger {
    pub fn reload(&self) {
        match self {
            ReloadTrigger::Watcher(r) => r.reload(),
            ReloadTrigger::Direct(c) => {
                if let Err(e) = c.reload() {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}

impl Host {
    /// The address the server bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |s| s.local_addr())
    }

    /// The address the admin listener bound, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminHandle::local_addr)
    }

    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Option<Stopper> {
        self.server.as_ref().map(ServerHandle::stopper)
    }

    pub fn reload_trigger(&self) -> ReloadTrigger {
        match &self.watcher {
            Some(w) => ReloadTrigger::Watcher(w.reloader()),
            None => ReloadTrigger::Direct(self.controller.clone()),
        }
    }

    /// Waits until the server stops, then stops the rest.
    pub fn join(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(s) => s.join(),
            None => Ok(()),
        }
    }

    /// Stops everything and waits.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.admin.take();
        self.watcher.take();
        match self.server.take() {
            Some(s) => s.shutdown(),
            None => Ok(()),
        }
    }
}

/// Loads the routes (and deployed versions), then starts the server, the
/// watcher and the admin listener as `hot` asks.
pub fn start_host(options: Options, hot: HotSwap) -> anyhow::Result<Host> {
    let runtime = crate::new_runtime(&options)?;
    let controller = Arc::new(Controller::new(
        runtime,
        options.routes.clone(),
        hot.data_dir.clone(),
        options.max_body,
    )?);
    let server = server::start(options.server, controller.dispatcher().clone())?;
    let watcher = if hot.watch {
        Some(Watcher::start(controller.clone())?)
    } else {
        None
    };
    let admin = match &hot.admin {
        Some(cfg) => Some(admin::start(cfg, controller.clone())?),
        None => None,
    };
    Ok(Host {
        server: Some(server),
        watcher,
        admin,
        controller,
    })
}
