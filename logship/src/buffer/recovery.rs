//! Start-up of a file buffer: take the directory's lock, then resume every chunk left there.
//!
//! - **Lock**: `PATH/buffer.lock` is held with `flock(LOCK_EX | LOCK_NB)` for the life of the
//!   process (the kernel drops it when the process dies, even on `kill -9`). A second process
//!   (or a second output) on the same path fails at start-up with [`BufferError::Locked`].
//! - **Resume**: every `*.chunk` file is scanned ([`chunk_file::scan`]) and queued for delivery,
//!   oldest first (by sequence number in its name). Staged chunks of the previous run are
//!   resumed like queued ones: their acked pushes were fsynced. Files of format versions 1 and
//!   2 both resume.
//! - **Damaged frames in the middle** (a checksum that fails with valid frames after it: the
//!   disk changed acked bytes): every valid frame is kept and delivered, the damaged bytes are
//!   skipped, a WARN names the file, the bytes skipped and the records kept, and a copy of the
//!   file as found goes to `PATH/corrupt/` for inspection (none with `disable_chunk_backup`).
//!   The events of a damaged frame are lost: their count is in the damaged bytes.
//! - **Torn tail** (a crash in the middle of an append: an incomplete last frame): the valid
//!   prefix is kept and the file truncated to it (then fsynced); the cut bytes are logged at
//!   WARN and counted. They were never acked: an ack needs the fsync that follows the write.
//!   A complete last frame that fails its checksum is cut the same way, with its own WARN
//!   (it may have been acked).
//! - **Corrupt** (bad magic, header checksum, unknown version, unreadable): the file is moved
//!   to `PATH/corrupt/` (deleted with `disable_chunk_backup`) with a WARN and counted; start-up
//!   goes on. A header cut short (the process died right after creating the file, before
//!   anything in it was acked) is removed.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::chunk_file::{self, ChunkFileError, Scanned, Tail};
use super::file::QueuedChunk;
use super::{BufferCounters, BufferError};

