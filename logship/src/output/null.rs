//! `@type null`: drops every event (acked as soon as it arrives).

use std::any::Any;
use std::sync::Arc;

use super::{Output, OutputContext, OutputPlugin};
use crate::config::params::{ParamSpec, NOT_IMPLEMENTED};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::{BoxFuture, EmitError, EventBatch};

/// Drops everything.
pub struct NullOutput;

impl Output for NullOutput {
    fn emit<'a>(&'a self, _batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async { Ok(()) })
    }
}

/// `@type null`, checked (no parameters of effect).
#[derive(Debug, Clone)]
pub struct NullConfig;

static BUFFER: crate::config::params::SectionSpec = crate::buffer::config::SECTION
    .no_effect("events are dropped as they arrive; nothing is buffered");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "null",
    summary: "Drops every event.",
    params: &[ParamSpec::bool("never_flush").no_effect(NOT_IMPLEMENTED)],
    sections: &[&BUFFER],
    parse,
};

fn parse(_: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    Arc::new(NullConfig)
}

impl OutputPlugin for NullConfig {
    fn type_name(&self) -> &'static str {
        "null"
    }
    fn describe(&self) -> String {
        "null".into()
    }
    fn build(&self, _: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        Ok(Arc::new(NullOutput))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
