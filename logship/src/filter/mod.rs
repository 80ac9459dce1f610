//! Filters: transform the events of a batch before they reach an output.
//!
//! - [`parser`]: parse a field (Docker's `log`) as JSON and merge it into the record;
//! - [`record_transformer`]: add fields (`<record>` with `${tag}`, `${tag_parts[N]}`,
//!   `${hostname}`, `${field}` placeholders), remove or keep keys;
//! - [`concat`]: join Docker's partial lines (`partial_message`/`partial_id`/`partial_ordinal`/
//!   `partial_last`) back into one record, flushing incomplete ones after a timeout.

pub mod concat;
pub mod parser;
pub mod record_transformer;
pub mod time_parse;

use std::any::Any;
use std::sync::Arc;

use crate::event::{Event, EventBatch};

/// The checked config of a filter plugin (declared and read by the plugin's module, see
/// [`crate::config::registry`]): describes itself and builds the [`Filter`].
pub trait FilterPlugin: std::fmt::Debug + Send + Sync + 'static {
    /// The plugin's type in ids and metrics (`filter_<type>.N`).
    fn type_name(&self) -> &'static str;
    /// One line for `check-config`.
    fn describe(&self) -> String;
    /// Labels the filter sends events to (checked to exist).
    fn labels(&self) -> Vec<&str> {
        Vec::new()
    }
    fn build(&self) -> Arc<dyn Filter>;

    /// [`FilterPlugin::build`] for a config that has (`true`) or lacks a `<label @ERROR>`, for
    /// filters that send error events there (the parser's unparsable records).
    fn build_with_error_label(&self, error_label: bool) -> Arc<dyn Filter> {
        let _ = error_label;
        self.build()
    }

    /// For tests and tools that need the typed config.
    fn as_any(&self) -> &dyn Any;
}

/// A filter plugin.
pub trait Filter: Send + Sync + 'static {
    /// Transforms the events of one batch of `tag` (may drop, change or hold back events).
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event>;

    /// [`Filter::filter`], putting the events the filter gives up on into `errors`: the router
    /// sends those to the `@ERROR` label (Fluentd's `emit_error_event`).
    fn filter_with_errors(
        &self,
        tag: &str,
        events: Vec<Event>,
        errors: &mut Vec<Event>,
    ) -> Vec<Event> {
        let _ = errors;
        self.filter(tag, events)
    }

    /// Events this filter could not process since start (parser: unparsable records),
    /// whatever became of them; for the `logship_filter_invalid_records` metric.
    fn invalid_records(&self) -> u64 {
        0
    }

    /// Whether [`Filter::flush`] must be called periodically.
    fn has_timers(&self) -> bool {
        false
    }

    /// Releases events held back for too long (all of them when `force`, at shutdown).
    fn flush(&self, _force: bool) -> Vec<EventBatch> {
        Vec::new()
    }

    /// The label that events released by [`Filter::flush`] go to instead of continuing down
    /// the pipeline (concat's `timeout_label`).
    fn timeout_label(&self) -> Option<&str> {
        None
    }
}
