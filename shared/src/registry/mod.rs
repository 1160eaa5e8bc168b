//! The model registry: the admin-curated list of models users may pick, their defaults
//! per operation type, their failover order and operator credentials (by reference).
//! [`cache::RegistryCache`] serves the [`view::RegistryView`] that routing reads from
//! memory; [`admin`] holds the admin operations; [`seed`] the first content, from the
//! price catalog.

pub mod admin;
pub mod cache;
pub mod error;
pub mod input;
pub mod seed;
pub mod view;

pub use cache::RegistryCache;
pub use error::RegistryError;
pub use view::{RegistryView, Resolved};
