//! Bulk generation of fake users (`api seed --count N`).
//!
//! Guarantee: rows are inserted with batched multi-row `INSERT`s, and every
//! generated e-mail contains a per-run random tag, so seeding twice never
//! collides with earlier runs. Progress goes to stderr — an indicatif bar on
//! a terminal, plain lines otherwise — so stdout stays a pure JSON log stream.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::db::{Db, DbError};

/// Insert `count` users in batches of `batch_size`; returns rows inserted.
pub async fn seed(db: &Db, count: u64, batch_size: usize) -> Result<u64, DbError> {
    let batch_size = batch_size.clamp(1, 5000) as u64;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(count);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut done = 0u64;
    let mut next_report = 0u64;
    while done < count {
        let n = batch_size.min(count - done);
        let rows: Vec<(String, String)> = (done..done + n)
            .map(|i| {
                (
                    format!("Seed User {}", i + 1),
                    format!("seed-{tag}-{}@example.com", i + 1),
                )
            })
            .collect();
        done += db.insert_batch(&rows).await?;
        match &bar {
            Some(bar) => bar.set_position(done),
            None if done >= next_report || done == count => {
                eprintln!("seeded {done}/{count} users");
                next_report = done + (count / 10).max(1);
            }
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(done)
}
