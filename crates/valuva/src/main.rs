use anyhow::Context;
use clap::{Parser, Subcommand};
use platform::Config;
use std::process::ExitCode;

/// Valuva: a headless e-commerce backend. Configuration comes from the environment (and an
/// optional `.env`); see the README for every variable.
#[derive(Parser)]
#[command(name = "valuva", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Exit 0 when the local server answers /live (for container health checks).
    Healthcheck {
        /// Defaults to http://127.0.0.1:$PORT/live.
        #[arg(long)]
        url: Option<String>,
    },
    /// Administrative accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account (or promote an existing one and set its password).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, env = "VALUVA_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits 1 and names the first bad row when it was tampered with.
    Verify,
    /// Delete rows older than AUDIT_RETENTION_DAYS (or --days), keeping the chain verifiable.
    Prune {
        #[arg(long)]
        days: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // sqlx uses ring, reqwest and friends aws-lc-rs: pick one provider before any TLS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = dotenvy::dotenv();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let format = config.log_format.unwrap_or_else(|| {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            platform::config::LogFormat::Pretty
        } else {
            platform::config::LogFormat::Json
        }
    });
    platform::telemetry::init(&config.log_level, format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    match rt.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let app = valuva::Application::build(config).await?;
            tracing::info!(addr = %app.local_addr(), "serving");
            app.run_until(valuva::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let db = valuva::connect_db(&config).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::Openapi => {
            println!(
                "{}",
                http_api::openapi()
                    .to_pretty_json()
                    .context("serialising the spec")?
            );
        }
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/live", config.port));
            return Ok(if valuva::healthcheck(&url).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Admin {
            command: AdminCommand::Create { email, password },
        } => {
            let state = valuva::build_state(config).await?;
            let meta = services::RequestMeta::system();
            match state.identity.create_admin(&meta, &email, &password).await {
                Ok(user) => println!("admin {} ({})", user.email, user.id),
                Err(e) => anyhow::bail!("{}", describe(e)),
            }
        }
        Command::Audit { command } => {
            let db = valuva::connect_db(&config).await?;
            db.migrate().await?;
            match command {
                AuditCommand::Verify => {
                    let report = services::audit::verify(&db)
                        .await
                        .map_err(|e| anyhow::anyhow!(describe(e)))?;
                    if let Some((seq, why)) = report.first_problem {
                        println!(
                            "audit chain BROKEN at row {seq}: {why} ({} rows verified before it)",
                            report.rows_checked
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                    println!("audit chain OK: {} rows verified", report.rows_checked);
                }
                AuditCommand::Prune { days } => {
                    let days = days.unwrap_or(config.audit_retention_days);
                    let before = chrono::Utc::now() - chrono::TimeDelta::days(days as i64);
                    let n = services::audit::prune(&db, &services::RequestMeta::system(), before)
                        .await
                        .map_err(|e| anyhow::anyhow!(describe(e)))?;
                    println!("pruned {n} audit rows older than {days} days");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(e: services::ServiceError) -> String {
    match e {
        services::ServiceError::Validation(errs) => errs
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
