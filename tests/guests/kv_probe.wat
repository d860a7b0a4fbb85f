;; A storage probe written by hand against docs/abi.md §6. The request body
;; is a command; the response body is one status byte ('0' + status) followed
;; by any value read:
;;   "s<value>"  kv_set("k", value)
;;   "g"         kv_get("k")
;;   "K<key>"    kv_set(key, "")  (to probe key limits)
;;   "d"         kv_delete("k")
;;   "m<keys>"   kv_get_many(keys): <keys> is an encoded key list, the value
;;               read back the encoded value list
(module
  (import "wasmhost" "kv_get" (func $kv_get (param i32 i32 i32) (result i32)))
  (import "wasmhost" "kv_set" (func $kv_set (param i32 i32 i32 i32) (result i32)))
  (import "wasmhost" "kv_delete" (func $kv_delete (param i32 i32) (result i32)))
  (import "wasmhost" "kv_get_many" (func $kv_get_many (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 16) "k")
  (data (i32.const 32) "{\"status\":200}")

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
    (local $body i32) (local $blen i32) (local $op i32) (local $st i32)
    (local $vptr i32) (local $vlen i32) (local $out i32) (local $olen i32)
    (local.set $body (i32.add (i32.add (local.get $ptr) (i32.const 4)) (i32.load (local.get $ptr))))
    (local.set $blen (i32.sub (i32.add (local.get $ptr) (local.get $len)) (local.get $body)))
    (local.set $op (i32.load8_u (local.get $body)))
    (if (i32.eq (local.get $op) (i32.const 115)) ;; 's'
      (then (local.set $st (call $kv_set (i32.const 16) (i32.const 1)
        (i32.add (local.get $body) (i32.const 1)) (i32.sub (local.get $blen) (i32.const 1))))))
    (if (i32.eq (local.get $op) (i32.const 75)) ;; 'K'
      (then (local.set $st (call $kv_set (i32.add (local.get $body) (i32.const 1))
        (i32.sub (local.get $blen) (i32.const 1)) (i32.const 0) (i32.const 0)))))
    (if (i32.eq (local.get $op) (i32.const 100)) ;; 'd'
      (then (local.set $st (call $kv_delete (i32.const 16) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 103)) ;; 'g'
      (then
        (local.set $st (call $kv_get (i32.const 16) (i32.const 1) (i32.const 64)))
        (if (i32.eqz (local.get $st))
          (then
            (local.set $vptr (i32.load (i32.const 64)))
            (local.set $vlen (i32.load (i32.const 68)))))))
    (if (i32.eq (local.get $op) (i32.const 109)) ;; 'm'
      (then
        (local.set $st (call $kv_get_many (i32.add (local.get $body) (i32.const 1))
          (i32.sub (local.get $blen) (i32.const 1)) (i32.const 64)))
        (if (i32.eqz (local.get $st))
          (then
            (local.set $vptr (i32.load (i32.const 64)))
            (local.set $vlen (i32.load (i32.const 68)))))))
    ;; [14][meta][status byte][value]
    (local.set $olen (i32.add (i32.const 19) (local.get $vlen)))
    (local.set $out (call $alloc (local.get $olen)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (i32.store (local.get $out) (i32.const 14))
    (memory.copy (i32.add (local.get $out) (i32.const 4)) (i32.const 32) (i32.const 14))
    (i32.store8 (i32.add (local.get $out) (i32.const 18)) (i32.add (i32.const 48) (local.get $st)))
    (memory.copy (i32.add (local.get $out) (i32.const 19)) (local.get $vptr) (local.get $vlen))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $olen))))
)
