//! Loading an app: compiling its module, checking it against the ABI and its grants, pre-initializing it, and the start-up probe.

use super::*;

/// Time a module's start-up (instantiation and `wasmhost_abi_version`) may
/// take at load, so that a guest looping in its initializer cannot hang a load.
pub(in crate::sandbox) const LOAD_CPU_BUDGET: Duration = Duration::from_secs(2);

impl Runtime {
    /// Loads an app as configured: its module, limits, grants and error pages.
    pub fn load_app(&self, app: &str, config: &AppConfig) -> Result<GuestModule, LoadError> {
        let bytes = std::fs::read(&config.module).map_err(|source| LoadError::Read {
            path: config.module.clone(),
            source,
        })?;
        self.load_app_bytes(app, config, &config.module, &bytes)
    }

    /// As [`Runtime::load_app`], with the module's bytes (read from `path`)
    /// already in hand, e.g. a deployed version of the app.
    pub fn load_app_bytes(
        &self,
        app: &str,
        config: &AppConfig,
        path: &Path,
        bytes: &[u8],
    ) -> Result<GuestModule, LoadError> {
        let mut error_pages = ErrorPages::new();
        for (status, page) in &config.error_pages {
            error_pages.insert(*status, read_error_page(page)?);
        }
        let mut guest = self.load_with(
            app,
            path,
            bytes,
            config.limits.clone(),
            config.grants.clone(),
            config.preinit,
        )?;
        guest.error_pages = error_pages;
        Ok(guest)
    }

