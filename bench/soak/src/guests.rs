//! The soak's own guests, as WAT written against the ABI (after `tests/integration/sandbox.rs`): hostile ones and a two-version module to hot-swap.

/// Where the standard 200 meta lives in every guest's memory.
const OK_META: &str = r#"{"status":200,"headers":[["Content-Type","text/plain"]]}"#;

/// Times the flood guest writes its 4 KiB buffer to stdout or stderr per
/// request: 8 MiB of output against a `log_output` limit of a few KiB, in a
/// few milliseconds of guest time.
const FLOOD_WRITES: u32 = 2048;

/// Any byte string as a WAT string literal (every byte escaped).
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A guest implementing the ABI by hand. `imports` go first; `handle` is the
/// body of `wasmhost_handle` (params `$ptr`, `$len`; locals `$i`, `$r`);
/// `extra` goes at module level. Helpers: `$respond(meta, meta_len, body,
/// body_len)` and `$ok(body, body_len)` (200). Addresses 256..4096 are free
/// scratch space; the allocator starts at 4096.
fn module(imports: &str, handle: &str, extra: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 16) "{ok}")
  (func (export "wasmhost_abi_version") (result i32) (i32.const 1))
  (func $alloc (export "wasmhost_alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $bump))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then (return (i32.const 0))))
        (br $grow)))
    (global.set $bump (local.get $end))
    (local.get $p))
  (func $respond (param $m i32) (param $ml i32) (param $b i32) (param $bl i32) (result i64)
    (local $out i32) (local $n i32)
    (local.set $n (i32.add (i32.add (i32.const 4) (local.get $ml)) (local.get $bl)))
    (local.set $out (call $alloc (local.get $n)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (i32.store (local.get $out) (local.get $ml))
    (memory.copy (i32.add (local.get $out) (i32.const 4)) (local.get $m) (local.get $ml))
    (memory.copy (i32.add (i32.add (local.get $out) (i32.const 4)) (local.get $ml)) (local.get $b) (local.get $bl))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  (func $ok (param $b i32) (param $bl i32) (result i64)
    (call $respond (i32.const 16) (i32.const {ok_len}) (local.get $b) (local.get $bl)))
  {extra}
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $r i32)
    {handle})
)"#,
        ok = wat_bytes(OK_META.as_bytes()),
        ok_len = OK_META.len(),
    )
}

/// Sleeps `millis` in `poll_oneoff` (one relative clock subscription), then
/// answers 200: the attacker of the fairness benchmark.
#[allow(dead_code, reason = "used by the fairness binary only")]
pub fn sleeper(millis: u64) -> String {
    let nanos = millis * 1_000_000;
    module(
        r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(i64.store (i32.const 256) (i64.const 7))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const {nanos}))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (local.set $r (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360)))
    (call $ok (i32.const 360) (i32.const 8))"#
        ),
        "",
    )
}

/// Loops forever: stopped by its `cpu_time` limit (504).
pub fn spin() -> String {
    module("", "(loop $l (br $l)) unreachable", "")
}

/// Grows its memory until refused, then traps: stopped by its `memory` limit (500).
pub fn memory_bomb() -> String {
    module(
        "",
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable",
        "",
    )
}

/// Writes megabytes to stdout and stderr, then answers 200: its output is
/// cut at its `log_output` limit.
pub fn flood() -> String {
    module(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(memory.fill (i32.const 8192) (i32.const 120) (i32.const 4096))
    (i32.store (i32.const 256) (i32.const 8192))
    (i32.store (i32.const 260) (i32.const 4096))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const {FLOOD_WRITES})))
      (drop (call $fd_write (i32.add (i32.const 1) (i32.and (local.get $i) (i32.const 1)))
        (i32.const 256) (i32.const 1) (i32.const 300)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $ok (i32.const 0) (i32.const 0))"#
        ),
        "",
    )
}

/// Traps at once (500).
pub fn trap() -> String {
    module("", "unreachable", "")
}

/// The module hot-swapped during the run: answers 200 with `body`.
pub fn versioned(body: &str) -> String {
    module(
        "",
        &format!("(call $ok (i32.const 512) (i32.const {}))", body.len()),
        &format!("(data (i32.const 512) \"{}\")", wat_bytes(body.as_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_is_valid_wat() {
        for (name, wat) in [
            ("spin", spin()),
            ("memory_bomb", memory_bomb()),
            ("flood", flood()),
            ("trap", trap()),
            ("versioned", versioned("v1")),
        ] {
            wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn the_two_versions_differ() {
        let a = wat::parse_str(versioned("v1")).unwrap();
        let b = wat::parse_str(versioned("v2")).unwrap();
        assert_ne!(a, b);
    }
}
