//! All the `unsafe` code of the SDK: the raw side of the ABI exports and the `wasmhost` imports (log, storage, sessions).
//!
//! It depends on nothing else in the SDK, only on `wasmhost_abi` and std:
//! it moves bytes and statuses, and the modules above it (the exports glue,
//! `log`, `kv`, `session`) give them meaning. Not meant to be called
//! directly. Addresses are wasm32 linear-memory addresses carried in `i32`s
//! (read as unsigned), so these functions only make sense inside a wasm32
//! instance. Natively [`alloc`] and [`handle`] still compile, so that the
//! expansion of `export_handler!` is type-checked by native builds.
//!
//! The import declarations below must match `wasmhost_abi::HOST_FUNCTIONS`;
//! a test in `lib.rs` reads this file and checks them.

/// Allocates `len` zeroed bytes with the global allocator, leaks them and
/// returns their address, or 0 if they cannot be allocated (ABI section 2).
///
/// `len` is read as unsigned. The buffer is never freed: the host drops the
/// whole instance after the request.
pub fn alloc(len: i32) -> i32 {
    let len = len as u32 as usize;
    let mut buf: Vec<u8> = Vec::new();
    // At least one byte, so that the address is a real allocation (never 0 or
    // a dangling placeholder) even for `len == 0`.
    if buf.try_reserve_exact(len.max(1)).is_err() {
        return 0;
    }
    buf.resize(len, 0);
    let addr = buf.as_mut_ptr() as usize;
    match u32::try_from(addr) {
        Ok(addr) => {
            std::mem::forget(buf);
            addr as i32
        }
        // Only possible natively, where addresses do not fit in 32 bits.
        Err(_) => 0,
    }
}

/// Reads the encoded request at `ptr..ptr+len`, passes it to `respond`,
/// leaks the encoded response `respond` returns and returns
/// `(address << 32) | length` (ABI section 4).
///
/// # Safety
///
/// `ptr..ptr+len` (both read as unsigned) must be initialised memory that is
/// valid for reads and not mutated during the call, as is the buffer the host
/// obtained from [`alloc`] and filled before calling `wasmhost_handle`.
pub unsafe fn handle<F>(ptr: i32, len: i32, respond: F) -> i64
where
    F: FnOnce(&[u8]) -> Vec<u8>,
{
    let len = len as u32 as usize;
    let request: &[u8] = if len == 0 {
        // `from_raw_parts` needs a non-null pointer even for an empty slice.
        &[]
    } else {
        // SAFETY: the caller guarantees that `ptr..ptr+len` is initialised,
        // readable and not mutated while this borrow lives (the host wrote it
        // into a buffer from `alloc`, which the guest owns and never frees).
        unsafe { std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len) }
    };
    let response = respond(request).into_boxed_slice();
    let len = response.len();
    // Leaked on purpose: the host reads the bytes after we return, then drops
    // the instance.
    let addr = Box::leak(response).as_ptr() as usize;
    match (u32::try_from(addr), u32::try_from(len)) {
        (Ok(addr), Ok(len)) => wasmhost_abi::pack(addr, len),
        // Only possible natively (64-bit addresses); the host never runs this.
        _ => 0,
    }
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasmhost")]
unsafe extern "C" {
    /// `wasmhost.log(level: i32, ptr: i32, len: i32)`, ABI section 6.
    #[link_name = "log"]
    fn wasmhost_log(level: i32, ptr: *const u8, len: usize);
}

/// Sends `message` to the host log at `level` (a value of
/// `wasmhost_abi::imports::log_level`) through the `wasmhost.log` import.
#[cfg(target_arch = "wasm32")]
pub fn log(level: i32, message: &str) {
    // SAFETY: `message` is a live `&str`, so `ptr..ptr+len` is valid UTF-8
    // readable for the whole call; the host only reads it.
    unsafe { wasmhost_log(level, message.as_ptr(), message.len()) }
}

/// Raw calls to the storage and session imports of ABI section 6 (wasm32
/// only). Each returns the host's `i32` status as is; the safe wrappers of
/// the `kv` and `session` modules give it meaning.
#[cfg(target_arch = "wasm32")]
pub mod host {
    use wasmhost_abi::imports::{ABSENT_LEN, OUT_SLOT_LEN, decode_out_slot};
    use wasmhost_abi::status::{BAD_ARGUMENT, OK};

    #[link(wasm_import_module = "wasmhost")]
    unsafe extern "C" {
        fn kv_get(key_ptr: *const u8, key_len: i32, out: *mut u8) -> i32;
        fn kv_set(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32) -> i32;
        fn kv_delete(key_ptr: *const u8, key_len: i32) -> i32;
        fn kv_list(
            prefix_ptr: *const u8,
            prefix_len: i32,
            after_ptr: *const u8,
            after_len: i32,
            limit: i32,
            out: *mut u8,
        ) -> i32;
        fn kv_get_many(keys_ptr: *const u8, keys_len: i32, out: *mut u8) -> i32;
        fn kv_increment(key_ptr: *const u8, key_len: i32, delta: i64, out: *mut i64) -> i32;
        fn kv_cas(
            key_ptr: *const u8,
            key_len: i32,
            expected_ptr: *const u8,
            expected_len: i32,
            new_ptr: *const u8,
            new_len: i32,
        ) -> i32;
        fn session_start(id_ptr: *const u8, id_len: i32, name_ptr: *const u8, name_len: i32)
        -> i32;
        fn session_end() -> i32;
    }

