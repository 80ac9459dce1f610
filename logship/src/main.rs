//! The `logship` binary: argument parsing only; the work is in `logship::cli`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use logship::cli;

#[derive(Parser)]
#[command(
    name = "logship",
    version,
    about = "A log shipper speaking the Fluentd Forward protocol"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant (tail's options) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the pipeline (sources → filters → outputs) until SIGTERM/SIGINT.
    Run {
        /// Fluentd-syntax config file; without it: forward on 127.0.0.1:24224 → stdout.
        #[arg(short, long, env = "LOGSHIP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a config file and print the effective pipeline.
    CheckConfig {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Send JSON lines read from stdin to a Forward server (like fluent-cat).
    Cat {
        /// The tag of the events.
        tag: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(short, long, default_value_t = 24224)]
        port: u16,
        /// Shared key for the Forward handshake.
        #[arg(long, env = "LOGSHIP_SHARED_KEY", hide_env_values = true)]
        shared_key: Option<String>,
        /// Ask the server to acknowledge each batch.
        #[arg(long)]
        ack: bool,
    },
    /// Run a command and ship its output lines as Docker's fluentd log driver would.
    Exec {
        /// The tag of the events.
        #[arg(long)]
        tag: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(short, long, default_value_t = 24224)]
        port: u16,
        #[arg(long, env = "LOGSHIP_SHARED_KEY", hide_env_values = true)]
        shared_key: Option<String>,
        #[arg(long)]
        ack: bool,
        /// container_name is "/NAME" (default: the command's basename).
        #[arg(long)]
        name: Option<String>,
        /// Adds a container_id field.
        #[arg(long)]
        container_id: Option<String>,
        /// Lines kept in memory while the server is unreachable (oldest dropped beyond).
        #[arg(long, default_value_t = 10_000)]
        buffer_lines: usize,
        /// Seconds to keep trying to deliver queued lines after the command exited.
        #[arg(long, default_value_t = 5.0)]
        flush_timeout: f64,
        /// The command and its arguments (after --).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show (and follow) the log documents in Elasticsearch, oldest first.
    Tail {
        /// Elasticsearch URL; several, comma-separated, are tried in turn when one fails.
        #[arg(
            long,
            env = "ELASTICSEARCH_URL",
            default_value = "http://localhost:9200"
        )]
        url: String,
        /// Index or pattern to read.
        #[arg(long, default_value = "fluentd-*")]
        index: String,
        /// Keep polling and show new documents as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// Only documents since this long ago (30s, 10m, 2h, 1d) or this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// How many of the latest documents to show first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// An Elasticsearch query_string, e.g. 'status:>=500 AND method:POST'.
        #[arg(long)]
        query: Option<String>,
        /// Container name (with or without the leading /) or id prefix.
        #[arg(long)]
        container: Option<String>,
        /// Exact tag, e.g. docker.api.
        #[arg(long)]
        tag: Option<String>,
        /// Minimum level: trace, debug, info, warn, error, fatal or a bunyan number.
        #[arg(long)]
        level: Option<String>,
        /// Print each document's JSON on one line instead of the pretty format.
        #[arg(long)]
        json: bool,
        /// Poll interval while following, in seconds.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// While following, show a document once its @timestamp is this many seconds old, so
        /// that one on a shard that refreshes later is not passed over.
        #[arg(long, default_value_t = 2.0)]
        delay: f64,
        #[command(flatten)]
        secure: TailSecurity,
    },
}

/// `logship tail`'s options for a secured cluster (the elasticsearch output's TLS and auth
/// parameters). Secrets are best given by environment variable: `--help` never prints their
/// values, and they stay out of `ps`.
#[derive(clap::Args)]
struct TailSecurity {
    /// User for HTTP basic auth (or https://USER:PASSWORD@HOST in --url).
    #[arg(long, env = "ELASTICSEARCH_USER")]
    user: Option<String>,
    /// Password for HTTP basic auth.
    #[arg(long, env = "ELASTICSEARCH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// API key as ID:KEY (or Elasticsearch's base64 "encoded" form): Authorization: ApiKey.
    #[arg(long, env = "ELASTICSEARCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM file of the CA certificate(s) to trust (instead of the built-in Mozilla roots).
    #[arg(long, env = "ELASTICSEARCH_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate (encrypted, but not authenticated).
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, env = "ELASTICSEARCH_CLIENT_CERT")]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert; PKCS#8-encrypted with --client-key-pass.
    #[arg(long, env = "ELASTICSEARCH_CLIENT_KEY")]
    client_key: Option<PathBuf>,
    /// Passphrase of an encrypted --client-key.
    #[arg(long, env = "ELASTICSEARCH_CLIENT_KEY_PASS", hide_env_values = true)]
    client_key_pass: Option<String>,
}

