//! Logging to the host log through the `wasmhost.log` import (to stderr when run natively).
//!
//! ```
//! guest_sdk::log::info("starting");
//! guest_sdk::log::warn(&format!("odd input: {}", 42));
//! ```

use wasmhost_abi::imports::log_level;

/// A log level, with the numeric values of ABI section 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 0: something failed.
    Error = log_level::ERROR as isize,
    /// 1: something looks wrong.
    Warn = log_level::WARN as isize,
    /// 2: normal operation.
    Info = log_level::INFO as isize,
    /// 3: detail for debugging.
    Debug = log_level::DEBUG as isize,
}

impl Level {
    /// The lowercase name of the level (`"error"`, `"warn"`, `"info"`, `"debug"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Writes `message` to the host log at `level`.
#[cfg(target_arch = "wasm32")]
pub fn log(level: Level, message: &str) {
    crate::ffi::log(level as i32, message);
}

/// Natively there is no host: writes `message` to stderr.
#[cfg(not(target_arch = "wasm32"))]
pub fn log(level: Level, message: &str) {
    eprintln!("[guest {}] {message}", level.as_str());
}

/// Logs `message` at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Logs `message` at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs `message` at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs `message` at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_have_abi_values_and_names() {
        let table = [
            (Level::Error, 0, "error"),
            (Level::Warn, 1, "warn"),
            (Level::Info, 2, "info"),
            (Level::Debug, 3, "debug"),
        ];
        for (level, value, name) in table {
            assert_eq!(level as i32, value);
            assert_eq!(level.as_str(), name);
        }
    }

    #[test]
    fn natively_logging_does_not_panic() {
        error("e");
        warn("w");
        info("i");
        debug("d");
    }
}
