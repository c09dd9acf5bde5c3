use anyhow::Context;
use clap::{Parser, Subcommand};
use platform::Config;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: measurably faster for the many small, short-lived
/// allocations of request handling, and it returns memory instead of fragmenting arenas
/// (glibc grew the server to 440 MB under the benchmark's load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run background jobs only (outbox dispatch, email, housekeeping) until SIGTERM.
    Worker,
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
    /// Load data: the demo catalog (default) or N synthetic products for benchmarks.
    Seed {
        /// Bulk-load this many synthetic products (two variants each) instead of the demo.
        #[arg(long)]
        products: Option<u64>,
        /// Products per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: u64,
    },
    /// The inventory ledger.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
}

#[derive(Subcommand)]
enum InventoryCommand {
    /// Check that every variant's movements add up to its stock plus reservations.
    Verify,
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

/// SQLite's C code allocates with glibc's malloc (only Rust code uses mimalloc), and glibc
/// gives every thread that allocates its own arena, up to eight per core. Each SQLite connection
/// runs on its own thread, so each kept its own partly-used arena: the process grew past 150 MB
/// under SQLite load. Two arenas for the whole process: SQLite's calls are few and short.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tunable; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
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
    let sentry = platform::telemetry::init_sentry(&config);
    platform::telemetry::init(&config.log_level, format, sentry.is_some());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
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
            // Start-up (migration check, router and OpenAPI document, pools) frees ~20 MB that
            // mimalloc would keep until its next allocations in the same pages; an idle
            // instance would hold it indefinitely. Return it to the OS once, now.
            // SAFETY: mi_collect only walks mimalloc's own heaps; any thread may call it.
            unsafe { libmimalloc_sys::mi_collect(true) };
            tracing::info!(addr = %app.local_addr(), "serving");
            app.run_until(valuva::shutdown_signal()).await?;
        }
        Command::Worker => {
            let state = valuva::build_state(config).await?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let sealing = valuva::housekeeping::spawn(state.clone(), stop_rx.clone());
            // Nothing else here uses the pool: the worker shares it.
            let worker = valuva::jobs::spawn(&state, state.db.clone(), stop_rx)?;
            tracing::info!("worker running");
            valuva::shutdown_signal().await;
            let _ = stop_tx.send(true);
            let grace = std::time::Duration::from_secs(state.config.shutdown_timeout_seconds);
            let _ = tokio::time::timeout(grace, async { tokio::join!(worker, sealing) }).await;
            state.db.clone().close().await;
            tracing::info!("worker stopped");
        }
        Command::Migrate => {
            let db = valuva::connect_db(&config).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::Openapi => {
            println!("{}", http_api::openapi().to_pretty_json().context("serialising the spec")?);
        }
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/live", config.port));
            return Ok(if valuva::healthcheck(&url).await { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::Admin { command: AdminCommand::Create { email, password } } => {
            let state = valuva::build_state(config).await?;
            let meta = services::RequestMeta::system();
            match state.identity.create_admin(&meta, &email, &password).await {
                Ok(user) => println!("admin {} ({})", user.email, user.id),
                Err(e) => anyhow::bail!("{}", describe(e)),
            }
        }
        Command::Seed { products: None, .. } => {
            let state = valuva::build_state(config).await?;
            // Not beside an instance seeding at start-up (see `Db::setup_lock`).
            let lock = state.db.setup_lock().await?;
            let n = services::seed::demo(&state.db, &state.catalog).await.map_err(|e| anyhow::anyhow!(describe(e)))?;
            state.shipping.seed_demo(&services::RequestMeta::system()).await.map_err(|e| anyhow::anyhow!(describe(e)))?;
            lock.release().await;
            println!("demo catalog: {n} products created");
        }
        Command::Seed { products: Some(n), batch } => {
            let db = valuva::connect_db(&config).await?;
            db.migrate().await?;
            let bar = indicatif::ProgressBar::new(n);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} products  {per_sec}  eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let started = std::time::Instant::now();
            let done = services::seed::bulk(&db, n, batch.clamp(1, 5000), |d| bar.set_position(d))
                .await
                .map_err(|e| anyhow::anyhow!(describe(e)))?;
            bar.finish();
            let secs = started.elapsed().as_secs_f64();
            // Each product is 1 product row, 1 category link, 2 variants and 2 ledger rows.
            println!(
                "seeded {done} products ({} rows) in {secs:.1} s: {:.0} products/s, {:.0} rows/s",
                done * 6,
                done as f64 / secs,
                (done * 6) as f64 / secs
            );
        }
        Command::Inventory { command: InventoryCommand::Verify } => {
            let db = valuva::connect_db(&config).await?;
            let bad = services::inventory::verify(&db).await.map_err(|e| anyhow::anyhow!(describe(e)))?;
            if bad.is_empty() {
                println!("inventory ledger OK: every variant's movements match its stock");
            } else {
                for m in &bad {
                    println!(
                        "MISMATCH {}: ledger says stock {} reserved {}, variant has stock {} reserved {}",
                        m.sku, m.ledger_stock, m.ledger_reserved, m.stock, m.reserved
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Audit { command } => {
            let db = valuva::connect_db(&config).await?;
            db.migrate().await?;
            match command {
                AuditCommand::Verify => {
                    let report = services::audit::verify(&db).await.map_err(|e| anyhow::anyhow!(describe(e)))?;
                    if let Some((seq, why)) = report.first_problem {
                        println!("audit chain BROKEN at row {seq}: {why} ({} rows verified before it)", report.rows_checked);
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
        services::ServiceError::Validation(errs) => {
            errs.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}
