//! The `api cron` process: scheduled maintenance tasks.
//!
//! Guarantee: any number of `api cron` processes may run; each tick of each
//! task runs in exactly one of them. Before running a task for the tick at
//! time T, a process INSERTs `(task, T)` into `cron_leases`, whose primary key
//! is `(task, tick_at)`: the INSERT that succeeds runs the task, the others
//! get a unique violation and skip it. This needs nothing beyond a unique
//! index, so it works on MariaDB, PostgreSQL and SQLite alike.
//!
//! Tasks (expressions use the `cron` crate's syntax with a seconds field:
//! `sec min hour day-of-month month day-of-week [year]`):
//!
//! * `purge` (`CRON_PURGE`): delete expired rows of the database session
//!   store, done/failed jobs older than `JOB_RETENTION`, and old leases.
//! * `stats` (`CRON_STATS`): log a `users.stats` event with the number of
//!   users and of jobs per state, for dashboards.

use std::str::FromStr;

use chrono::Utc;
use tokio::sync::watch;

use crate::config::CronSettings;
use crate::db::{dispatch, now_ms, Db, DbError};

/// A scheduled task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Purge expired sessions and old jobs.
    Purge,
    /// Log `users.stats`.
    Stats,
}

impl Task {
    /// Name used as the lease key and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Purge => "purge",
            Task::Stats => "stats",
        }
    }
}

impl Db {
    /// Try to take the lease of `task` for the tick at `tick_at_ms`; `true`
    /// if this process won and must run it.
    pub async fn take_cron_lease(
        &self,
        task: &str,
        tick_at_ms: i64,
        holder: &str,
    ) -> Result<bool, DbError> {
        let sql = format!(
            "INSERT INTO cron_leases (task, tick_at, locked_by, created_at) VALUES ({}, {}, {}, {})",
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4)
        );
        let res = dispatch!(self, p => sqlx::query(&sql)
            .bind(task)
            .bind(tick_at_ms)
            .bind(holder)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|_| ()));
        match res {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Delete leases of ticks before `before_ms`.
    pub async fn purge_cron_leases(&self, before_ms: i64) -> Result<u64, DbError> {
        let sql = format!("DELETE FROM cron_leases WHERE tick_at < {}", self.ph(1));
        Ok(dispatch!(self, p => sqlx::query(&sql)
            .bind(before_ms)
            .execute(p)
            .await?
            .rows_affected()))
    }
}

/// Run one task now.
pub async fn run_task(
    db: &Db,
    settings: &CronSettings,
    task: Task,
    tick_at_ms: i64,
) -> Result<(), DbError> {
    match task {
        Task::Purge => {
            let sessions = crate::sessions::purge_expired(db).await?;
            let jobs = db
                .purge_jobs(now_ms() - settings.job_retention.as_millis() as i64)
                .await?;
            let leases = db.purge_cron_leases(now_ms() - 86_400_000).await?;
            let login_windows = crate::login_limit::purge_windows(
                db,
                now_ms() - crate::login_limit::MAX_WINDOW.as_millis() as i64,
            )
            .await?;
            tracing::info!(
                event = "cron.purge",
                tick_at = tick_at_ms,
                sessions_deleted = sessions,
                jobs_deleted = jobs,
                leases_deleted = leases,
                login_windows_deleted = login_windows,
                "cron.purge"
            );
        }
        Task::Stats => {
            let users = db.count_users().await?;
            let counts = db.job_counts().await?;
            let get = |s: &str| {
                counts
                    .iter()
                    .find(|(k, _)| k == s)
                    .map(|(_, n)| *n)
                    .unwrap_or(0)
            };
            tracing::info!(
                event = "users.stats",
                tick_at = tick_at_ms,
                users_total = users,
                jobs_queued = get("queued"),
                jobs_running = get("running"),
                jobs_done = get("done"),
                jobs_failed = get("failed"),
                "users.stats"
            );
        }
    }
    Ok(())
}

async fn schedule_loop(
    db: Db,
    settings: CronSettings,
    task: Task,
    expr: String,
    holder: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let schedule = match cron::Schedule::from_str(&expr) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(task = task.as_str(), error = %e, "invalid cron expression");
            return;
        }
    };
    tracing::info!(task = task.as_str(), schedule = %expr, "task scheduled");
    let mut after = Utc::now();
    while !*shutdown.borrow() {
        let Some(next) = schedule.after(&after).next() else {
            tracing::warn!(task = task.as_str(), "schedule has no further ticks");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => continue,
        }
        after = next;
        let tick = next.timestamp_millis();
        match db.take_cron_lease(task.as_str(), tick, &holder).await {
            Ok(true) => {
                if let Err(e) = run_task(&db, &settings, task, tick).await {
                    tracing::error!(task = task.as_str(), tick_at = tick, error = %e, "task failed");
                }
            }
            Ok(false) => {
                tracing::debug!(
                    task = task.as_str(),
                    tick_at = tick,
                    "tick taken by another process"
                )
            }
            Err(e) => {
                tracing::warn!(task = task.as_str(), tick_at = tick, error = %e, "cannot take the lease")
            }
        }
    }
}

/// Run the scheduler until `shutdown` turns true.
pub async fn run_cron(db: Db, settings: CronSettings, shutdown: watch::Receiver<bool>) {
    let holder = crate::jobs::worker_id();
    let tasks = [
        (Task::Purge, settings.purge.clone()),
        (Task::Stats, settings.stats.clone()),
    ];
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|(task, expr)| {
            tokio::spawn(schedule_loop(
                db.clone(),
                settings.clone(),
                task,
                expr,
                holder.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for h in handles {
        let _ = h.await;
    }
    tracing::info!("cron stopped");
}
