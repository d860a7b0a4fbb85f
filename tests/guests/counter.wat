;; A counter written by hand against docs/abi.md §6: every request adds one
;; to the key "count" with kv_increment and answers 200 with the new value
;; as 8 bytes, little-endian; a failed increment answers 503.
(module
  (import "wasmhost" "kv_increment" (func $kv_increment (param i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 16) "count")
  (data (i32.const 32) "{\"status\":200}")
  (data (i32.const 48) "{\"status\":503}")

  (func (export "wasmhost_abi_version") (result i32) (i32.const 1))

  (func $alloc (export "wasmhost_alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $bump))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
          (then (return (i32.const 0))))
        (br $grow)))
    (global.set $bump (local.get $end))
    (local.get $p))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $st i32) (local $out i32)
    (local.set $st (call $kv_increment (i32.const 16) (i32.const 5) (i64.const 1) (i32.const 64)))
    ;; [14][meta][8-byte value]
    (local.set $out (call $alloc (i32.const 26)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (i32.store (local.get $out) (i32.const 14))
    (if (i32.eqz (local.get $st))
      (then (memory.copy (i32.add (local.get $out) (i32.const 4)) (i32.const 32) (i32.const 14)))
      (else (memory.copy (i32.add (local.get $out) (i32.const 4)) (i32.const 48) (i32.const 14))))
    (i64.store (i32.add (local.get $out) (i32.const 18)) (i64.load (i32.const 64)))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.const 26)))
)
