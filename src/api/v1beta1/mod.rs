//! `toolhive.stacklok.dev/v1beta1`: the storage version.

mod mcpserver;
mod others;

pub use mcpserver::*;
pub use others::*;
