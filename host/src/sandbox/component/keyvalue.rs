//! `wasi:keyvalue` 0.2.0-draft (store, atomics, batch) for components, over the app's own storage namespace: the same data, limits and semantics as the JSON ABI's storage functions (`docs/abi.md`).
//!
//! The interfaces are always linked, because toolchains import what they
//! might use; an app without the `storage` grant gets `access-denied` from
//! `open`. The one bucket is the app's namespace, opened as `""` or
//! `"default"`. `increment` stores decimal ASCII, as the JSON ABI's does.

use std::sync::Arc;

use wasmhost_abi::limits::{MAX_GET_MANY_BYTES, MAX_GET_MANY_KEYS, MAX_LIST_PAGE};
use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::storage::{KvStore, Namespace, StorageError};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::KvError,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// Most pages one bucket handle may hand out cursors for: each cursor keeps
/// the last key of its page for the next call.
pub const MAX_CURSORS: usize = 10_000;

/// An opened bucket: the app's namespace.
pub struct Bucket {
    /// Where `list-keys` stopped, by cursor number minus one.
    cursors: Vec<Vec<u8>>,
}

/// A keyvalue failure, as the guest sees it.
pub enum KvError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl From<StorageError> for KvError {
    fn from(e: StorageError) -> Self {
        KvError::Other(e.to_string())
    }
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KvError::Other(e.to_string())
    }
}

/// The storage one request's component may reach, if it is granted.
pub(super) type Granted = Option<(Arc<dyn KvStore>, Namespace)>;

/// The view the bindings work on: the grant and the resource table.
pub(super) struct Kv<'a> {
    pub(super) granted: &'a Granted,
    pub(super) table: &'a mut ResourceTable,
}

impl Kv<'_> {
    fn store(&self) -> Result<(&dyn KvStore, &Namespace), KvError> {
        match self.granted {
            Some((kv, ns)) => Ok((kv.as_ref(), ns)),
            None => Err(KvError::AccessDenied),
        }
    }
}

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = Kv<'a>;
}

/// Adds the three interfaces to a component linker.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> Kv<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKv>(linker, view)?;
    atomics::add_to_linker::<_, HasKv>(linker, view)?;
    batch::add_to_linker::<_, HasKv>(linker, view)?;
    Ok(())
}

impl store::Host for Kv<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvError> {
        self.store()?;
        match identifier.as_str() {
            "" | "default" => Ok(self.table.push(Bucket {
                cursors: Vec::new(),
            })?),
            _ => Err(KvError::NoSuchStore),
        }
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvError::NoSuchStore => store::Error::NoSuchStore,
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(e) => store::Error::Other(e),
        })
    }
}

impl store::HostBucket for Kv<'_> {
    fn get(&mut self, _: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, KvError> {
        let (kv, ns) = self.store()?;
        Ok(kv.get(ns, key.as_bytes())?)
    }

    fn set(&mut self, _: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), KvError> {
        let (kv, ns) = self.store()?;
        Ok(kv.set(ns, key.as_bytes(), &value)?)
    }

    fn delete(&mut self, _: Resource<Bucket>, key: String) -> Result<(), KvError> {
        let (kv, ns) = self.store()?;
        kv.delete(ns, key.as_bytes())?;
        Ok(())
    }

    fn exists(&mut self, _: Resource<Bucket>, key: String) -> Result<bool, KvError> {
        let (kv, ns) = self.store()?;
        Ok(kv.get(ns, key.as_bytes())?.is_some())
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        let after = match cursor {
            None | Some(0) => None,
            Some(n) => {
                let held = self.table.get(&bucket)?;
                let index = usize::try_from(n - 1).unwrap_or(usize::MAX);
                let key = held
                    .cursors
                    .get(index)
                    .ok_or_else(|| KvError::Other(format!("unknown cursor {n}")))?;
                Some(key.clone())
            }
        };
        let (kv, ns) = self.store()?;
        let page = kv.list(ns, b"", after.as_deref(), MAX_LIST_PAGE)?;
        let mut keys = Vec::with_capacity(page.keys.len());
        for key in page.keys {
            // Keys set through the JSON ABI may be any bytes; WIT keys are strings.
            keys.push(String::from_utf8(key).map_err(|e| {
                KvError::Other(format!("a key is not UTF-8 and cannot be listed here: {e}"))
            })?);
        }
        let cursor = match page.next {
            None => None,
            Some(last) => {
                let held = self.table.get_mut(&bucket)?;
                if held.cursors.len() >= MAX_CURSORS {
                    return Err(KvError::Other(format!(
                        "more than {MAX_CURSORS} pages listed on one bucket handle; open it again"
                    )));
                }
                held.cursors.push(last);
                Some(held.cursors.len() as u64)
            }
        };
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for Kv<'_> {
    fn increment(&mut self, _: Resource<Bucket>, key: String, delta: u64) -> Result<u64, KvError> {
        let (kv, ns) = self.store()?;
        let delta = i64::try_from(delta).map_err(|_| {
            KvError::Other("delta is over the largest 64-bit signed integer".into())
        })?;
        let value = kv.increment(ns, key.as_bytes(), delta)?;
        u64::try_from(value)
            .map_err(|_| KvError::Other(format!("the counter is negative ({value})")))
    }
}

/// Refuses a batch of more keys than one call may carry.
fn check_batch(len: usize) -> Result<(), KvError> {
    if len > MAX_GET_MANY_KEYS {
        return Err(KvError::Other(format!(
            "{len} keys in one batch, more than the limit of {MAX_GET_MANY_KEYS}"
        )));
    }
    Ok(())
}

impl batch::Host for Kv<'_> {
    fn get_many(
        &mut self,
        _: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        check_batch(keys.len())?;
        let (kv, ns) = self.store()?;
        let raw: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let mut values = Vec::with_capacity(raw.len());
        let mut total = 0usize;
        while values.len() < raw.len() {
            let got = kv.get_many(ns, &raw[values.len()..], MAX_GET_MANY_BYTES)?;
            total += got.iter().flatten().map(Vec::len).sum::<usize>();
            if total > MAX_GET_MANY_BYTES {
                return Err(KvError::Other(format!(
                    "the values come to more than {MAX_GET_MANY_BYTES} bytes; ask for fewer keys"
                )));
            }
            if got.is_empty() {
                return Err(KvError::Other("the store returned no value".into()));
            }
            values.extend(got);
        }
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, v)))
            .collect())
    }

    fn set_many(
        &mut self,
        _: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        check_batch(key_values.len())?;
        let (kv, ns) = self.store()?;
        for (key, value) in key_values {
            kv.set(ns, key.as_bytes(), &value)?;
        }
        Ok(())
    }

    fn delete_many(&mut self, _: Resource<Bucket>, keys: Vec<String>) -> Result<(), KvError> {
        check_batch(keys.len())?;
        let (kv, ns) = self.store()?;
        for key in keys {
            kv.delete(ns, key.as_bytes())?;
        }
        Ok(())
    }
}
