//! Background jobs and the `api worker` process (12-factor, factors VIII
//! concurrency and IX disposability).
//!
//! Guarantees:
//!
//! * A job is held by at most one worker at a time: claiming is one atomic
//!   statement (`SELECT … FOR UPDATE SKIP LOCKED` on MariaDB/PostgreSQL, an
//!   `UPDATE … WHERE id = (SELECT …) RETURNING` on SQLite) that sets
//!   `locked_by` and a lease `locked_until = now + JOB_LEASE`.
//! * Imports run in batches of `JOB_BATCH_SIZE` records. Each batch — the
//!   lease check/renewal, the user INSERTs and the `progress_done` update —
//!   commits in ONE transaction, and the lease check requires
//!   `locked_by = me AND progress_done = <where I started>`. A resumed job
//!   continues at `progress_done`, so no record is imported twice, even when
//!   a worker whose lease expired wakes up late (its transaction matches no
//!   row and is rolled back).
//! * Invalid records are counted in `error_count`, duplicates (e-mail exists)
//!   in `skipped_count`; neither fails the job. A database error fails the
//!   attempt: the job is re-queued with exponential backoff until
//!   `max_attempts`, then marked `failed`.
//! * On SIGTERM/SIGINT a worker finishes its current batch, releases the job
//!   (`state = queued`, `locked_by = NULL`) so another worker resumes it at
//!   once, and exits 0. A SIGKILLed worker's job is claimed again when its
//!   lease expires.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, QueryBuilder};
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::config::JobSettings;
use crate::db::{dispatch, now_ms, Db, DbError};
use crate::{sessions, validation};

/// Job kind of user imports.
pub const KIND_IMPORT_USERS: &str = "import_users";

/// Upload format of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line: `{"name","email","password"?}`.
    Ndjson,
    /// CSV with a header line `name,email[,password]`.
    Csv,
}

impl Format {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ndjson" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// A job as stored (without its payload).
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    /// Id.
    pub id: i64,
    /// Kind (`import_users`).
    pub kind: String,
    /// queued | running | done | failed.
    pub state: String,
    /// Payload format.
    pub format: String,
    /// Records committed.
    pub progress_done: i64,
    /// Records in the payload.
    pub progress_total: i64,
    /// Users inserted.
    pub imported_count: i64,
    /// Records skipped because the e-mail already exists.
    pub skipped_count: i64,
    /// Invalid records.
    pub error_count: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Not before (ms since epoch).
    pub run_after: i64,
    /// Worker holding the lease.
    pub locked_by: Option<String>,
    /// Lease expiry (ms since epoch).
    pub locked_until: Option<i64>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Creation (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "id, kind, state, format, progress_done, progress_total, \
    imported_count, skipped_count, error_count, attempts, max_attempts, run_after, \
    locked_by, locked_until, last_error, created_at, updated_at";

/// Progress of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Records processed (committed).
    pub done: i64,
    /// Records in the upload.
    pub total: i64,
    /// Users created.
    pub imported: i64,
    /// Records skipped: e-mail already taken.
    pub skipped: i64,
    /// Invalid records.
    pub errors: i64,
    /// `done / total * 100` (100 for an empty job).
    pub percent: f64,
}

/// A job as returned by `GET /jobs/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Kind (`import_users`).
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Progress counters.
    pub progress: Progress,
    /// Attempts so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Worker currently holding the job.
    pub locked_by: Option<String>,
    /// Last error of a failed attempt.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        let percent = if r.progress_total == 0 {
            100.0
        } else {
            (r.progress_done as f64 * 1000.0 / r.progress_total as f64).round() / 10.0
        };
        Job {
            id: r.id,
            kind: r.kind,
            state: r.state,
            progress: Progress {
                done: r.progress_done,
                total: r.progress_total,
                imported: r.imported_count,
                skipped: r.skipped_count,
                errors: r.error_count,
                percent,
            },
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            locked_by: r.locked_by,
            last_error: r.last_error,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

/// The records of a payload: non-blank lines, minus the CSV header.
pub fn records(format: Format, payload: &str) -> Vec<&str> {
    let mut lines = payload
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty());
    if format == Format::Csv {
        lines.next();
    }
    lines.collect()
}

