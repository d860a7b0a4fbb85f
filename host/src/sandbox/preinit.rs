//! Pre-initialization: a guest's `wasmhost_init` runs once at load and its memory and globals are snapshotted into a new module (wasmtime-wizer), so every request's fresh instance starts initialized.
//!
//! The steps, each a plain function here so that the runtime only supplies
//! the instance: [`exports_init`] decides whether a module asks for it,
//! [`Preinit::run`] instruments the module (wizer exports its memories and
//! globals), lets the caller instantiate the instrumented module and call the
//! initializers, then rewrites the module with the resulting state as its
//! initial state. The rewritten module no longer exports `wasmhost_init` or
//! `_initialize`: both have run, and their effect is in the data segments.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sha2::{Digest, Sha256};
use wasmtime::{Instance, Store};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use crate::config::Grants;

/// The name of the optional export a guest runs its start-up work in (ABI
/// §2.1), as the ABI crate defines it; named here for the messages.
const INIT_EXPORT: &str = wasmhost_abi::exports::INIT.name;

/// Bumped whenever the snapshot format or what feeds it changes, so that
/// cached snapshots of an older host are never used.
const SNAPSHOT_FORMAT: &str = "wasmhost-preinit-1 wasmtime-wizer-48";

/// Most times the snapshot future is polled: every future the host hands
/// wizer is ready at once, so needing more means something else is awaited.
const MAX_POLLS: usize = 1_000;

/// Whether `bytes` is a module exporting a function named `wasmhost_init`.
/// Malformed input answers `false`: compiling it reports the real error.
pub fn exports_init(bytes: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ExportSection(exports)) => {
                return exports.into_iter().any(|e| {
                    e.is_ok_and(|e| {
                        e.name == INIT_EXPORT && e.kind == wasmparser::ExternalKind::Func
                    })
                });
            }
            Ok(wasmparser::Payload::End(_)) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    false
}

/// The name a snapshot is cached under: it depends on the module and on
/// everything its initializer can observe from the host (granted directory
/// and environment), never on the app's name.
pub fn cache_key(bytes: &[u8], grants: &Grants) -> String {
    let mut hash = Sha256::new();
    hash.update(SNAPSHOT_FORMAT.as_bytes());
    hash.update([0]);
    hash.update(format!("{:?} {:?}", grants.dir, grants.env).as_bytes());
    hash.update([0]);
    hash.update(bytes);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a snapshot with this key lives under the cache directory (beside
/// wasmtime's `modules`, never inside it: its cache worker deletes files it
/// did not write).
pub fn cache_path(cache: &Path, key: &str) -> PathBuf {
    cache.join("preinit").join(format!("{key}.wasm"))
}

/// Stores a snapshot in the cache, atomically, so that a crash never leaves
/// half a module under a cache name.
pub fn cache_store(path: &Path, snapshot: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_atomic(path, snapshot)
}

/// One pre-initialization: wizer configured for the ABI's init export.
pub struct Preinit {
    wizer: Wizer,
}

impl Default for Preinit {
    fn default() -> Self {
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_EXPORT).keep_init_func(false);
        Preinit { wizer }
    }
}

impl Preinit {
    /// Instruments `bytes`, hands the instrumented module to `initialize`
    /// (which compiles and instantiates it and calls `_initialize` and
    /// `wasmhost_init`), and returns the module rewritten with the state the
    /// instance was left in. Errors are one line for the load error.
    pub fn run<T: Send + 'static>(
        &self,
        bytes: &[u8],
        initialize: impl FnOnce(&[u8]) -> Result<(Store<T>, Instance), String>,
    ) -> Result<Vec<u8>, String> {
        let (cx, instrumented) = self
            .wizer
            .instrument(bytes)
            .map_err(|e| format!("`{INIT_EXPORT}` cannot be pre-initialized: {e:#}"))?;
        let (mut store, instance) = initialize(&instrumented)?;
        let mut state = Captured {
            store: &mut store,
            instance,
            missing: None,
        };
        let snapshot = block_on(self.wizer.snapshot(&cx, &mut state))
            .ok_or("pre-initialization did not complete synchronously")?
            .map_err(|e| format!("snapshot after `{INIT_EXPORT}` failed: {e:#}"))?;
        match state.missing {
            Some(what) => Err(format!("snapshot after `{INIT_EXPORT}` failed: {what}")),
            None => Ok(snapshot),
        }
    }
}

/// The initialized instance, as wizer reads it.
struct Captured<'a, T: 'static> {
    store: &'a mut Store<T>,
    instance: Instance,
    /// Set when wizer asked for state the instance does not have (which
    /// instrumentation should make impossible): the snapshot is then refused.
    missing: Option<String>,
}