    /// The `(ptr, len)` of a byte string for the host; `BAD_ARGUMENT` for
    /// a slice too long for an `i32` length.
    fn arg(bytes: &[u8]) -> Result<(*const u8, i32), i32> {
        let len = i32::try_from(bytes.len()).map_err(|_| BAD_ARGUMENT)?;
        Ok((bytes.as_ptr(), len))
    }

    /// The `(ptr, len)` of an optional byte string: length -1 for absent.
    fn opt_arg(bytes: Option<&[u8]>) -> Result<(*const u8, i32), i32> {
        match bytes {
            Some(bytes) => arg(bytes),
            None => Ok((std::ptr::null(), ABSENT_LEN)),
        }
    }

    /// Copies out the buffer the host described in the `out` slot.
    ///
    /// # Safety
    ///
    /// The host must have returned `OK` for a call that fills `out`, so that
    /// the slot's `ptr..ptr+len` is a buffer it got from `wasmhost_alloc` and
    /// filled (ABI section 6.1). The buffer is leaked with the instance.
    unsafe fn take_out(out: [u8; OUT_SLOT_LEN]) -> Vec<u8> {
        let (ptr, len) = decode_out_slot(out);
        if len == 0 {
            return Vec::new();
        }
        // SAFETY: per this function's contract the host wrote `len`
        // initialised bytes at `ptr` in a buffer this instance owns and
        // nothing else aliases.
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }.to_vec()
    }

    /// `kv_get`: the status and, on `OK`, the value.
    pub fn get(key: &[u8]) -> (i32, Option<Vec<u8>>) {
        let (kp, kl) = match arg(key) {
            Ok(a) => a,
            Err(status) => return (status, None),
        };
        let mut out = [0u8; OUT_SLOT_LEN];
        // SAFETY: `kp..kp+kl` is a live slice and `out` 8 writable bytes,
        // both valid for the whole call.
        let status = unsafe { kv_get(kp, kl, out.as_mut_ptr()) };
        if status != OK {
            return (status, None);
        }
        // SAFETY: the host answered `OK`, so it filled `out`.
        (status, Some(unsafe { take_out(out) }))
    }

    /// `kv_set`.
    pub fn set(key: &[u8], value: &[u8]) -> i32 {
        let ((kp, kl), (vp, vl)) = match (arg(key), arg(value)) {
            (Ok(k), Ok(v)) => (k, v),
            _ => return BAD_ARGUMENT,
        };
        // SAFETY: both ranges are live slices, only read by the host.
        unsafe { kv_set(kp, kl, vp, vl) }
    }

    /// `kv_delete`.
    pub fn delete(key: &[u8]) -> i32 {
        match arg(key) {
            // SAFETY: `kp..kp+kl` is a live slice, only read by the host.
            Ok((kp, kl)) => unsafe { kv_delete(kp, kl) },
            Err(status) => status,
        }
    }

    /// `kv_list`: the status and, on `OK`, the encoded page.
    pub fn list(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> (i32, Option<Vec<u8>>) {
        let ((pp, pl), (ap, al)) = match (arg(prefix), opt_arg(after)) {
            (Ok(p), Ok(a)) => (p, a),
            _ => return (BAD_ARGUMENT, None),
        };
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let mut out = [0u8; OUT_SLOT_LEN];
        // SAFETY: the ranges are live slices (or length -1), `out` is 8
        // writable bytes, all valid for the whole call.
        let status = unsafe { kv_list(pp, pl, ap, al, limit, out.as_mut_ptr()) };
        if status != OK {
            return (status, None);
        }
        // SAFETY: the host answered `OK`, so it filled `out`.
        (status, Some(unsafe { take_out(out) }))
    }

    /// `kv_get_many`, given the encoded key list: the status and, on `OK`,
    /// the encoded value list.
    pub fn get_many(keys: &[u8]) -> (i32, Option<Vec<u8>>) {
        let (kp, kl) = match arg(keys) {
            Ok(a) => a,
            Err(status) => return (status, None),
        };
        let mut out = [0u8; OUT_SLOT_LEN];
        // SAFETY: `kp..kp+kl` is a live slice and `out` 8 writable bytes,
        // both valid for the whole call.
        let status = unsafe { kv_get_many(kp, kl, out.as_mut_ptr()) };
        if status != OK {
            return (status, None);
        }
        // SAFETY: the host answered `OK`, so it filled `out`.
        (status, Some(unsafe { take_out(out) }))
    }

    /// `kv_increment`: the status and, on `OK`, the new value.
    pub fn increment(key: &[u8], delta: i64) -> (i32, i64) {
        let (kp, kl) = match arg(key) {
            Ok(a) => a,
            Err(status) => return (status, 0),
        };
        let mut out = 0i64;
        // SAFETY: `kp..kp+kl` is a live slice and `out` 8 writable bytes.
        let status = unsafe { kv_increment(kp, kl, delta, &mut out) };
        (status, out)
    }

    /// `kv_cas`.
    pub fn cas(key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> i32 {
        let ((kp, kl), (ep, el), (np, nl)) = match (arg(key), opt_arg(expected), opt_arg(new)) {
            (Ok(k), Ok(e), Ok(n)) => (k, e, n),
            _ => return BAD_ARGUMENT,
        };
        // SAFETY: every range is a live slice (or length -1), only read.
        unsafe { kv_cas(kp, kl, ep, el, np, nl) }
    }

    /// `session_start`.
    pub fn start_session(id: &str, name: &str) -> i32 {
        let ((ip, il), (np, nl)) = match (arg(id.as_bytes()), arg(name.as_bytes())) {
            (Ok(i), Ok(n)) => (i, n),
            _ => return BAD_ARGUMENT,
        };
        // SAFETY: both ranges are live UTF-8 slices, only read by the host.
        unsafe { session_start(ip, il, np, nl) }
    }

    /// `session_end`.
    pub fn end_session() -> i32 {
        // SAFETY: no arguments; the host only changes its own state.
        unsafe { session_end() }
    }
}

/// Emits the three ABI exports (`wasmhost_abi_version`, `wasmhost_alloc`,
/// `wasmhost_handle`) for a handler `fn(Request) -> Response`.
///
/// Use it once, at the top level of the guest's `cdylib` crate:
///
/// ```no_run
/// fn my_handler(req: guest_sdk::Request) -> guest_sdk::Response {
///     guest_sdk::Response::text(format!("you asked for {}", req.path))
/// }
/// guest_sdk::export_handler!(my_handler);
/// # fn main() {}
/// ```
///
/// A request that does not decode is answered with `400 Bad Request` without
/// calling the handler. A panicking handler traps the instance (wasm code
/// aborts on panic) and the host answers `500`.
///
/// With `init = f`, it also exports `wasmhost_init`, which calls `f()`: the
/// host runs it once when it loads the module and snapshots the memory it
/// leaves, so each request's fresh instance starts with that work done (ABI
/// §2, pre-initialization). Put start-up work there: building routes,
/// parsing templates, filling lookup tables kept in `thread_local!` or
/// `OnceLock` statics. It must not rely on storage or sessions, which are
/// not available while it runs. After `f()`, it leaves
/// [`HEAP_RESERVE`](crate::glue::HEAP_RESERVE) bytes of free heap in the
/// snapshot, so that a request's allocations rarely need to grow memory.
///
/// ```no_run
/// use guest_sdk::{Request, Response, Router};
///
/// thread_local! {
///     static ROUTES: Router = Router::new().get("/", |_: &Request| Response::text("hi"));
/// }
/// fn handle(req: Request) -> Response {
///     ROUTES.with(|r| r.handle(req))
/// }
/// fn init() {
///     ROUTES.with(|_| ());
/// }
/// guest_sdk::export_handler!(handle, init = init);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:expr, init = $init:expr) => {
        $crate::export_handler!($handler);

        /// wasmhost ABI export: start-up work, run once at load and
        /// snapshotted by the host (pre-initialization).
        #[allow(unsafe_code)] // `no_mangle`: the export's name is the ABI's.
        #[unsafe(no_mangle)]
        pub extern "C" fn wasmhost_init() {
            ($init)();
            $crate::glue::reserve_heap();
        }
    };
    ($handler:expr) => {
        /// wasmhost ABI export: the version of the ABI this module implements.
        #[allow(unsafe_code)] // `no_mangle`: the export's name is the ABI's.
        #[unsafe(no_mangle)]
        pub extern "C" fn wasmhost_abi_version() -> i32 {
            $crate::abi::ABI_VERSION
        }

        /// wasmhost ABI export: allocates `len` bytes for the request, or returns 0.
        #[allow(unsafe_code)] // `no_mangle`: the export's name is the ABI's.
        #[unsafe(no_mangle)]
        pub extern "C" fn wasmhost_alloc(len: i32) -> i32 {
            $crate::ffi::alloc(len)
        }

        /// wasmhost ABI export: handles the request at `ptr..ptr+len` and
        /// returns `(response_ptr << 32) | response_len`.
        ///
        /// # Safety
        ///
        /// `ptr..ptr+len` must be readable memory of this instance holding the
        /// encoded request, as the host guarantees (ABI section 4).
        #[allow(unsafe_code)] // `no_mangle`, and the raw request pointer.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn wasmhost_handle(ptr: i32, len: i32) -> i64 {
            // SAFETY: forwarded from this function's own contract: the host
            // passes a buffer it got from `wasmhost_alloc` and filled.
            unsafe {
                $crate::ffi::handle(ptr, len, |request| {
                    $crate::glue::handle_encoded(request, $handler)
                })
            }
        }
    };
}
