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

    /// For tests and tools that need the typed config.
    fn as_any(&self) -> &dyn Any;
}

/// A filter plugin.
pub trait Filter: Send + Sync + 'static {
    /// Transforms the events of one batch of `tag` (may drop, change or hold back events).
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event>;

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
