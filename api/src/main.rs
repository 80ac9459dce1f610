//! `api` binary: parse the command line, set up logging, run a subcommand.
//!
//! Errors are `anyhow` here (and only here); any start-up failure is printed
//! on stderr *and* logged as a JSON line, and the process exits with status 1.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use api::authz::Role;
use api::config::{log_filter, Settings};
use api::db::Db;
use api::startup::Application;
use api::telemetry::{get_process_subscriber, init_subscriber};
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
    /// Process background jobs (bulk imports) until SIGTERM/SIGINT.
    Worker,
    /// Run scheduled tasks (CRON_PURGE, CRON_STATS) until SIGTERM/SIGINT.
    Cron,
    /// GET http://127.0.0.1:$PORT/healthz; exit 0 on 200, else 1 (for HEALTHCHECK).
    Healthcheck,
    /// Manage users' roles (the only way to grant the admin role).
    Users {
        #[command(subcommand)]
        action: UsersCommand,
    },
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

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Make the user with this e-mail address an admin.
    Promote {
        /// The user's e-mail address.
        email: String,
    },
    /// Take the admin role away from the user with this e-mail address.
    Demote {
        /// The user's e-mail address.
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let process_type = match &cli.command {
        None | Some(Command::Serve) => "web",
        Some(Command::Migrate) => "migrate",
        Some(Command::Worker) => "worker",
        Some(Command::Cron) => "cron",
        Some(Command::Seed { .. }) => "seed",
        Some(Command::Users { .. }) => "admin",
        Some(Command::Healthcheck) => return healthcheck(&env).await,
    };
    let subscriber =
        get_process_subscriber("api", process_type, &log_filter(&env), std::io::stdout);
    if let Err(e) = init_subscriber(subscriber) {
        eprintln!("error: cannot install logger: {e}");
        return ExitCode::FAILURE;
    }
    // Panics become JSON log records on stdout (with location and the current
    // request's fields) instead of free text on stderr. Handler panics are
    // additionally caught by CatchPanic and answered with a 500 problem.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        api::request_log::current(|r| {
            tracing::error!(
                panic = %payload,
                location = %location,
                request_id = r.map(|r| r.request_id.as_str()),
                method = r.map(|r| r.method.as_str()),
                path = r.map(|r| r.path.as_str()),
                "panic"
            )
        });
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

/// `api healthcheck`: no logger, one line on stdout or stderr, exit 0 or 1.
async fn healthcheck(env: &HashMap<String, String>) -> ExitCode {
    let port = match env.get("PORT").map(|p| p.trim()).filter(|p| !p.is_empty()) {
        None => api::config::DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                eprintln!("unhealthy: invalid PORT {p:?}");
                return ExitCode::FAILURE;
            }
        },
    };
    match api::healthcheck::check(port, api::healthcheck::TIMEOUT).await {
        Ok(()) => {
            println!("healthy: GET http://127.0.0.1:{port}/healthz -> 200");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A receiver that turns true on SIGTERM/SIGINT.
fn shutdown_flag() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    // Handlers installed here, before the task first runs.
    let signal = api::shutdown::shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        let _ = tx.send(true);
    });
    rx
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
        Command::Worker => {
            let db = Db::connect_lazy(&settings.database)?;
            if settings.database.auto_migrate {
                db.migrate().await?;
            }
            api::jobs::run_worker(db.clone(), settings.jobs.clone(), shutdown_flag()).await;
            db.close().await;
        }
        Command::Cron => {
            let db = Db::connect_lazy(&settings.database)?;
            if settings.database.auto_migrate {
                db.migrate().await?;
            }
            api::cron::run_cron(db.clone(), settings.cron.clone(), shutdown_flag()).await;
            db.close().await;
        }
        Command::Healthcheck => unreachable!("handled before logging is set up"),
        Command::Users { action } => {
            let (email, role) = match action {
                UsersCommand::Promote { email } => (email, Role::Admin),
                UsersCommand::Demote { email } => (email, Role::User),
            };
            let db = Db::connect_lazy(&settings.database)?;
            if settings.database.auto_migrate {
                db.migrate().await?;
            }
            let result = api::admin::set_role(&db, &email, role).await;
            db.close().await;
            let user_id = result?;
            tracing::info!(user_id, role = %role, "role set");
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
