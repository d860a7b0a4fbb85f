//! The control layer: app versions, hot swaps and rollback, the file watcher, the admin API, the cluster sync, and the supervisor that starts a host around them.

pub mod admin;
pub mod cluster;
pub mod deploy;
pub mod supervisor;
pub mod watcher;
