//! `@type relabel`: hands every batch to another `<label>` of the pipeline.

use std::any::Any;
use std::sync::Arc;

use super::{Output, OutputContext, OutputPlugin};
use crate::config::params::ParamSpec;
use crate::config::registry::PluginSpec;
use crate::config::section::Section;

/// `@type relabel`, checked.
#[derive(Debug, Clone)]
pub struct RelabelConfig {
    /// The label (with its `@`).
    pub label: String,
}

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "relabel",
    summary: "Sends every event to the `<label>` named by `@label`.",
    params: &[ParamSpec::string("@label")
        .required()
        .doc("the label the events go to")],
    sections: &[],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    if s.given("@label").is_none() {
        s.error_here("@type relabel needs an @label parameter");
    }
    Arc::new(RelabelConfig {
        label: s.opt("@label").unwrap_or_default(),
    })
}

impl OutputPlugin for RelabelConfig {
    fn type_name(&self) -> &'static str {
        "relabel"
    }
    fn describe(&self) -> String {
        format!("relabel -> {}", self.label)
    }
    fn labels(&self) -> Vec<&str> {
        // A missing @label is already an error of its own.
        Some(self.label.as_str())
            .filter(|l| !l.is_empty())
            .into_iter()
            .collect()
    }
    fn build(&self, ctx: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        Ok(ctx.label(&self.label))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