/// Check an upload before it is queued: UTF-8, CSV header; returns the
/// number of records.
pub fn check_payload(format: Format, payload: &[u8]) -> Result<i64, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "body is not UTF-8".to_owned())?;
    if format == Format::Csv {
        let header = text
            .split('\n')
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .ok_or("empty CSV: a header line name,email[,password] is required")?;
        csv_header(header)?;
    }
    Ok(records(format, text).len() as i64)
}

/// Column positions of name, email and password in a CSV header.
fn csv_header(header: &str) -> Result<(usize, usize, Option<usize>), String> {
    let cols: Vec<String> = csv_fields(header)
        .into_iter()
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let pos = |n: &str| cols.iter().position(|c| c == n);
    match (pos("name"), pos("email")) {
        (Some(n), Some(e)) => Ok((n, e, pos("password"))),
        _ => Err(format!(
            "CSV header must contain name and email (optionally password), got {header:?}"
        )),
    }
}

/// Split one CSV line (RFC 4180 quoting, no embedded newlines).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[derive(Deserialize)]
struct NdjsonUser {
    name: String,
    email: String,
    #[serde(default)]
    password: Option<String>,
}

/// Parse and validate one record into (name, email, password).
fn parse_record(
    line: &str,
    format: Format,
    csv: Option<(usize, usize, Option<usize>)>,
) -> Result<(String, String, Option<String>), String> {
    let (name, email, password) = match (format, csv) {
        (Format::Csv, Some((n, e, p))) => {
            let f = csv_fields(line);
            let get = |i: usize| f.get(i).cloned().ok_or_else(|| "missing column".to_owned());
            let password = match p {
                Some(i) => f.get(i).cloned().filter(|s| !s.is_empty()),
                None => None,
            };
            (get(n)?, get(e)?, password)
        }
        _ => {
            let u: NdjsonUser = serde_json::from_str(line).map_err(|e| e.to_string())?;
            (u.name, u.email, u.password)
        }
    };
    let name = validation::name(&name).map_err(|e| e.message)?;
    let email = validation::email(&email).map_err(|e| e.message)?;
    if let Some(p) = &password {
        validation::password(p).map_err(|e| e.message)?;
    }
    Ok((name, email, password))
}

impl Db {
    /// Queue an import job; returns its id.
    pub async fn enqueue_import(
        &self,
        format: Format,
        payload: Vec<u8>,
        total: i64,
        max_attempts: i64,
    ) -> Result<i64, DbError> {
        let now = now_ms();
        let cols = "(kind, state, format, payload, progress_total, max_attempts, run_after, \
                    created_at, updated_at)";
        let vals = (1..=9).map(|i| self.ph(i)).collect::<Vec<_>>().join(", ");
        macro_rules! binds {
            ($q:expr) => {
                $q.bind(KIND_IMPORT_USERS)
                    .bind("queued")
                    .bind(format.as_str())
                    .bind(payload)
                    .bind(total)
                    .bind(max_attempts)
                    .bind(now)
                    .bind(now)
                    .bind(now)
            };
        }
        match self {
            Db::MySql(p) => {
                let sql = format!("INSERT INTO jobs {cols} VALUES ({vals})");
                let r = binds!(sqlx::query(&sql)).execute(p).await?;
                Ok(r.last_insert_id() as i64)
            }
            Db::Postgres(p) => {
                let sql = format!("INSERT INTO jobs {cols} VALUES ({vals}) RETURNING id");
                Ok(binds!(sqlx::query_scalar::<_, i64>(&sql))
                    .fetch_one(p)
                    .await?)
            }
            Db::Sqlite(p) => {
                let sql = format!("INSERT INTO jobs {cols} VALUES ({vals}) RETURNING id");
                Ok(binds!(sqlx::query_scalar::<_, i64>(&sql))
                    .fetch_one(p)
                    .await?)
            }
        }
    }

