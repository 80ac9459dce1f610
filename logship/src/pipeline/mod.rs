//! Routing: tag patterns ([`pattern`]), record surgery helpers for filters ([`record`]), and
//! the [`router::Router`], which applies filters and hands batches to outputs.

pub mod pattern;
pub mod record;
pub mod router;

pub use router::{LabelSink, Router};
