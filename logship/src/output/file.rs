//! `@type file`: appends one line per event to a file whose path may hold time placeholders
//! (`%Y %m %d %H %M %S`, from the event's time, UTC) and `${tag}` / `${tag[N]}`.
//!
//! The file written is the expanded `path` plus `path_suffix` (default `.log`) when
//! `add_path_suffix` is true (the default). Lines are Fluentd's out_file format
//! (`TIME<TAB>TAG<TAB>JSON`) by default, or the record alone with `<format> @type json`.
//! Missing directories are created. No `<buffer>`: each batch is written through (`write(2)`)
//! before `emit` resolves, so an acked event is in the page cache — it survives `kill -9` of
//! logship, not a power loss (no fsync: the output file is itself the durable store, and a
//! file buffer in front of it would only write every event twice). The `append` flag changes
//! nothing: files are always appended to (it is declared *no effect*).

use std::any::Any;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{
    format, format_event, metadata, timefmt, LineFormat, Output, OutputContext, OutputPlugin,
};
use crate::config::params::{ParamSpec, SectionSpec, NOT_IMPLEMENTED};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::{BoxFuture, EmitError, EventBatch};

/// `@type file`, checked.
#[derive(Debug, Clone)]
pub struct FileOutputConfig {
    pub path: String,
    pub add_path_suffix: bool,
    pub path_suffix: String,
    pub format: LineFormat,
    /// `metadata_key`: see [`metadata::DEFAULT_LINE_METADATA_KEY`]; `None` hides metadata.
    pub metadata_key: Option<String>,
}

static BUFFER: SectionSpec = crate::buffer::config::SECTION.no_effect(
    "each batch is written through before it is acked; a buffer would write every event twice",
);

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "file",
    summary: "Appends one line per event to a file whose path may hold `${tag}`, `${tag[N]}` and strftime placeholders.",
    params: &[
        ParamSpec::string("path").required().doc("the file, with `%Y %m %d %H %M %S` (event time, UTC), `${tag}` and `${tag[N]}`"),
        ParamSpec::bool("add_path_suffix").default("true").doc("append `path_suffix` to the path"),
        ParamSpec::string("path_suffix").default(".log").doc("the suffix"),
        ParamSpec::choice("compress", &["text"]).default("text").doc("only `text`: files are written uncompressed"),
        metadata::LINE_METADATA_KEY,
        ParamSpec::bool("append").default("false").no_effect("files are always appended to"),
        ParamSpec::string("symlink_path").no_effect(NOT_IMPLEMENTED),
    ],
    sections: &[&format::SECTION, &BUFFER],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    // Only `text` exists, which is what is written.
    let _compress: String = s.get("compress");
    let format = s.child("format", |f| format::parse(f, LineFormat::OutFile));
    Arc::new(FileOutputConfig {
        path: s.get("path"),
        add_path_suffix: s.get("add_path_suffix"),
        path_suffix: s.get("path_suffix"),
        format: format.unwrap_or(LineFormat::OutFile),
        metadata_key: metadata::line_metadata_key(s),
    })
}

impl OutputPlugin for FileOutputConfig {
    fn type_name(&self) -> &'static str {
        "file"
    }
    fn describe(&self) -> String {
        format!("file path={}", self.path)
    }
    fn build(&self, _: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        Ok(Arc::new(FileOutput::new(self)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct FileOutput {
    path: String,
    suffix: String,
    format: LineFormat,
    /// Where non-empty Forward v1.5 metadata is shown (`metadata_key`).
    metadata_key: Option<String>,
    /// Serializes writes so that lines of concurrent batches never interleave.
    lock: Mutex<()>,
}

impl FileOutput {
    pub fn new(cfg: &FileOutputConfig) -> Self {
        Self {
            path: cfg.path.clone(),
            suffix: if cfg.add_path_suffix {
                cfg.path_suffix.clone()
            } else {
                String::new()
            },
            format: cfg.format,
            metadata_key: cfg.metadata_key.clone(),
            lock: Mutex::new(()),
        }
    }

    /// The file an event of `tag` at `secs` goes to.
    pub fn path_for(&self, tag: &str, secs: i64) -> PathBuf {
        let mut p = expand_tag(&self.path, tag);
        if p.contains('%') {
            p = timefmt::strftime(&p, secs);
        }
        p.push_str(&self.suffix);
        PathBuf::from(p)
    }
}

/// Expands `${tag}` and `${tag[N]}` (negative N counts from the end).
pub fn expand_tag(s: &str, tag: &str) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let parts: Vec<&str> = tag.split('.').collect();
    let mut out = String::with_capacity(s.len() + tag.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let name = &after[..j];
        if name == "tag" {
            out.push_str(tag);
        } else if let Some(n) = name
            .strip_prefix("tag[")
            .and_then(|x| x.strip_suffix(']'))
            .and_then(|x| x.parse::<i64>().ok())
        {
            let idx = if n < 0 { parts.len() as i64 + n } else { n };
            if let Some(p) = usize::try_from(idx).ok().and_then(|i| parts.get(i)) {
                out.push_str(p);
            }
        } else {
            out.push_str(&rest[i..i + 3 + j]);
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

impl Output for FileOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            // Group consecutive events by destination file.
            let mut groups: Vec<(PathBuf, Vec<u8>)> = Vec::new();
            for ev in &batch.events {
                let p = self.path_for(&batch.tag, ev.time.secs);
                if groups.last().map(|(lp, _)| lp != &p).unwrap_or(true) {
                    groups.push((p, Vec::new()));
                }
                let buf = &mut groups.last_mut().expect("just pushed").1;
                format_event(
                    self.format,
                    self.metadata_key.as_deref(),
                    &batch.tag,
                    ev,
                    buf,
                );
            }
            let _guard = self.lock.lock().await;
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                for (p, buf) in groups {
                    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)?;
                    f.write_all(&buf)?;
                    f.flush()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| EmitError::Output {
                output: "file".into(),
                reason: e.to_string(),
            })?
            .map_err(|e| EmitError::Output {
                output: "file".into(),
                reason: e.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_placeholders() {
        assert_eq!(
            expand_tag("/l/${tag}/${tag[1]}-${tag[-1]}", "docker.api.x"),
            "/l/docker.api.x/api-x"
        );
        assert_eq!(expand_tag("/l/plain", "t"), "/l/plain");
    }
}
