//! Build script: shrinks the wasm stack so a fresh instance per request starts with little memory.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only for wasm32: native test builds keep the platform defaults.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // Rust's default wasm stack is 1 MiB, which alone makes every
        // instance start with 17 pages; 64 KiB is plenty for this app.
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=65536");
        // The workspace's release profile keeps line tables, and the
        // prebuilt std brings full DWARF: ~2.7 MB of custom sections the
        // host never uses. The `name` section (for trap backtraces) stays.
        println!("cargo:rustc-link-arg-cdylib=--strip-debug");
    }
}
