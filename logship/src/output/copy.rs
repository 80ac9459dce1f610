//! `@type copy`: hands every batch to each `<store>` in turn.

use std::any::Any;
use std::sync::Arc;

use super::{Output, OutputContext, OutputPlugin};
use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::registry::{self, PluginSpec};
use crate::config::section::Section;
use crate::config::Loc;
use crate::event::{BoxFuture, EmitError, EventBatch};

/// Hands every batch to each store in turn; fails if any store fails.
pub struct CopyOutput {
    pub stores: Vec<Arc<dyn Output>>,
}

impl Output for CopyOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let mut first_err = None;
            for s in &self.stores {
                if let Err(e) = s.emit(batch).await {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for s in &self.stores {
                s.shutdown().await;
            }
        })
    }
}

/// One `<store>`: its `@id` and output.
#[derive(Debug, Clone)]
pub struct Store {
    pub id: Option<String>,
    pub plugin: Arc<dyn OutputPlugin>,
    pub loc: Loc,
}

/// `@type copy`, checked.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    pub stores: Vec<Store>,
}

/// Why the copy modes change nothing: outputs only read a batch.
const SHARED_BATCH: &str =
    "every store gets the same read-only batch; no store can change what another one sees";

static STORE: SectionSpec = SectionSpec::new("store", &[])
    .free_form()
    .multiple()
    .doc("An output: `@type` and the parameters of that output (see the outputs in this list). At least one.");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "copy",
    summary: "Sends every event to each `<store>`; the event is held (and acked) once every store holds it.",
    params: &[
        ParamSpec::choice("copy_mode", &["no_copy", "shallow", "deep", "marshal"])
            .default("no_copy")
            .no_effect(SHARED_BATCH),
        ParamSpec::bool("deep_copy").default("false").no_effect(SHARED_BATCH),
    ],
    sections: &[&STORE],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    let mut stores = Vec::new();
    for el in s.elements("store") {
        if let Some(plugin) = registry::parse_output(el, s.diagnostics()) {
            stores.push(Store {
                id: el.param("@id").map(|p| p.value.clone()),
                plugin,
                loc: el.loc.clone(),
            });
        }
    }
    if s.element().children.iter().all(|c| c.name != "store") {
        s.error_here("@type copy needs at least one <store> section");
    }
    Arc::new(CopyConfig { stores })
}

impl OutputPlugin for CopyConfig {
    fn type_name(&self) -> &'static str {
        "copy"
    }
    fn describe(&self) -> String {
        let stores: Vec<String> = self.stores.iter().map(|s| s.plugin.describe()).collect();
        format!("copy [{}]", stores.join(", "))
    }
    fn labels(&self) -> Vec<&str> {
        self.stores.iter().flat_map(|s| s.plugin.labels()).collect()
    }
    fn build(&self, ctx: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        let stores = self
            .stores
            .iter()
            .map(|s| ctx.store(s.id.as_deref(), s.plugin.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(CopyOutput { stores }))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