    /// A job by id.
    pub async fn get_job(&self, id: i64) -> Result<Option<JobRow>, DbError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = {}", self.ph(1));
        Ok(dispatch!(self, p => sqlx::query_as::<_, JobRow>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?))
    }

    /// Claim the oldest ready job (queued and due, or running with an
    /// expired lease) for `worker`, with a lease of `lease`.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<JobRow>, DbError> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        // Jobs whose lease expired with no attempts left are failed, not retried.
        let sql = format!(
            "UPDATE jobs SET state = 'failed', locked_by = NULL, locked_until = NULL, \
             last_error = COALESCE(last_error, 'lease expired'), updated_at = {} \
             WHERE state = 'running' AND locked_until < {} AND attempts >= max_attempts",
            self.ph(1),
            self.ph(2)
        );
        dispatch!(self, p => sqlx::query(&sql).bind(now).bind(now).execute(p).await.map(|_| ())?);
        let ready = |a: usize| {
            format!(
                "((state = 'queued' AND run_after <= {}) OR (state = 'running' AND locked_until < {})) \
                 AND attempts < max_attempts",
                self.ph(a),
                self.ph(a + 1)
            )
        };
        let set = |a: usize, b: usize, c: usize| {
            format!(
                "state = 'running', locked_by = {}, locked_until = {}, attempts = attempts + 1, \
                 updated_at = {}",
                self.ph(a),
                self.ph(b),
                self.ph(c)
            )
        };
        match self {
            Db::MySql(p) => {
                let mut tx = p.begin().await?;
                let sel = format!(
                    "SELECT id FROM jobs WHERE {} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    ready(1)
                );
                let Some(id) = sqlx::query_scalar::<_, i64>(&sel)
                    .bind(now)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let upd = format!("UPDATE jobs SET {} WHERE id = ?", set(1, 2, 3));
                sqlx::query(&upd)
                    .bind(worker)
                    .bind(until)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.get_job(id).await
            }
            Db::Postgres(p) => {
                let sql = format!(
                    "UPDATE jobs SET {} WHERE id = (SELECT id FROM jobs WHERE {} ORDER BY id \
                     LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {JOB_COLUMNS}",
                    set(1, 2, 3),
                    ready(4)
                );
                Ok(sqlx::query_as::<_, JobRow>(&sql)
                    .bind(worker)
                    .bind(until)
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .fetch_optional(p)
                    .await?)
            }
            Db::Sqlite(p) => {
                let sql = format!(
                    "UPDATE jobs SET {} WHERE id = (SELECT id FROM jobs WHERE {} ORDER BY id \
                     LIMIT 1) RETURNING {JOB_COLUMNS}",
                    set(1, 2, 3),
                    ready(4)
                );
                Ok(sqlx::query_as::<_, JobRow>(&sql)
                    .bind(worker)
                    .bind(until)
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .fetch_optional(p)
                    .await?)
            }
        }
    }

    /// The payload of a job.
    pub async fn job_payload(&self, id: i64) -> Result<Vec<u8>, DbError> {
        let sql = format!("SELECT payload FROM jobs WHERE id = {}", self.ph(1));
        Ok(dispatch!(self, p => sqlx::query_scalar::<_, Vec<u8>>(&sql)
            .bind(id)
            .fetch_one(p)
            .await?))
    }

    /// Commit one batch: lease check + renewal, inserts, progress — one
    /// transaction. Returns `Ok(false)` (and changes nothing) if `worker` no
    /// longer holds the job at `from`.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_batch(
        &self,
        job_id: i64,
        worker: &str,
        from: i64,
        to: i64,
        users: &[(String, String, Option<String>)],
        errors: i64,
        lease: Duration,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let guard = format!(
            "UPDATE jobs SET locked_until = {}, updated_at = {} WHERE id = {} AND locked_by = {} \
             AND progress_done = {} AND state = 'running'",
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4),
            self.ph(5)
        );
        let progress = format!(
            "UPDATE jobs SET progress_done = {}, imported_count = imported_count + {}, \
             skipped_count = skipped_count + {}, error_count = error_count + {}, updated_at = {} \
             WHERE id = {}",
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4),
            self.ph(5),
            self.ph(6)
        );
        let (prefix, suffix) = match self {
            Db::MySql(_) => ("INSERT IGNORE INTO", ""),
            _ => ("INSERT INTO", " ON CONFLICT (email) DO NOTHING"),
        };
        let ts = crate::db::now_micros();
        dispatch!(self, p => {
            let mut tx = p.begin().await?;
            let held = sqlx::query(&guard)
                .bind(now + lease.as_millis() as i64)
                .bind(now)
                .bind(job_id)
                .bind(worker)
                .bind(from)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if held != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            let mut inserted = 0;
            if !users.is_empty() {
                let mut qb = QueryBuilder::new(format!(
                    "{prefix} users (name, email, created_at, updated_at, password_hash) "
                ));
                qb.push_values(users, |mut b, (name, email, hash)| {
                    b.push_bind(name)
                        .push_bind(email)
                        .push_bind(ts)
                        .push_bind(ts)
                        .push_bind(hash);
                });
                qb.push(suffix);
                inserted = qb.build().execute(&mut *tx).await?.rows_affected() as i64;
            }
            let skipped = users.len() as i64 - inserted;
            sqlx::query(&progress)
                .bind(to)
                .bind(inserted)
                .bind(skipped)
                .bind(errors)
                .bind(now)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Set the final state of a job held by `worker`: `done`, or back to
    /// `queued` (released, or failed attempt with `retry_at`), or `failed`.
    pub async fn finish_job(
        &self,
        job_id: i64,
        worker: &str,
        outcome: Outcome<'_>,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let (set, error, run_after) = match outcome {
            Outcome::Done => ("state = 'done'", None, now),
            // A release is not a failed attempt: give the attempt back.
            Outcome::Released => ("state = 'queued', attempts = attempts - 1", None, now),
            Outcome::Failed { error, retry_at } => (
                "state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END",
                Some(error),
                retry_at,
            ),
        };
        let sql = format!(
            "UPDATE jobs SET {set}, locked_by = NULL, locked_until = NULL, \
             last_error = COALESCE({}, last_error), run_after = {}, updated_at = {} \
             WHERE id = {} AND locked_by = {}",
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4),
            self.ph(5)
        );
        dispatch!(self, p => sqlx::query(&sql)
            .bind(error)
            .bind(run_after)
            .bind(now)
            .bind(job_id)
            .bind(worker)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Number of jobs per state.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        Ok(dispatch!(self, p => sqlx::query_as::<_, (String, i64)>(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(p)
            .await?))
    }

    /// Delete done/failed jobs last changed before `older_than_ms`.
    pub async fn purge_jobs(&self, older_than_ms: i64) -> Result<u64, DbError> {
        let sql = format!(
            "DELETE FROM jobs WHERE state IN ('done', 'failed') AND updated_at < {}",
            self.ph(1)
        );
        Ok(dispatch!(self, p => sqlx::query(&sql)
            .bind(older_than_ms)
            .execute(p)
            .await?
            .rows_affected()))
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// All records processed.
    Done,
    /// Shutdown: give the job back for another worker.
    Released,
    /// The attempt failed; retry at `retry_at` (ms) if attempts remain.
    Failed {
        /// Error message.
        error: &'a str,
        /// Next run (ms since epoch).
        retry_at: i64,
    },
}

/// Backoff before retry `attempt` (1-based): 2^attempt seconds, at most 5 min.
pub fn backoff(attempt: i64) -> Duration {
    Duration::from_secs(1u64 << attempt.clamp(1, 8) as u32).min(Duration::from_secs(300))
}

/// A unique id of this worker process.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Why processing stopped.
enum Stop {
    Finished,
    Shutdown,
    LeaseLost,
}

/// Run the worker loop until `shutdown` turns true.
pub async fn run_worker(db: Db, settings: JobSettings, mut shutdown: watch::Receiver<bool>) {
    let worker = worker_id();
    tracing::info!(
        worker = %worker,
        batch_size = settings.batch_size,
        lease_ms = settings.lease.as_millis() as u64,
        "worker started"
    );
    while !*shutdown.borrow() {
        let job = match db.claim_job(&worker, settings.lease).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a job");
                None
            }
        };
        let Some(job) = job else {
            tokio::select! {
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        let span =
            tracing::info_span!("job", job_id = job.id, kind = %job.kind, attempt = job.attempts);
        let _ = tracing::Instrument::instrument(
            run_job(&db, &settings, &worker, job, &mut shutdown),
            span,
        )
        .await;
    }
    tracing::info!(worker = %worker, "worker stopped");
}

async fn run_job(
    db: &Db,
    settings: &JobSettings,
    worker: &str,
    job: JobRow,
    shutdown: &mut watch::Receiver<bool>,
) {
    tracing::info!(
        progress_done = job.progress_done,
        progress_total = job.progress_total,
        "job claimed"
    );
    let result = process_import(db, settings, worker, &job, shutdown).await;
    let outcome = match &result {
        Ok(Stop::Finished) => Outcome::Done,
        Ok(Stop::Shutdown) => Outcome::Released,
        Ok(Stop::LeaseLost) => {
            tracing::warn!("lease lost to another worker; abandoning the job");
            return;
        }
        Err(e) => Outcome::Failed {
            error: e,
            retry_at: now_ms() + backoff(job.attempts).as_millis() as i64,
        },
    };
    match db.finish_job(job.id, worker, outcome).await {
        Ok(()) => match outcome {
            Outcome::Done => tracing::info!("job done"),
            Outcome::Released => tracing::info!("job released for another worker"),
            Outcome::Failed { error, .. } => tracing::warn!(error, "job attempt failed"),
        },
        Err(e) => tracing::error!(error = %e, "cannot record the job's outcome"),
    }
}

async fn process_import(
    db: &Db,
    settings: &JobSettings,
    worker: &str,
    job: &JobRow,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Stop, String> {
    let format =
        Format::parse(&job.format).ok_or_else(|| format!("unknown format {}", job.format))?;
    let payload = db.job_payload(job.id).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8(payload).map_err(|_| "payload is not UTF-8".to_owned())?;
    let csv = if format == Format::Csv {
        let header = text
            .split('\n')
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .unwrap_or("");
        Some(csv_header(header)?)
    } else {
        None
    };
    let recs = records(format, &text);
    let total = recs.len() as i64;
    let mut done = job.progress_done.clamp(0, total);
    while done < total {
        let end = (done + settings.batch_size as i64).min(total);
        let mut parsed = Vec::with_capacity((end - done) as usize);
        let mut errors = 0i64;
        for line in &recs[done as usize..end as usize] {
            match parse_record(line, format, csv) {
                Ok(u) => parsed.push(u),
                Err(_) => errors += 1,
            }
        }
        // argon2 is CPU-bound: hash the batch's passwords in parallel on
        // blocking threads.
        let hashes = futures_util::future::join_all(parsed.iter_mut().map(|(_, _, pw)| {
            let pw = pw.take();
            async move {
                match pw {
                    Some(p) => sessions::hash_password(p).await.map(Some),
                    None => Ok(None),
                }
            }
        }))
        .await;
        let mut users = Vec::with_capacity(parsed.len());
        for ((name, email, _), hash) in parsed.into_iter().zip(hashes) {
            users.push((name, email, hash.map_err(|e| e.to_string())?));
        }
        let held = db
            .commit_batch(job.id, worker, done, end, &users, errors, settings.lease)
            .await
            .map_err(|e| e.to_string())?;
        if !held {
            return Ok(Stop::LeaseLost);
        }
        tracing::info!(from = done, to = end, total, errors, "batch committed");
        done = end;
        if *shutdown.borrow() {
            return Ok(if done >= total {
                Stop::Finished
            } else {
                Stop::Shutdown
            });
        }
        if !settings.batch_pause.is_zero() && done < total {
            tokio::select! {
                _ = tokio::time::sleep(settings.batch_pause) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return Ok(Stop::Shutdown);
            }
        }
    }
    Ok(Stop::Finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parsing() {
        assert_eq!(csv_fields(r#"a,"b,c","d""e""#), vec!["a", "b,c", "d\"e"]);
        assert_eq!(csv_header("Email, name").unwrap(), (1, 0, None));
        assert!(csv_header("foo,bar").is_err());
        let recs = records(Format::Csv, "name,email\r\nA,a@x.io\r\n\r\nB,b@x.io\n");
        assert_eq!(recs, vec!["A,a@x.io", "B,b@x.io"]);
        assert_eq!(check_payload(Format::Ndjson, b"{}\n\n{}\n"), Ok(2));
        assert!(check_payload(Format::Ndjson, b"\xff").is_err());
    }

    #[test]
    fn record_validation() {
        let ok = parse_record(r#"{"name":"A","email":"A@X.io"}"#, Format::Ndjson, None).unwrap();
        assert_eq!(ok, ("A".into(), "a@x.io".into(), None));
        assert!(parse_record(r#"{"name":"A"}"#, Format::Ndjson, None).is_err());
        assert!(parse_record("not json", Format::Ndjson, None).is_err());
        assert!(parse_record("A,a@x.io,short", Format::Csv, Some((0, 1, Some(2)))).is_err());
        assert!(parse_record("A,a@x.io,", Format::Csv, Some((0, 1, Some(2)))).is_ok());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(256));
    }
}
