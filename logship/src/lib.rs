//! logship: a log shipper that speaks the Fluentd Forward protocol.
//!
//! # Layout
//! - [`event`]: the event model (tag, time, msgpack record kept in wire form) and the
//!   [`event::EventSink`] trait through which inputs hand events to the pipeline.

pub mod event;
pub mod forward;
pub mod config;
pub mod filter;
pub mod msgpack_json;
pub mod output;
pub mod pipeline;
pub mod cli;