impl TailSecurity {
    fn connection(self, url: &str) -> anyhow::Result<logship::tail::Connection> {
        use logship::secret::Secret;
        let tls = logship::output::elasticsearch::tls::TlsOptions {
            ca_file: self.ca_file,
            verify: !self.insecure,
            client_cert: self.client_cert,
            client_key: self.client_key,
            client_key_pass: self.client_key_pass.map(Secret::new),
            ..Default::default()
        };
        logship::tail::Connection::new(
            url,
            self.user.as_deref(),
            self.password.map(Secret::new).as_ref(),
            self.api_key.map(Secret::new).as_ref(),
            tls,
        )
        .map_err(anyhow::Error::msg)
    }
}

fn addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::CheckConfig { config } = &args.command {
        let code = cli::check::check_config(config, &mut std::io::stdout(), &mut std::io::stderr());
        return ExitCode::from(code as u8);
    }
    // `run` reads its config first so that `<system> log_level` can set the default level
    // (RUST_LOG / LOG_LEVEL still win).
    let mut run_config = None;
    let mut default_level = "info".to_string();
    if let Command::Run { config } = &args.command {
        match cli::run::load(config.as_deref()) {
            Ok(cfg) => {
                if let Some(l) = &cfg.system.log_level {
                    default_level = l.clone();
                }
                run_config = Some(cfg);
            }
            Err(e) => {
                eprintln!("logship: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    cli::telemetry::init(&default_level);
    if run_config.is_some() {
        cli::fd_limit::raise_and_log();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("logship: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<i32> = rt.block_on(async move {
        match args.command {
            Command::Run { .. } => {
                let cfg = run_config.expect("loaded above");
                cli::run::run(cfg).await.map(|()| 0)
            }
            Command::Cat {
                tag,
                host,
                port,
                shared_key,
                ack,
            } => {
                let opts = cli::cat::CatOptions {
                    tag,
                    addr: addr(&host, port),
                    shared_key,
                    ack,
                };
                let invalid = cli::cat::cat(&opts, tokio::io::stdin()).await?;
                Ok(i32::from(invalid > 0))
            }
            Command::Exec {
                tag,
                host,
                port,
                shared_key,
                ack,
                name,
                container_id,
                buffer_lines,
                flush_timeout,
                command,
            } => {
                cli::exec::exec(cli::exec::ExecOptions {
                    tag,
                    addr: addr(&host, port),
                    shared_key,
                    ack,
                    name,
                    container_id,
                    buffer_lines,
                    flush_timeout: Duration::from_secs_f64(flush_timeout.max(0.0)),
                    command,
                })
                .await
            }
            Command::Tail {
                url,
                index,
                follow,
                since,
                lines,
                query,
                container,
                tag,
                level,
                json,
                interval,
                delay,
                secure,
            } => {
                let opts = logship::tail::TailOptions {
                    connection: secure.connection(&url)?,
                    index,
                    follow,
                    since,
                    lines,
                    query,
                    container,
                    tag,
                    level,
                    json,
                    color: logship::tail::TailOptions::default_color(),
                    interval: Duration::from_secs_f64(interval.clamp(0.05, 3600.0)),
                    delay: Duration::from_secs_f64(delay.clamp(0.0, 86_400.0)),
                };
                let mut out = std::io::stdout();
                logship::tail::tail(opts, &mut out).await
            }
            Command::CheckConfig { .. } => unreachable!("handled above"),
        }
    });
    // Don't let lingering blocking tasks (stdin reads) hold the exit.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "logship failed");
            eprintln!("logship: {e:#}");
            ExitCode::FAILURE
        }
    }
}
