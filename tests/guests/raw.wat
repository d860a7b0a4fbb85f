;; An ABI v1 guest written by hand, without guest-sdk (docs/abi.md): it answers
;; 201 with the header X-Raw: yes and the request body echoed back byte for byte.
;; It proves the ABI can be implemented from its document alone.
(module
  (memory (export "memory") 1)
  ;; Bump allocator: everything is dropped with the instance after the request.
  (global $bump (mut i32) (i32.const 1024))
  ;; The response meta, 86 bytes, at address 16.
  (data (i32.const 16) "{\"status\":201,\"headers\":[[\"X-Raw\",\"yes\"],[\"Content-Type\",\"application/octet-stream\"]]}")

  (func (export "wasmhost_abi_version") (result i32) (i32.const 1))

  (func $alloc (export "wasmhost_alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $bump))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    ;; Grow memory until the buffer fits; 0 means "cannot allocate".
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
          (then (return (i32.const 0))))
        (br $grow)))
    (global.set $bump (local.get $end))
    (local.get $p))

  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $meta_len i32) (local $body i32) (local $body_len i32) (local $out i32) (local $out_len i32)
    ;; Request: [meta_len u32 LE][meta JSON][body]
    (local.set $meta_len (i32.load (local.get $ptr)))
    (local.set $body (i32.add (i32.add (local.get $ptr) (i32.const 4)) (local.get $meta_len)))
    (local.set $body_len (i32.sub (i32.sub (local.get $len) (i32.const 4)) (local.get $meta_len)))
    ;; Response: [86 as u32 LE][meta][body]
    (local.set $out_len (i32.add (i32.const 90) (local.get $body_len)))
    (local.set $out (call $alloc (local.get $out_len)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (i32.store (local.get $out) (i32.const 86))
    (memory.copy (i32.add (local.get $out) (i32.const 4)) (i32.const 16) (i32.const 86))
    (memory.copy (i32.add (local.get $out) (i32.const 90)) (local.get $body) (local.get $body_len))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $out_len))))
)
