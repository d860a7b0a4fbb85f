//! The application layer: what a request means. Routing a head to a site's app or static directory, who the request is from, calling the guest, and choosing the answer for every failure about an app.

pub mod cookies;
pub mod dispatch;
pub mod failure;
pub mod metrics;
pub mod origin;
pub mod site;

pub use dispatch::{Dispatcher, Outcome, Prepared};
pub use site::{Site, load_site};
