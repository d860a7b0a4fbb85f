//! Running one request on a fresh instance of a loaded module: the store, the call, the response and its figures.

use super::*;

impl Runtime {
    /// A store for one request (or the load probe): a WASI context with only
    /// what the app is granted, its memory limiter and its time budgets.
    pub(super) fn new_store(
        &self,
        guest: &GuestModule,
        cpu: Duration,
        wall: Duration,
        had_session: bool,
    ) -> Result<Store<GuestState>, GuestError> {
        let (pre, _) = guest.core()?;
        let services = services::RequestServices {
            kv: self.storage_for(guest),
            sessions: guest.grants.host.contains(GRANT_SESSIONS),
            had_session,
            action: None,
        };
        let spec = StoreSpec {
            engine: pre.module().engine(),
            app: &guest.app,
            limits: &guest.limits,
            grants: &guest.grants,
        };
        new_store(spec, cpu, wall, services)
    }

    /// The app's storage namespace, if the app is granted storage and the
    /// runtime has a store.
    pub(super) fn storage_for(
        &self,
        guest: &GuestModule,
    ) -> Option<(Arc<dyn crate::storage::KvStore>, crate::storage::Namespace)> {
        self.services
            .get()
            .filter(|_| guest.grants.host.contains(GRANT_STORAGE))
            .and_then(|s| {
                crate::storage::Namespace::new(&guest.app)
                    .ok()
                    .map(|ns| (s.kv.clone(), ns))
            })
    }

    /// Runs one request on a fresh instance. `meta` is the encoded request
    /// meta, `body` the request body.
    pub fn invoke(
        &self,
        guest: &GuestModule,
        meta: &[u8],
        body: &[u8],
    ) -> (Result<GuestResponse, GuestError>, CallStats) {
        let (result, stats, _) = self.invoke_with(guest, meta, body, false);
        (result, stats)
    }

    /// As [`Runtime::invoke`], for a request that did or did not come with a
    /// session; also returns what the guest asked to do with the session.
    pub fn invoke_with(
        &self,
        guest: &GuestModule,
        meta: &[u8],
        body: &[u8],
        had_session: bool,
    ) -> (
        Result<GuestResponse, GuestError>,
        CallStats,
        Option<crate::sessions::SessionAction>,
    ) {
        let mut stats = CallStats::default();
        let limits = &guest.limits;
        let started = Instant::now();
        let mut store = match self.new_store(guest, limits.cpu_time, limits.wall_time, had_session)
        {
            Ok(store) => store,
            Err(e) => return (Err(e), stats, None),
        };
        let result = self.invoke_in(guest, &mut store, meta, body, &mut stats, started);
        stats.peak_memory = stats.peak_memory.max(store.data().budget.peak_memory);
        flush_log(&store);
        // A guest that failed gets no say over the session.
        let action = match result {
            Ok(_) => store.data_mut().services.action.take(),
            Err(_) => None,
        };
        (result, stats, action)
    }

    pub(super) fn invoke_in(
        &self,
        guest: &GuestModule,
        store: &mut Store<GuestState>,
        meta: &[u8],
        body: &[u8],
        stats: &mut CallStats,
        started: Instant,
    ) -> Result<GuestResponse, GuestError> {
        let fail =
            |e: wasmtime::Error, store: &Store<GuestState>| classify(e, store, &guest.limits);
        let (pre, has_initialize) = guest.core_on(store.engine())?;
        let instance = pre.instantiate(&mut *store).map_err(|e| fail(e, store))?;
        stats.instantiate = started.elapsed();
        let run_started = Instant::now();
        let memory = instance
            .get_memory(&mut *store, exports::MEMORY.name)
            .ok_or_else(|| GuestError::Malformed("no memory export".into()))?;
        stats.initial_memory = memory.data_size(&*store);
        stats.peak_memory = stats.initial_memory;
        store.data_mut().budget.peak_memory = stats.peak_memory;
        if has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut *store, exports::INITIALIZE.name)
                .map_err(|e| fail(e, store))?;
            init.call(&mut *store, ()).map_err(|e| fail(e, store))?;
        }
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut *store, exports::ALLOC.name)
            .map_err(|e| fail(e, store))?;
        let handle = instance
            .get_typed_func::<(i32, i32), i64>(&mut *store, exports::HANDLE.name)
            .map_err(|e| fail(e, store))?;

        let too_large = || GuestError::Malformed("request too large for a 32-bit guest".into());
        let total = wasmhost_abi::frame_len(meta.len(), body.len()).ok_or_else(too_large)?;
        let total_i32 = i32::try_from(total).map_err(|_| too_large())?;
        let ptr = alloc
            .call(&mut *store, total_i32)
            .map_err(|e| fail(e, store))?;
        if ptr == 0 {
            return Err(oom_or(store, &guest.limits, "wasmhost_alloc returned 0"));
        }
        let start = ptr as u32 as usize;
        {
            let data = memory.data_mut(&mut *store);
            let dest = start
                .checked_add(total)
                .and_then(|end| data.get_mut(start..end))
                .ok_or_else(|| {
                    GuestError::Malformed("wasmhost_alloc returned a buffer outside memory".into())
                })?;
            wasmhost_abi::write_frame(dest, meta, body);
        }
        let packed = handle.call(&mut *store, (ptr, total_i32));
        stats.run = run_started.elapsed();
        let packed = packed.map_err(|e| fail(e, store))?;
        let (resp_ptr, resp_len) = wasmhost_abi::unpack(packed);
        let (resp_ptr, resp_len) = (resp_ptr as usize, resp_len as usize);
        if resp_len as u64 > guest.limits.max_response.saturating_add(64 * 1024) {
            return Err(GuestError::ResponseTooLarge {
                len: resp_len as u64,
                limit: guest.limits.max_response,
            });
        }
        let data = memory.data(&*store);
        let bytes = resp_ptr
            .checked_add(resp_len)
            .and_then(|end| data.get(resp_ptr..end))
            .ok_or_else(|| {
                GuestError::Malformed(format!(
                    "response range {resp_ptr}+{resp_len} is outside memory"
                ))
            })?;
        let response = abi::decode_response(bytes).map_err(GuestError::Malformed)?;
        if response.body.len() as u64 > guest.limits.max_response {
            return Err(GuestError::ResponseTooLarge {
                len: response.body.len() as u64,
                limit: guest.limits.max_response,
            });
        }
        stats.peak_memory = stats.peak_memory.max(memory.data_size(&*store));
        store.data_mut().budget.peak_memory = stats.peak_memory;
        Ok(response)
    }
}
