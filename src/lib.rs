//! mcp-operator: a Kubernetes operator for MCP servers.
//!
//! The crate is laid out in rooms (see `DESIGN.md` of the project):
//! - [`address`]: which addresses a proxy may reach (shared by admission and the bridge).
//! - [`api`]: the CRD types at every served version; no I/O.
//! - [`canonical`]: JSON and YAML text with sorted keys, for what is hashed or compared.
//! - [`admission`]: pure defaulting and validation, rendered as field errors.
//! - [`conversion`]: pure conversions between API versions.
//! - [`webhook`]: the HTTPS edge serving admission and conversion reviews.
//! - [`controller`]: reconcilers; builders of children are pure functions.
//! - [`bridge`]: the in-pod MCP proxy.
//! - [`vmcp`]: the aggregating MCP endpoint of a VirtualMCPServer.
//! - [`cli`]: the subcommands of the `mcp-operator` binary.
//! - [`manifest`] and [`yaml`]: reading manifests, and writing YAML every reader agrees on.

pub mod address;
pub mod admission;
pub mod api;
pub mod bridge;
pub mod canonical;
pub mod cli;
pub mod controller;
pub mod conversion;
pub mod crypto;
pub mod manifest;
pub mod vmcp;
pub mod webhook;
pub mod yaml;
