//! The `wasmhost` storage and session host functions (docs/abi.md §6), each confined to the calling app; names, statuses and encodings from `wasmhost-abi`.

use std::sync::Arc;

use wasmhost_abi::imports::{
    self, ABSENT_LEN, HOST_MODULE, KV_CAS, KV_DELETE, KV_GET, KV_GET_MANY, KV_INCREMENT, KV_LIST,
    KV_SET, SESSION_END, SESSION_START,
};
use wasmhost_abi::limits::{MAX_GET_MANY_BYTES, MAX_GET_MANY_KEYS};
use wasmhost_abi::status::{ABSENT, BAD_ARGUMENT, MISMATCH, NO_MEMORY, NOT_GRANTED, OK};
use wasmhost_abi::{decode_key_list, encode_value_list};
use wasmhost_abi::{encode_key_page, exports};
use wasmtime::{Caller, Linker, Memory};

use super::GuestState;
use crate::sessions::{SessionAction, Sessions, User};
use crate::storage::{KvStore, Namespace, StorageError};

/// The stores behind the services, shared by every app (each app only ever
/// reaches its own namespace).
pub struct HostServices {
    /// The apps' key-value storage.
    pub kv: Arc<dyn KvStore>,
    /// The host's sessions.
    pub sessions: Arc<Sessions>,
}

/// What one request's guest may reach, and what it asked for.
#[derive(Default)]
pub struct RequestServices {
    /// The app's namespace in the store, if it is granted `storage`.
    pub kv: Option<(Arc<dyn KvStore>, Namespace)>,
    /// Whether the app is granted `sessions`.
    pub sessions: bool,
    /// Whether the request came with a valid session.
    pub had_session: bool,
    /// What the guest asked to do with the session.
    pub action: Option<SessionAction>,
}

/// Registers every storage and session function under `wasmhost`.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.func_wrap(HOST_MODULE, KV_GET.name, kv_get)?;
    linker.func_wrap(HOST_MODULE, KV_SET.name, kv_set)?;
    linker.func_wrap(HOST_MODULE, KV_DELETE.name, kv_delete)?;
    linker.func_wrap(HOST_MODULE, KV_LIST.name, kv_list)?;
    linker.func_wrap(HOST_MODULE, KV_GET_MANY.name, kv_get_many)?;
    linker.func_wrap(HOST_MODULE, KV_INCREMENT.name, kv_increment)?;
    linker.func_wrap(HOST_MODULE, KV_CAS.name, kv_cas)?;
    linker.func_wrap(HOST_MODULE, SESSION_START.name, session_start)?;
    linker.func_wrap(HOST_MODULE, SESSION_END.name, session_end)?;
    Ok(())
}

fn memory(caller: &mut Caller<'_, GuestState>) -> Result<Memory, i32> {
    caller
        .get_export(exports::MEMORY.name)
        .and_then(|e| e.into_memory())
        .ok_or(BAD_ARGUMENT)
}

