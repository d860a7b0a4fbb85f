//! Build script: sets the wasm stack to 256 KiB (minijinja needs more than the hello app) and strips debug info.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only for wasm32: native test builds keep the platform defaults.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // Rust's default wasm stack is 1 MiB (17 pages per fresh instance);
        // template rendering fits comfortably in 256 KiB.
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=262144");
        // Keep the module small: drop DWARF, keep the `name` section.
        println!("cargo:rustc-link-arg-cdylib=--strip-debug");
    }
}
