//! logship: a log shipper that speaks the Fluentd Forward protocol.
//!
//! # Layout
//! - [`event`]: the event model (tag, time, msgpack record kept in wire form) and the
//!   [`event::EventSink`] trait through which inputs hand events to the pipeline.

pub mod cli;
pub mod config;
pub mod event;
pub mod filter;
pub mod forward;
pub mod msgpack_json;
pub mod output;
pub mod pipeline;
