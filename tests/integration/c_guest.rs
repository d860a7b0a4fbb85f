//! A guest written in C against the ABI by hand (`tests/guests/hello.c`), built as a WASI reactor with Debian's clang, lld and wasi-libc, and served through the real server.
//!
//! Needs the Debian packages `clang`, `lld`, `wasi-libc` and
//! `libclang-rt-dev-wasm32` (`.ci/run` installs them). Without them the test
//! fails under `CI=true` and says loudly that it skipped otherwise. The module
//! is built in the test's temp dir, never in the source tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::TestServer;

/// The guest's source, compiled by every run of the test.
const HELLO_C: &str = include_str!("../guests/hello.c");

/// What to install when the C toolchain is missing.
const PACKAGES: &str = "clang lld wasi-libc libclang-rt-dev-wasm32";

/// Where a WASI sysroot may be, first found wins: the `WASI_SYSROOT` a
/// developer sets, the wasi-sdk layout, and Debian's (`wasi-libc` puts its
/// libraries in `/usr/lib/wasm32-wasi`).
const SYSROOTS: &[&str] = &["/usr/share/wasi-sysroot", "/usr"];

/// Target names clang and wasi-libc use for WASI preview 1: newer ones say
/// `wasm32-wasip1`, Debian bookworm's clang 14 and wasi-libc `wasm32-wasi`.
const TARGETS: &[&str] = &["wasm32-wasip1", "wasm32-wasi"];

/// A C compiler for WASI preview 1: clang, its target and its sysroot.
struct Toolchain {
    target: &'static str,
    sysroot: PathBuf,
}

impl Toolchain {
    /// The toolchain, or what is missing.
    fn find() -> Result<Toolchain, String> {
        let runs = |program: &str| {
            Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !runs("clang") {
            return Err("no `clang` on PATH".to_owned());
        }
        if !runs("wasm-ld") {
            return Err("no `wasm-ld` (lld) on PATH".to_owned());
        }
        let roots = std::env::var("WASI_SYSROOT")
            .ok()
            .into_iter()
            .map(PathBuf::from)
            .chain(SYSROOTS.iter().map(PathBuf::from));
        let (sysroot, target) = roots
            .flat_map(|root| TARGETS.iter().map(move |t| (root.clone(), *t)))
            .find(|(root, target)| reactor_start(root, target).is_file())
            .ok_or_else(|| {
                format!(
                    "no WASI sysroot (wasi-libc): no lib/{{{}}}/crt1-reactor.o under {}",
                    TARGETS.join(","),
                    SYSROOTS.join(" or ")
                )
            })?;
        // clang links its compiler-rt builtins for the target: check they are there.
        let builtins = Command::new("clang")
            .args([&format!("--target={target}"), "-print-libgcc-file-name"])
            .output()
            .map_err(|e| format!("cannot run clang: {e}"))?;
        let builtins = String::from_utf8_lossy(&builtins.stdout).trim().to_owned();
        if !Path::new(&builtins).is_file() {
            return Err(format!(
                "no compiler-rt builtins for {target} (expected {builtins})"
            ));
        }
        Ok(Toolchain { target, sysroot })
    }

    /// Builds `source` as a WASI reactor into `out`; panics with clang's
    /// output if it fails.
    fn build_reactor(&self, source: &Path, out: &Path) {
        let output = Command::new("clang")
            .arg(format!("--target={}", self.target))
            .arg(format!("--sysroot={}", self.sysroot.display()))
            .args(["-mexec-model=reactor", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg("-o")
            .arg(out)
            .arg(source)
            .output()
            .expect("run clang");
        assert!(
            output.status.success(),
            "clang failed to build {}:\n{}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The object wasi-libc links into a reactor, under `root` for `target`.
fn reactor_start(root: &Path, target: &str) -> PathBuf {
    root.join("lib").join(target).join("crt1-reactor.o")
}

/// The toolchain, or `None` (after saying so) when it is missing locally.
fn c_toolchain() -> Option<Toolchain> {
    match Toolchain::find() {
        Ok(toolchain) => Some(toolchain),
        Err(missing) => {
            let message = format!(
                "the C guest test needs a WASI C toolchain ({missing}; apt-get install -y {PACKAGES})"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}: missing under CI");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            None
        }
    }
}

#[test]
fn a_c_guest_built_as_a_wasi_reactor_answers_through_the_server() {
    let Some(toolchain) = c_toolchain() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("hello.c");
    std::fs::write(&source, HELLO_C).expect("write the source");
    let module = dir.path().join("hello-c.wasm");
    toolchain.build_reactor(&source, &module);

    let routes = json!({
        "apps": { "c": { "module": module } },
        "routes": [
            { "path": "/c", "app": "c" },
            { "path": "/c/...", "app": "c" }
        ]
    });
    let server = TestServer::start_in(dir, routes, |_| {});
    // (request target, path the page echoes)
    let table = [
        ("/c", "/c"),
        ("/c/some/where?x=1", "/c/some/where"),
        ("/c/a%20b", "/c/a%20b"),
    ];
    for (target, path) in table {
        // Twice each: every request gets a fresh instance, whose constructors
        // ran once (in `_initialize`) and destructors never.
        for _ in 0..2 {
            let resp = server.get(target);
            assert_eq!(resp.status, 200, "{target}: {}", resp.text());
            assert_eq!(
                resp.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
            assert_eq!(
                resp.text(),
                format!("Hello from C!\npath: {path}\nconstructors run: 1\ndestructors run: 0\n"),
                "{target}"
            );
        }
    }
}
