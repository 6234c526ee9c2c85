//! Controllers: the only room that talks to the API server. Builders of desired children are
//! pure functions ([`children`]); reconcile loops apply them.

pub mod children;
pub mod credentials;
pub mod leader;
pub mod mcpserver;
pub mod metrics;
pub mod migrate;
pub mod podmerge;
pub mod rbac;
pub mod registry;
pub mod resolve;
