//! The gateway library: everything that is not a `main()`.
//!
//! The same routers run inside the Lambda functions (`functions/llm-settings`, ...) and
//! inside the single local binary (`functions/local`); only the store, vault and identity
//! backends handed to the routers' states ([`http::AppState`], [`generate::GenerateState`],
//! [`http::UsageState`]) differ between the two shapes.

#[cfg(feature = "aws")]
pub mod aws;
pub mod context;
pub mod generate;
pub mod http;
pub mod identity;
#[cfg(feature = "aws")]
pub mod lambda_streaming;
pub mod logging;
pub mod metrics;
pub mod money;
pub mod pricing;
pub mod provider;
pub mod providers;
pub mod ratelimit;
pub mod registry;
pub mod sdk;
pub mod secret;
pub mod settings;
pub mod store;
pub mod usage;
pub mod vault;

pub use http::error::ApiError;