impl<T: Send> InstanceState for Captured<'_, T> {
    fn global_get(
        &mut self,
        name: &str,
        _type_hint: ValType,
    ) -> impl Future<Output = SnapshotVal> + Send {
        let value = match self.instance.get_global(&mut *self.store, name) {
            Some(global) => match global.get(&mut *self.store) {
                wasmtime::Val::I32(x) => SnapshotVal::I32(x),
                wasmtime::Val::I64(x) => SnapshotVal::I64(x),
                wasmtime::Val::F32(x) => SnapshotVal::F32(x),
                wasmtime::Val::F64(x) => SnapshotVal::F64(x),
                wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
                other => {
                    self.missing = Some(format!("global `{name}` holds a reference ({other:?})"));
                    SnapshotVal::I32(0)
                }
            },
            None => {
                self.missing = Some(format!("no global `{name}`"));
                SnapshotVal::I32(0)
            }
        };
        std::future::ready(value)
    }

    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.missing = Some(format!("no memory `{name}`"));
                contents(&[]);
            }
        }
        std::future::ready(())
    }
}

/// Drives a future whose every await is ready at once (wizer's snapshot over
/// [`Captured`]); `None` if it still pends after [`MAX_POLLS`] polls.
fn block_on<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wasm(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[test]
    fn finds_the_init_export() {
        let table = [
            (r#"(module (func (export "wasmhost_init")))"#, true),
            (r#"(module (func (export "wasmhost_handle")))"#, false),
            (r#"(module (memory (export "wasmhost_init") 1))"#, false),
            ("(module)", false),
        ];
        for (text, want) in table {
            assert_eq!(exports_init(&wasm(text)), want, "{text}");
        }
        assert!(!exports_init(b"not wasm at all"));
        assert!(!exports_init(b""));
    }

    #[test]
    fn the_cache_key_follows_module_and_grants() {
        let a = wasm("(module)");
        let b = wasm(r#"(module (func (export "x")))"#);
        let plain = Grants::default();
        let mut with_env = Grants::default();
        with_env.env.insert("K".into(), "V".into());
        assert_eq!(cache_key(&a, &plain), cache_key(&a, &plain));
        assert_ne!(cache_key(&a, &plain), cache_key(&b, &plain));
        assert_ne!(cache_key(&a, &plain), cache_key(&a, &with_env));
    }

    #[test]
    fn snapshots_memory_and_globals_and_drops_the_init_export() {
        let module = wasm(
            r#"(module
                (memory (export "memory") 1)
                (global $g (mut i32) (i32.const 0))
                (func (export "wasmhost_init")
                    (i32.store (i32.const 100) (i32.const 0x2a2a2a2a))
                    (global.set $g (i32.const 7)))
                (func (export "read") (result i32)
                    (i32.add (i32.load (i32.const 100)) (global.get $g))))"#,
        );
        let engine = wasmtime::Engine::default();
        let snapshot = Preinit::default()
            .run(&module, |instrumented| {
                let m = wasmtime::Module::new(&engine, instrumented).map_err(|e| e.to_string())?;
                let mut store = Store::new(&engine, ());
                let instance = Instance::new(&mut store, &m, &[]).map_err(|e| e.to_string())?;
                let init = instance
                    .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
                    .map_err(|e| e.to_string())?;
                init.call(&mut store, ()).map_err(|e| e.to_string())?;
                Ok((store, instance))
            })
            .unwrap();
        assert!(!exports_init(&snapshot), "the init export is gone");
        let m = wasmtime::Module::new(&engine, &snapshot).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &m, &[]).unwrap();
        let read = instance
            .get_typed_func::<(), i32>(&mut store, "read")
            .unwrap();
        assert_eq!(read.call(&mut store, ()).unwrap(), 0x2a2a2a2a + 7);
    }

    #[test]
    fn a_module_wizer_cannot_snapshot_is_refused_with_the_reason() {
        let module = wasm(
            r#"(module
                (table 1 funcref)
                (func $f)
                (func (export "wasmhost_init") (table.set (i32.const 0) (ref.func $f)))
                (elem declare func $f))"#,
        );
        let err = Preinit::default()
            .run::<()>(&module, |_| Err("must not be reached".into()))
            .unwrap_err();
        assert!(err.contains("table.set"), "{err}");
        assert!(err.contains("`wasmhost_init`"), "{err}");
    }

    #[test]
    fn cached_snapshots_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "abc");
        cache_store(&path, b"\0asm").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0asm");
        cache_store(&path, b"\0asm2").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0asm2");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
