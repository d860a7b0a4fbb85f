;; A compare-and-swap counter written by hand against docs/abi.md §6: every
;; request reads the key "c" (8 bytes, little-endian; absent = 0) and writes
;; it back plus one with kv_cas, retrying on MISMATCH, so that no concurrent
;; update is lost. It answers 200 with the value it wrote, as 8 bytes
;; little-endian, or 503 when a call fails or 10,000 tries all lose.
(module
  (import "wasmhost" "kv_get" (func $kv_get (param i32 i32 i32) (result i32)))
  (import "wasmhost" "kv_cas" (func $kv_cas (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 16) "c")
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

  ;; One read-modify-CAS round: 0 swapped, 9 lost the race, else a failure.
  ;; The value written is left at 96.
  (func $round (result i32)
    (local $st i32) (local $elen i32)
    ;; Reuse the heap each round: what kv_get returned is copied out below.
    (global.set $bump (i32.const 4096))
    (local.set $st (call $kv_get (i32.const 16) (i32.const 1) (i32.const 64)))
    (if (i32.eqz (local.get $st))
      (then
        (if (i32.ne (i32.load (i32.const 68)) (i32.const 8)) (then (return (i32.const 99))))
        (i64.store (i32.const 80) (i64.load (i32.load (i32.const 64))))
        (local.set $elen (i32.const 8)))
      (else
        (if (i32.ne (local.get $st) (i32.const 8)) (then (return (local.get $st))))
        (i64.store (i32.const 80) (i64.const 0))
        (local.set $elen (i32.const -1))))
    (i64.store (i32.const 96) (i64.add (i64.load (i32.const 80)) (i64.const 1)))
    (call $kv_cas (i32.const 16) (i32.const 1) (i32.const 80) (local.get $elen) (i32.const 96) (i32.const 8)))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $st i32) (local $tries i32) (local $out i32)
    (block $done
      (loop $again
        (local.set $st (call $round))
        (br_if $done (i32.ne (local.get $st) (i32.const 9)))
        (local.set $tries (i32.add (local.get $tries) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $tries) (i32.const 10000)))))
    ;; [14][meta][8-byte value]
    (local.set $out (call $alloc (i32.const 26)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (i32.store (local.get $out) (i32.const 14))
    (if (i32.eqz (local.get $st))
      (then (memory.copy (i32.add (local.get $out) (i32.const 4)) (i32.const 32) (i32.const 14)))
      (else (memory.copy (i32.add (local.get $out) (i32.const 4)) (i32.const 48) (i32.const 14))))
    (i64.store (i32.add (local.get $out) (i32.const 18)) (i64.load (i32.const 96)))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.const 26)))
)
