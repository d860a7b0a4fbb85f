//! The limits of the host services a guest can rely on: storage ("Storage", "Limits") and sessions (§6.2).

/// Longest key in bytes, also for a list `prefix` and `after`: keys live in
/// the primary-key index, so they stay small.
pub const MAX_KEY_LEN: usize = 1024;

/// Longest value in bytes (1 MiB): values are copied through guest memory
/// whole, so they are capped.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// Most keys one app may hold: bounds one app's share of the disk. At the
/// limit only adding a new key fails.
pub const MAX_KEYS_PER_APP: u64 = 100_000;

/// Most keys one `kv_list` page holds; a `limit` of 0 or above it means this.
pub const MAX_LIST_PAGE: usize = 1000;

/// Most keys one `kv_get_many` call may name: one `kv_list` page, so that
/// a page of keys is read in one call.
pub const MAX_GET_MANY_KEYS: usize = MAX_LIST_PAGE;

/// Most value bytes one `kv_get_many` answer holds (8 MiB): the answer is
/// built in host memory and copied into the guest's whole, so it is capped;
/// the values beyond it are left for the next call (at least one value is
/// always returned).
pub const MAX_GET_MANY_BYTES: usize = 8 * 1024 * 1024;

/// Longest user id or display name `session_start` accepts, in bytes:
/// identities are short, and both travel in every request's meta.
pub const MAX_USER_FIELD_LEN: usize = 256;
