//! The `vmcp` runtime: one MCP endpoint aggregating the backends of a VirtualMCPServer.
//!
//! - [`config`]: the file the reconciler renders and the health report it reads back.

pub mod config;