/// Copies `len` bytes at `ptr` out of guest memory.
fn read(caller: &mut Caller<'_, GuestState>, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
    let memory = memory(caller)?;
    let start = ptr as u32 as usize;
    let len = usize::try_from(len).map_err(|_| BAD_ARGUMENT)?;
    let end = start.checked_add(len).ok_or(BAD_ARGUMENT)?;
    memory
        .data(&*caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(BAD_ARGUMENT)
}

/// As `read`, with length -1 meaning "absent".
fn read_optional(
    caller: &mut Caller<'_, GuestState>,
    ptr: i32,
    len: i32,
) -> Result<Option<Vec<u8>>, i32> {
    if len == ABSENT_LEN {
        Ok(None)
    } else {
        read(caller, ptr, len).map(Some)
    }
}

fn write(caller: &mut Caller<'_, GuestState>, at: i32, bytes: &[u8]) -> Result<(), i32> {
    let memory = memory(caller)?;
    let start = at as u32 as usize;
    let end = start.checked_add(bytes.len()).ok_or(BAD_ARGUMENT)?;
    memory
        .data_mut(&mut *caller)
        .get_mut(start..end)
        .ok_or(BAD_ARGUMENT)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Hands bytes to the guest: a buffer from its own `wasmhost_alloc`, whose
/// address and length go to `out`. A trap in the allocator aborts the call.
fn give(caller: &mut Caller<'_, GuestState>, bytes: &[u8], out: i32) -> wasmtime::Result<i32> {
    let Ok(len) = i32::try_from(bytes.len()) else {
        return Ok(NO_MEMORY);
    };
    let Some(alloc) = caller
        .get_export(exports::ALLOC.name)
        .and_then(|e| e.into_func())
    else {
        return Ok(BAD_ARGUMENT);
    };
    let ptr = alloc.typed::<i32, i32>(&*caller)?.call(&mut *caller, len)?;
    if ptr == 0 && len > 0 {
        return Ok(NO_MEMORY);
    }
    let slot = imports::encode_out_slot(ptr as u32, len as u32);
    Ok(write(caller, ptr, bytes)
        .and_then(|()| write(caller, out, &slot))
        .map_or_else(|code| code, |()| OK))
}

fn code(e: &StorageError) -> i32 {
    if let StorageError::Backend(message) = e {
        tracing::error!("storage failed: {message}");
    }
    e.code() as i32
}

/// The app's namespace, or `NOT_GRANTED`.
fn kv(caller: &Caller<'_, GuestState>) -> Result<(Arc<dyn KvStore>, Namespace), i32> {
    caller.data().services.kv.clone().ok_or(NOT_GRANTED)
}

/// Runs a host function body whose early exits are status codes.
fn status(body: impl FnOnce() -> Result<i32, i32>) -> wasmtime::Result<i32> {
    Ok(body().unwrap_or_else(|code| code))
}

fn kv_get(
    mut caller: Caller<'_, GuestState>,
    key_ptr: i32,
    key_len: i32,
    out: i32,
) -> wasmtime::Result<i32> {
    let value = (|| {
        let (store, ns) = kv(&caller)?;
        let key = read(&mut caller, key_ptr, key_len)?;
        store.get(&ns, &key).map_err(|e| code(&e))
    })();
    match value {
        Ok(Some(value)) => give(&mut caller, &value, out),
        Ok(None) => Ok(ABSENT),
        Err(code) => Ok(code),
    }
}

fn kv_set(
    mut caller: Caller<'_, GuestState>,
    key_ptr: i32,
    key_len: i32,
    val_ptr: i32,
    val_len: i32,
) -> wasmtime::Result<i32> {
    status(|| {
        let (store, ns) = kv(&caller)?;
        let key = read(&mut caller, key_ptr, key_len)?;
        let value = read(&mut caller, val_ptr, val_len)?;
        store.set(&ns, &key, &value).map_err(|e| code(&e))?;
        Ok(OK)
    })
}

fn kv_delete(
    mut caller: Caller<'_, GuestState>,
    key_ptr: i32,
    key_len: i32,
) -> wasmtime::Result<i32> {
    status(|| {
        let (store, ns) = kv(&caller)?;
        let key = read(&mut caller, key_ptr, key_len)?;
        let existed = store.delete(&ns, &key).map_err(|e| code(&e))?;
        Ok(if existed { OK } else { ABSENT })
    })
}

fn kv_get_many(
    mut caller: Caller<'_, GuestState>,
    keys_ptr: i32,
    keys_len: i32,
    out: i32,
) -> wasmtime::Result<i32> {
    let values = (|| {
        let (store, ns) = kv(&caller)?;
        let buf = read(&mut caller, keys_ptr, keys_len)?;
        let keys = decode_key_list(&buf).ok_or(BAD_ARGUMENT)?;
        if keys.len() > MAX_GET_MANY_KEYS {
            return Err(BAD_ARGUMENT);
        }
        store
            .get_many(&ns, &keys, MAX_GET_MANY_BYTES)
            .map_err(|e| code(&e))
    })();
    match values {
        Ok(values) => give(&mut caller, &encode_value_list(&values), out),
        Err(code) => Ok(code),
    }
}

fn kv_list(
    mut caller: Caller<'_, GuestState>,
    prefix_ptr: i32,
    prefix_len: i32,
    after_ptr: i32,
    after_len: i32,
    limit: i32,
    out: i32,
) -> wasmtime::Result<i32> {
    let page = (|| {
        let (store, ns) = kv(&caller)?;
        let prefix = read(&mut caller, prefix_ptr, prefix_len)?;
        let after = read_optional(&mut caller, after_ptr, after_len)?;
        let limit = usize::try_from(limit).unwrap_or(0);
        store
            .list(&ns, &prefix, after.as_deref(), limit)
            .map_err(|e| code(&e))
    })();
    let page = match page {
        Ok(page) => page,
        Err(code) => return Ok(code),
    };
    let buf = encode_key_page(&page.keys, page.next.as_deref());
    give(&mut caller, &buf, out)
}

fn kv_increment(
    mut caller: Caller<'_, GuestState>,
    key_ptr: i32,
    key_len: i32,
    delta: i64,
    out: i32,
) -> wasmtime::Result<i32> {
    status(|| {
        let (store, ns) = kv(&caller)?;
        let key = read(&mut caller, key_ptr, key_len)?;
        let value = store.increment(&ns, &key, delta).map_err(|e| code(&e))?;
        write(&mut caller, out, &value.to_le_bytes())?;
        Ok(OK)
    })
}

fn kv_cas(
    mut caller: Caller<'_, GuestState>,
    key_ptr: i32,
    key_len: i32,
    expected_ptr: i32,
    expected_len: i32,
    new_ptr: i32,
    new_len: i32,
) -> wasmtime::Result<i32> {
    status(|| {
        let (store, ns) = kv(&caller)?;
        let key = read(&mut caller, key_ptr, key_len)?;
        let expected = read_optional(&mut caller, expected_ptr, expected_len)?;
        let new = read_optional(&mut caller, new_ptr, new_len)?;
        let swapped = store
            .compare_and_swap(&ns, &key, expected.as_deref(), new.as_deref())
            .map_err(|e| code(&e))?;
        Ok(if swapped { OK } else { MISMATCH })
    })
}

fn session_start(
    mut caller: Caller<'_, GuestState>,
    id_ptr: i32,
    id_len: i32,
    name_ptr: i32,
    name_len: i32,
) -> wasmtime::Result<i32> {
    status(|| {
        if !caller.data().services.sessions {
            return Err(NOT_GRANTED);
        }
        let id = read(&mut caller, id_ptr, id_len)?;
        let name = read(&mut caller, name_ptr, name_len)?;
        let id = std::str::from_utf8(&id).map_err(|_| BAD_ARGUMENT)?;
        let name = std::str::from_utf8(&name).map_err(|_| BAD_ARGUMENT)?;
        let user = User::new(id, name).ok_or(BAD_ARGUMENT)?;
        caller.data_mut().services.action = Some(SessionAction::Start(user));
        Ok(OK)
    })
}

fn session_end(mut caller: Caller<'_, GuestState>) -> wasmtime::Result<i32> {
    status(|| {
        let services = &mut caller.data_mut().services;
        if !services.sessions {
            return Err(NOT_GRANTED);
        }
        let had = services.had_session || matches!(services.action, Some(SessionAction::Start(_)));
        services.action = Some(SessionAction::End);
        Ok(if had { OK } else { ABSENT })
    })
}
