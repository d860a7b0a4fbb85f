//! All the `unsafe` code of the SDK: the raw side of the ABI exports and the `wasmhost.log` import.
//!
//! Used by the code that [`export_handler!`](crate::export_handler) expands to
//! and by [`crate::log`]; not meant to be called directly. Addresses are wasm32
//! linear-memory addresses carried in `i32`s (read as unsigned), so these
//! functions only make sense inside a wasm32 instance. Natively they still
//! compile, so that the macro expansion is type-checked by native builds.

use crate::log::Level;
use crate::{Request, Response, abi};

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

/// Reads the request at `ptr..ptr+len`, runs `handler` through
/// [`abi::handle_encoded`], leaks the encoded response and returns
/// `(address << 32) | length` (ABI section 4).
///
/// # Safety
///
/// `ptr..ptr+len` (both read as unsigned) must be initialised memory that is
/// valid for reads and not mutated during the call, as is the buffer the host
/// obtained from [`alloc`] and filled before calling `wasmhost_handle`.
pub unsafe fn handle<F>(ptr: i32, len: i32, handler: F) -> i64
where
    F: FnOnce(Request) -> Response,
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
    let response = abi::handle_encoded(request, handler).into_boxed_slice();
    let len = response.len();
    // Leaked on purpose: the host reads the bytes after we return, then drops
    // the instance.
    let addr = Box::leak(response).as_ptr() as usize;
    match (u32::try_from(addr), u32::try_from(len)) {
        (Ok(addr), Ok(len)) => abi::pack(addr, len),
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

/// Sends `message` to the host log through the `wasmhost.log` import.
#[cfg(target_arch = "wasm32")]
pub fn log(level: Level, message: &str) {
    // SAFETY: `message` is a live `&str`, so `ptr..ptr+len` is valid UTF-8
    // readable for the whole call; the host only reads it.
    unsafe { wasmhost_log(level as i32, message.as_ptr(), message.len()) }
}

/// Natively there is no host: writes `message` to stderr.
#[cfg(not(target_arch = "wasm32"))]
pub fn log(level: Level, message: &str) {
    eprintln!("[guest {}] {message}", level.as_str());
}
