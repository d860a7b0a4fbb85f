//! Loading a component: compiling it (through the compiled-module cache), linking it against WASI 0.2 and `wasi:http`, checking that it exports `wasi:http/incoming-handler`, and instantiating it once so that a component failing at start-up is refused at load.

use wasmtime::component::Component;

use super::invoke::block_on;
use super::*;

impl Runtime {
    /// Loads a component as an app's guest; every refusal is one line
    /// naming what is wrong, and the app's old version keeps serving.
    pub(in crate::sandbox) fn load_component(
        &self,
        app: &str,
        path: &Path,
        bytes: &[u8],
        limits: Limits,
        grants: Grants,
    ) -> Result<GuestModule, LoadError> {
        let abi_err = |reason: String| LoadError::Abi {
            path: path.to_owned(),
            reason,
        };
        let optimized = self.flavor_for(&limits, Tier::Optimized)?;
        let key = tier::code_key(bytes, limits.fuel.is_some());
        let baseline = self
            .baseline_for(&limits)
            .filter(|_| !self.compiled_before(&key));
        let started = Instant::now();
        let compile_err = |e: wasmtime::Error| LoadError::Compile {
            path: path.to_owned(),
            reason: format!("{:#}", anyhow::Error::from(e)),
        };
        let (component, on, first_tier) = self.compile_first(app, baseline, &optimized, |f| {
            Component::from_binary(&f.engine, bytes).map_err(compile_err)
        })?;
        let pre = link(&on, &component).map_err(abi_err)?;
        let app: Arc<str> = Arc::from(app);
        probe(&pre, &app, &limits, &grants).map_err(|e| match e {
            GuestError::CpuTime { .. } | GuestError::WallTime { .. } => abi_err(format!(
                "failed at start-up in instantiation: did not finish within the start-up limit \
                 of {LOAD_CPU_BUDGET:?}"
            )),
            e => abi_err(format!("failed at start-up in instantiation: {e}")),
        })?;
        let (pre, cell) = self.tiers(pre, first_tier, key);
        if let Some(cell) = cell {
            let code = bytes.to_vec();
            self.tier_up(app.clone(), key, cell, started, move || {
                compile_and_link(&optimized, &code)
            });
        }
        Ok(GuestModule {
            app,
            path: path.to_owned(),
            kind: Kind::Component(pre),
            limits,
            grants,
            error_pages: ErrorPages::new(),
            inline: Default::default(),
        })
    }
}

/// Links a compiled component against the flavor's WASI and `wasi:http`
/// and checks that it is a proxy; the error is the load error's reason.
fn link(flavor: &Flavor, component: &Component) -> Result<Pre, String> {
    let pre = flavor.components.instantiate_pre(component).map_err(|e| {
        format!(
            "cannot link the component: {:#} (the host provides WASI 0.2 and wasi:http 0.2, \
             docs/components.md)",
            anyhow::Error::from(e)
        )
    })?;
    Pre::new(pre).map_err(|e| {
        format!(
            "is not a wasi:http proxy: {:#} (it must export wasi:http/incoming-handler@0.2)",
            anyhow::Error::from(e)
        )
    })
}

/// Compiles and links a component on `flavor`, for the background compile
/// of its optimized code; the error is one line.
fn compile_and_link(flavor: &Flavor, bytes: &[u8]) -> Result<Pre, String> {
    let component = Component::from_binary(&flavor.engine, bytes)
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    link(flavor, &component)
}

/// Instantiates the component once under the start-up budget.
fn probe(pre: &Pre, app: &Arc<str>, limits: &Limits, grants: &Grants) -> Result<(), GuestError> {
    let mut store = new_store(
        pre.engine(),
        app,
        limits,
        grants,
        // Start-up state must not depend on stored data.
        None,
        LOAD_CPU_BUDGET,
        LOAD_CPU_BUDGET,
    )?;
    let result = block_on(async { pre.instantiate_async(&mut store).await.map(drop) })?;
    let state = store.data();
    flush_log(state);
    result.map_err(|e| classify_parts(e, &state.timing, &state.budget, limits))
}
