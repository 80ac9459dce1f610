//! `api` binary: parse the command line, set up logging, run a subcommand.
//!
//! Errors are `anyhow` here (and only here); any start-up failure is printed
//! on stderr *and* logged as a JSON line, and the process exits with status 1.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use api::config::{log_filter, Settings};
use api::db::Db;
use api::startup::Application;
use api::telemetry::{get_subscriber, init_subscriber};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "api", version = api::VERSION, about = "12-factor users REST service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default when no subcommand is given).
    Serve,
    /// Apply database migrations for the configured backend, then exit.
    Migrate,
    /// Insert N generated users (batched), then exit.
    Seed {
        /// Number of users to create.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Rows per INSERT statement.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let subscriber = get_subscriber("api", &log_filter(&env), std::io::stdout);
    if let Err(e) = init_subscriber(subscriber) {
        eprintln!("error: cannot install logger: {e}");
        return ExitCode::FAILURE;
    }
    // Panics become JSON log records on stdout (with location and the current
    // request's span fields) instead of free text on stderr. Handler panics are
    // additionally caught by CatchPanic and answered with a 500 problem.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %payload, location = %location, "panic");
    }));
    match run(cli, &env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, env: &HashMap<String, String>) -> anyhow::Result<()> {
    let settings = Settings::from_env_map(env)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await.context("server error")?;
        }
        Command::Migrate => {
            let db = Db::connect_lazy(&settings.database)?;
            tracing::info!(
                backend = %settings.database.backend,
                database_url = %settings.database.redacted_url(),
                "applying migrations"
            );
            db.migrate().await?;
            tracing::info!("migrations applied");
            db.close().await;
        }
        Command::Seed { count, batch_size } => {
            let db = Db::connect_lazy(&settings.database)?;
            if settings.database.auto_migrate {
                db.migrate().await?;
            }
            let started = std::time::Instant::now();
            let inserted = api::seed::seed(&db, count, batch_size)
                .await
                .context("seeding failed")?;
            tracing::info!(
                inserted,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "seed complete"
            );
            db.close().await;
        }
    }
    Ok(())
}
