//! `toolhive.stacklok.dev/v1alpha1`: the older upstream shape (ToolHive ≤ v0.14), served and
//! deprecated. Objects are stored at v1beta1; the conversion webhook translates both ways.

mod mcpserver;
mod others;

pub use mcpserver::*;
pub use others::*;
