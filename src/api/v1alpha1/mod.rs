//! `toolhive.stacklok.dev/v1alpha1`: the older upstream shape (ToolHive ≤ v0.14), served and
//! deprecated. Objects are stored at v1beta1; the conversion webhook translates both ways.

// Several printer columns share `type_ = "string"`; clippy reads the derive's attribute list
// as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod auth;
mod mcpserver;
mod others;
mod registry_views;
mod telemetry;
mod union;
mod vmcp;

pub use auth::*;
pub use mcpserver::*;
pub use others::*;
pub use registry_views::*;
pub use telemetry::*;
pub use union::*;
pub use vmcp::*;
