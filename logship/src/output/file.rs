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
//! nothing: files are always appended to.

use std::io::Write;
use std::path::PathBuf;

use tokio::sync::Mutex;

use super::{format_event, timefmt, Output};
use crate::config::{FileOutputConfig, LineFormat};
use crate::event::{BoxFuture, EmitError, EventBatch};

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
