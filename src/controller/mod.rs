//! Controllers: the only room that talks to the API server. Builders of desired children are
//! pure functions; reconcile loops apply them.

pub mod migrate;
