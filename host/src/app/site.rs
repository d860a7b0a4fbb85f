//! `Site`: one consistent configuration version (routes, loaded modules, static roots), replaced as a whole by a swap.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::config::{AppConfig, Config, RouteTarget};
use crate::router::Router;
use crate::sandbox::{GuestModule, Runtime};
use crate::static_files::StaticDir;

/// What a route points at, as indices into the site's tables.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    /// An app, and whether the route needs a signed-in user.
    App {
        app: usize,
        login: bool,
    },
    Static(usize),
}

/// One consistent configuration: routes, loaded modules, static roots.
/// Replaced as a whole, never changed in place, so a request sees one version.
pub struct Site {
    pub(super) router: Router<Target>,
    /// Where anonymous requests to login-required routes are sent.
    pub(super) login_page: String,
    pub(super) apps: Vec<Arc<GuestModule>>,
    pub(super) statics: Vec<StaticDir>,
}

impl Site {
    /// The compiler of the code an app's new requests run on, if the app is
    /// loaded (docs/ARCHITECTURE.md, "Tiers").
    pub fn tier_of(&self, app: &str) -> Option<crate::sandbox::Tier> {
        self.apps.iter().find(|g| &*g.app == app).map(|g| g.tier())
    }

    /// Loads every module and opens every static directory of a config.
    /// Modules load in parallel, one thread per core: compiling and
    /// pre-initializing new modules is CPU-bound. The error reported is that
    /// of the first failing app in the config's order.
    pub fn load(config: &Config, runtime: &Runtime) -> anyhow::Result<Site> {
        let apps: Vec<(&String, &AppConfig)> = config.apps.iter().collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, apps.len().max(1));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<anyhow::Result<GuestModule>>>> =
            Mutex::new((0..apps.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((name, app)) = apps.get(i) else {
                            break;
                        };
                        let result = runtime
                            .load_app(name, app)
                            .with_context(|| format!("{}: app \"{name}\"", config.path.display()));
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                    }
                });
            }
        });
        let loaded = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut modules = HashMap::new();
        for ((name, _), result) in apps.iter().zip(loaded) {
            let module = result.context("a module load did not finish")??;
            modules.insert((*name).clone(), Arc::new(module));
        }
        Site::assemble(config, &modules)
    }

    /// Builds a site from modules already loaded (one per app of `config`),
    /// opening the static directories; hot swaps use it to reuse unchanged modules.
    pub fn assemble(
        config: &Config,
        modules: &HashMap<String, Arc<GuestModule>>,
    ) -> anyhow::Result<Site> {
        let mut app_index = HashMap::new();
        let mut apps = Vec::new();
        for name in config.apps.keys() {
            let module = modules.get(name).with_context(|| {
                format!("{}: app \"{name}\" is not loaded", config.path.display())
            })?;
            app_index.insert(name.clone(), apps.len());
            apps.push(module.clone());
        }
        let mut statics: Vec<StaticDir> = Vec::new();
        let mut routes = Vec::new();
        for route in &config.routes {
            let target = match &route.target {
                RouteTarget::App(name) => Target::App {
                    login: route.login_required,
                    app: *app_index
                        .get(name)
                        .with_context(|| format!("route {}: unknown app \"{name}\"", route.path))?,
                },
                RouteTarget::Static(dir) => {
                    let open = StaticDir::open(dir).with_context(|| {
                        format!(
                            "{}: static directory {}",
                            config.path.display(),
                            dir.display()
                        )
                    })?;
                    statics.push(open);
                    Target::Static(statics.len() - 1)
                }
            };
            routes.push((route.host.clone(), route.path.clone(), target));
        }
        let router =
            Router::new(routes).map_err(|e| anyhow::anyhow!("{}: {e}", config.path.display()))?;
        Ok(Site {
            router,
            login_page: config.login_page.clone(),
            apps,
            statics,
        })
    }
}

/// Loads a config file and everything it names into a `Site`.
pub fn load_site(routes: &Path, runtime: &Runtime) -> anyhow::Result<Site> {
    let config = crate::config::load_config(routes)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Site::load(&config, runtime)
}
