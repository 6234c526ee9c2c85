//! The Helm chart (`chart/`), installs through it into the in-memory API server, and the
//! operator image: one test binary, so CI links it once.
//!
//!   cargo test --test chart                      # checks + installs (needs .tools: helm, kubectl)
//!   cargo test --test chart -- --ignored image   # the image (buildah + the static build)

mod checks;
mod image;
mod install;
mod support;