/// Name of the lock file inside a buffer directory.
pub const LOCK_FILE: &str = "buffer.lock";
/// Subdirectory for files that cannot be read.
pub const CORRUPT_DIR: &str = "corrupt";
/// Extension of chunk files.
pub const CHUNK_EXT: &str = "chunk";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` if needed and takes its lock; the lock lasts as long as the returned file.
pub fn lock_dir(dir: &Path) -> Result<File, BufferError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(BufferError::Locked(dir.into())),
        Err(e) => Err(BufferError::Io {
            path: lock_path,
            source: e.into(),
        }),
    }
}

/// The sequence number in a chunk file's name (`SEQ.chunk`, SEQ 20 decimal digits).
pub fn chunk_seq(path: &Path) -> Option<u64> {
    if path.extension()? != CHUNK_EXT {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok()
}

/// The file name of chunk `seq`.
pub fn chunk_name(seq: u64) -> String {
    format!("{seq:020}.{CHUNK_EXT}")
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub queue: VecDeque<QueuedChunk>,
    /// The next free sequence number.
    pub next_seq: u64,
}

/// Scans `dir` (already locked): resumes chunks, cuts torn tails, moves corrupt files aside.
pub fn recover(
    name: &str,
    dir: &Path,
    no_backup: bool,
    counters: &BufferCounters,
) -> Result<Recovered, BufferError> {
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        match chunk_seq(&path) {
            Some(seq) => found.push((seq, path)),
            None if path.extension().is_some_and(|e| e == CHUNK_EXT) => {
                move_aside(
                    name,
                    dir,
                    &path,
                    "unexpected chunk file name",
                    no_backup,
                    counters,
                );
            }
            None => {}
        }
    }
    found.sort();
    let mut out = Recovered {
        next_seq: found.last().map_or(0, |(s, _)| s + 1),
        ..Default::default()
    };
    for (seq, path) in found {
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                move_aside(
                    name,
                    dir,
                    &path,
                    &format!("unreadable: {e}"),
                    no_backup,
                    counters,
                );
                continue;
            }
        };
        let len = data.len() as u64;
        match chunk_file::scan(Bytes::from(data)) {
            Ok(s) => {
                if !s.skipped.is_empty() {
                    report_skipped(name, dir, &path, &s, no_backup, counters);
                }
                if s.torn_bytes > 0 && !cut_tail(name, dir, &path, &s, no_backup, counters) {
                    continue;
                }
                if s.records == 0 {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                counters.recovered_chunks.fetch_add(1, Ordering::Relaxed);
                counters
                    .recovered_records
                    .fetch_add(s.records, Ordering::Relaxed);
                out.queue.push_back(QueuedChunk {
                    seq,
                    path,
                    records: s.records,
                    bytes: s.frame_bytes,
                    damage_reported: !s.skipped.is_empty(),
                });
            }
            Err(ChunkFileError::ShortHeader(n)) => {
                tracing::warn!(output = %name, file = %path.display(), bytes = n, "buffer recovery: removed a chunk whose header was never completed (nothing in it was acked)");
                counters.torn_bytes.fetch_add(len, Ordering::Relaxed);
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => move_aside(name, dir, &path, &e.to_string(), no_backup, counters),
        }
    }
    if !out.queue.is_empty() {
        tracing::info!(
            output = %name,
            chunks = out.queue.len(),
            records = out.queue.iter().map(|c| c.records).sum::<u64>(),
            "buffer recovery: resumed chunks left on disk"
        );
    }
    Ok(out)
}

/// Damaged frames in the middle of a chunk: WARN with what was skipped and kept, and a copy of
/// the file as found in `corrupt/` (unless `no_backup`). The file itself is left as it is:
/// reading it again skips the same bytes.
fn report_skipped(
    name: &str,
    dir: &Path,
    path: &Path,
    s: &Scanned,
    no_backup: bool,
    counters: &BufferCounters,
) {
    let bytes = s.skipped_bytes();
    counters.skipped_bytes.fetch_add(bytes, Ordering::Relaxed);
    let copy = if no_backup {
        None
    } else {
        let target = dir
            .join(CORRUPT_DIR)
            .join(path.file_name().unwrap_or_default());
        match std::fs::create_dir_all(dir.join(CORRUPT_DIR))
            .and_then(|_| std::fs::copy(path, &target))
        {
            Ok(_) => Some(target),
            Err(e) => {
                tracing::error!(output = %name, file = %path.display(), error = %e, "buffer recovery: cannot keep a copy of a damaged chunk in corrupt/");
                None
            }
        }
    };
    tracing::warn!(
        output = %name,
        file = %path.display(),
        damaged_regions = s.skipped.len(),
        skipped_bytes = bytes,
        first_skipped_at = s.skipped[0].offset,
        kept_records = s.records,
        copy = %copy.as_ref().map_or_else(|| "none (disable_chunk_backup)".to_string(), |c| c.display().to_string()),
        "buffer recovery: damaged frames skipped in the middle of a chunk (checksum mismatch: the disk changed acked data; the events in those bytes are lost); every valid frame before and after them is kept"
    );
}

/// Cuts what follows the last valid frame, with the WARN that says what it was. False when
/// the file could not be truncated (it was moved aside instead).
fn cut_tail(
    name: &str,
    dir: &Path,
    path: &Path,
    s: &Scanned,
    no_backup: bool,
    counters: &BufferCounters,
) -> bool {
    counters
        .torn_bytes
        .fetch_add(s.torn_bytes, Ordering::Relaxed);
    match s.tail {
        Tail::Damaged => {
            tracing::warn!(output = %name, file = %path.display(), kept_records = s.records, kept_bytes = s.valid_len, cut_bytes = s.torn_bytes, "buffer recovery: damaged last frame cut off (a write interrupted by a crash, or the disk changed acked data)")
        }
        _ => {
            tracing::warn!(output = %name, file = %path.display(), kept_records = s.records, kept_bytes = s.valid_len, cut_bytes = s.torn_bytes, "buffer recovery: torn tail cut off (a write interrupted by a crash; never acked)")
        }
    }
    let cut = OpenOptions::new().write(true).open(path).and_then(|f| {
        f.set_len(s.valid_len)?;
        f.sync_all()
    });
    match cut {
        Ok(()) => true,
        Err(e) => {
            move_aside(
                name,
                dir,
                path,
                &format!("cannot truncate: {e}"),
                no_backup,
                counters,
            );
            false
        }
    }
}

/// Moves `path` into `dir/corrupt/` with a WARN (deletes it with `no_backup`, or when even
/// the move fails).
pub fn move_aside(
    name: &str,
    dir: &Path,
    path: &Path,
    why: &str,
    no_backup: bool,
    counters: &BufferCounters,
) {
    counters.corrupt_files.fetch_add(1, Ordering::Relaxed);
    if no_backup {
        let _ = std::fs::remove_file(path);
        tracing::warn!(output = %name, file = %path.display(), reason = %why, "buffer: corrupt chunk file deleted (disable_chunk_backup)");
        return;
    }
    let target_dir = dir.join(CORRUPT_DIR);
    let target = target_dir.join(path.file_name().unwrap_or_default());
    let moved = std::fs::create_dir_all(&target_dir).and_then(|_| std::fs::rename(path, &target));
    match moved {
        Ok(()) => {
            tracing::warn!(output = %name, file = %path.display(), moved_to = %target.display(), reason = %why, "buffer: corrupt chunk file moved aside")
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            tracing::error!(output = %name, file = %path.display(), reason = %why, error = %e, "buffer: corrupt chunk file could not be moved aside; deleted it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventBatch, EventTime};

    fn write_chunk(dir: &Path, seq: u64, batches: usize, extra: &[u8]) -> PathBuf {
        let mut out = Vec::new();
        chunk_file::write_header(&mut out, EventTime::new(1, 0), "t");
        for _ in 0..batches {
            let b = EventBatch::new(
                "t",
                vec![Event::new(
                    EventTime::new(2, 0),
                    Bytes::from_static(&[0x80]),
                )],
            );
            out.extend_from_slice(&chunk_file::encode_frame(&b, false).bytes);
        }
        out.extend_from_slice(extra);
        let p = dir.join(chunk_name(seq));
        std::fs::write(&p, out).unwrap();
        p
    }

    #[test]
    fn resumes_cuts_and_moves_aside() {
        let d = tempfile::tempdir().unwrap();
        write_chunk(d.path(), 3, 2, &[]);
        let torn = write_chunk(d.path(), 1, 1, &[9, 0, 0, 0, 1, 2]);
        std::fs::write(d.path().join(chunk_name(7)), b"garbage that is long enough").unwrap();
        std::fs::write(d.path().join(chunk_name(8)), b"LOGS").unwrap();
        std::fs::write(d.path().join("other.txt"), b"x").unwrap();
        let c = BufferCounters::default();
        let _lock = lock_dir(d.path()).unwrap();
        let r = recover("t", d.path(), false, &c).unwrap();
        assert_eq!(
            r.queue
                .iter()
                .map(|q| (q.seq, q.records))
                .collect::<Vec<_>>(),
            vec![(1, 1), (3, 2)]
        );
        assert_eq!(r.next_seq, 9);
        assert_eq!(c.corrupt_files.load(Ordering::Relaxed), 1);
        assert!(d.path().join("corrupt").join(chunk_name(7)).exists());
        assert!(!d.path().join(chunk_name(8)).exists());
        assert_eq!(c.torn_bytes.load(Ordering::Relaxed), 6 + 4);
        let again = chunk_file::scan(Bytes::from(std::fs::read(&torn).unwrap())).unwrap();
        assert_eq!(again.torn_bytes, 0);
        assert!(d.path().join("other.txt").exists());
    }

    #[test]
    fn a_second_lock_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let _l = lock_dir(d.path()).unwrap();
        let e = lock_dir(d.path()).unwrap_err();
        assert!(matches!(e, BufferError::Locked(_)), "{e}");
        assert!(e.to_string().contains("in use by another logship process"));
    }
}
