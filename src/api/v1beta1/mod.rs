//! `toolhive.stacklok.dev/v1beta1`: the storage version.

// Several printer columns share `type_ = "string"`; clippy reads the derive's attribute list
// as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod auth;
mod mcpserver;
mod others;
mod telemetry;
mod vmcp;

pub use auth::*;
pub use mcpserver::*;
pub use others::*;
pub use telemetry::*;
pub use vmcp::*;