    /// Compiles a module, checks its imports and exports against the ABI,
    /// instantiates it once and checks the version it declares. The app gets
    /// the default grants and no error pages; see [`Runtime::load_app`].
    pub fn load(&self, app: &str, path: &Path, limits: Limits) -> Result<GuestModule, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(app, path, &bytes, limits)
    }

    /// As `load`, from bytes already read.
    pub fn load_bytes(
        &self,
        app: &str,
        path: &Path,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<GuestModule, LoadError> {
        self.load_with(app, path, bytes, limits, Grants::default(), true)
    }

    /// Compiles `bytes`, pre-initializing them first if the module exports
    /// `wasmhost_init` and `preinit` is on, then checks the module against
    /// the ABI and the grants, links it and probes its version.
    pub(super) fn load_with(
        &self,
        app: &str,
        path: &Path,
        bytes: &[u8],
        limits: Limits,
        grants: Grants,
        preinit: bool,
    ) -> Result<GuestModule, LoadError> {
        let abi_err = |reason: String| LoadError::Abi {
            path: path.to_owned(),
            reason,
        };
        if wasmparser::Parser::is_component(bytes) {
            return self.load_component(app, path, bytes, limits, grants);
        }
        let optimized = self.flavor_for(&limits, Tier::Optimized)?;
        let baseline = self.baseline_for(&limits);
        let app: Arc<str> = Arc::from(app);
        let started = Instant::now();
        let snapshot;
        let code = if preinit && preinit::exports_init(bytes) {
            fn spec<'a>(
                flavor: &'a Flavor,
                app: &'a Arc<str>,
                limits: &'a Limits,
                grants: &'a Grants,
            ) -> StoreSpec<'a> {
                StoreSpec {
                    engine: &flavor.engine,
                    app,
                    limits,
                    grants,
                }
            }
            // The initializer runs on baseline code when there is some: the
            // snapshot does not depend on the compiler. If that fails, the
            // optimized run gives the error (or the snapshot, if the
            // baseline compiler was what failed).
            let first = baseline.as_ref().and_then(|b| {
                self.preinitialize(b, spec(b, &app, &limits, &grants), path, bytes)
                    .ok()
            });
            snapshot = match first {
                Some(s) => s,
                None => {
                    let spec = spec(&optimized, &app, &limits, &grants);
                    self.preinitialize(&optimized, spec, path, bytes)?
                }
            };
            &snapshot[..]
        } else {
            bytes
        };
        let key = tier::code_key(code, limits.fuel.is_some());
        let baseline = baseline.filter(|_| !self.compiled_before(&key));
        let (module, on, first_tier) = self.compile_first(&app, baseline, &optimized, |f| {
            compile(f, path, code, &grants)
        })?;
        let has_initialize = match module.get_export(exports::INITIALIZE.name) {
            None => false,
            Some(_) => {
                check_export(&module, &exports::INITIALIZE).map_err(abi_err)?;
                true
            }
        };
        let pre = on
            .linker
            .instantiate_pre(&module)
            .map_err(|e| abi_err(format!("cannot link: {:#}", anyhow::Error::from(e))))?;
        let (pre, cell) = self.tiers(pre, first_tier, key);
        let guest = GuestModule {
            app,
            path: path.to_owned(),
            kind: Kind::Core {
                pre,
                has_initialize,
            },
            limits,
            grants,
            error_pages: ErrorPages::new(),
            inline: Default::default(),
        };
        let version = self.probe_version(&guest).map_err(|(stage, e)| match e {
            GuestError::CpuTime { .. } | GuestError::WallTime { .. } => abi_err(format!(
                "failed at start-up in {stage}: did not finish within the start-up limit of \
                     {LOAD_CPU_BUDGET:?}"
            )),
            e => abi_err(format!("failed at start-up in {stage}: {e}")),
        })?;
        if version != ABI_VERSION {
            return Err(abi_err(format!(
                "declares ABI version {version}, but this host implements version {ABI_VERSION}"
            )));
        }
        if let Some(cell) = cell {
            let (flavor, grants) = (optimized, guest.grants.clone());
            let (path, code) = (path.to_owned(), code.to_vec());
            self.tier_up(guest.app.clone(), key, cell, started, move || {
                let module = compile(&flavor, &path, &code, &grants).map_err(|e| e.to_string())?;
                flavor
                    .linker
                    .instantiate_pre(&module)
                    .map_err(|e| format!("cannot link: {:#}", anyhow::Error::from(e)))
            });
        }
        Ok(guest)
    }

    /// Runs the module's `_initialize` and `wasmhost_init` once and returns
    /// the module rewritten to start from the state they left (wizer). The
    /// initializers run under the app's memory limit, the load time budget
    /// and its grants, but with no host services: state read from storage or
    /// sessions would be frozen into every request. With a cache directory,
    /// the snapshot is kept there and reused while module and grants match.
    pub(super) fn preinitialize(
        &self,
        flavor: &Flavor,
        spec: StoreSpec<'_>,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Vec<u8>, LoadError> {
        let abi_err = |reason: String| LoadError::Abi {
            path: path.to_owned(),
            reason,
        };
        let cached = self
            .cache
            .as_deref()
            .map(|dir| preinit::cache_path(dir, &preinit::cache_key(bytes, spec.grants)));
        if let Some(snapshot) = cached.as_deref().and_then(|p| std::fs::read(p).ok()) {
            return Ok(snapshot);
        }
        let started = Instant::now();
        let snapshot = preinit::Preinit::default()
            .run(bytes, |instrumented| {
                let module = compile(flavor, path, instrumented, spec.grants)
                    .map_err(|e| e.to_string())?;
                check_export(&module, &exports::INIT)?;
                let no_services = services::RequestServices {
                    kv: None,
                    sessions: false,
                    had_session: false,
                    action: None,
                };
                let mut store = new_store(spec, LOAD_CPU_BUDGET, LOAD_CPU_BUDGET, no_services)
                    .map_err(|e| e.to_string())?;
                let instance = flavor
                    .linker
                    .instantiate(&mut store, &module)
                    .map_err(|e| format!("cannot instantiate: {}", classify(e, &store, spec.limits)))?;
                let mut call = |name: &str| -> Result<(), String> {
                    let failed = |e, store: &Store<GuestState>| match classify(e, store, spec.limits) {
                        GuestError::CpuTime { .. } | GuestError::WallTime { .. } => format!(
                            "`{name}` did not finish within the start-up limit of {LOAD_CPU_BUDGET:?}"
                        ),
                        other => format!("`{name}` failed: {other}"),
                    };
                    let f = instance
                        .get_typed_func::<(), ()>(&mut store, name)
                        .map_err(|e| failed(e, &store))?;
                    f.call(&mut store, ()).map_err(|e| failed(e, &store))
                };
                if module.get_export(exports::INITIALIZE.name).is_some() {
                    call(exports::INITIALIZE.name)?;
                }
                let result = call(exports::INIT.name);
                flush_log(&store);
                result.map(|()| (store, instance))
            })
            .map_err(abi_err)?;
        tracing::info!(
            app = %spec.app,
            module = %path.display(),
            bytes = snapshot.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "pre-initialized with `{}`",
            exports::INIT.name
        );
        if let Some(cached) = cached
            && let Err(e) = preinit::cache_store(&cached, &snapshot)
        {
            tracing::warn!(path = %cached.display(), "cannot cache the pre-initialized module: {e}");
        }
        Ok(snapshot)
    }

    /// Instantiates the module once and calls `wasmhost_abi_version`; an
    /// error comes with the step that failed, for the load error to name.
    pub(super) fn probe_version(
        &self,
        guest: &GuestModule,
    ) -> Result<i32, (&'static str, GuestError)> {
        const INSTANTIATE: &str = "instantiation (memory, data and the start function)";
        const INITIALIZE: &str = "`_initialize`";
        const VERSION: &str = "`wasmhost_abi_version`";
        let mut store = self
            .new_store(guest, LOAD_CPU_BUDGET, LOAD_CPU_BUDGET, false)
            .map_err(|e| (INSTANTIATE, e))?;
        let fail = |stage, e, store: &Store<GuestState>| (stage, classify(e, store, &guest.limits));
        let (pre, has_initialize) = guest
            .core_on(store.engine())
            .map_err(|e| (INSTANTIATE, e))?;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| fail(INSTANTIATE, e, &store))?;
        if has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut store, exports::INITIALIZE.name)
                .map_err(|e| fail(INITIALIZE, e, &store))?;
            init.call(&mut store, ())
                .map_err(|e| fail(INITIALIZE, e, &store))?;
        }
        let f = instance
            .get_typed_func::<(), i32>(&mut store, exports::ABI_VERSION.name)
            .map_err(|e| fail(VERSION, e, &store))?;
        let version = f.call(&mut store, ()).map_err(|e| fail(VERSION, e, &store));
        flush_log(&store);
        version
    }
}
