//! The `camgate` command.

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};

use camgate::app::App;
use camgate::config::{Config, ConfigArgs};
use camgate::store::{Store, TokenRole, db};

/// camgate — GB28181 platform and media gateway for security cameras.
///
/// Without a subcommand, runs the gateway. Settings come from embedded
/// defaults, then `camgate.toml` (or --config), then CAMGATE_* environment
/// variables, then flags.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage REST API bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it (it is shown only once).
    Create {
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: TokenRole,
    },
    /// List tokens (never their values).
    List,
    /// Delete a token by id.
    Revoke { id: i64 },
}

fn parse_role(s: &str) -> Result<TokenRole, String> {
    match s {
        "admin" => Ok(TokenRole::Admin),
        "operator" => Ok(TokenRole::Operator),
        "viewer" => Ok(TokenRole::Viewer),
        _ => Err("expected admin, operator or viewer".into()),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("invalid log filter {filter:?} ({e}); using \"info\"");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli.config).context("configuration")?;
    init_logging(&config.log);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(config),
        Command::Migrate => {
            let store = Store::open_in_dir(&config.data_dir)?;
            println!(
                "database {} at schema version {}",
                store.path().display(),
                camgate::store::schema_version()
            );
            store.close()?;
            Ok(())
        }
        Command::Token { command } => {
            let store = Store::open_in_dir(&config.data_dir)?;
            match command {
                TokenCommand::Create { name, role } => {
                    let token = store.call_sync(|c| {
                        let t = db::generate_token()?;
                        db::insert_token(c, &name, &t, role)?;
                        Ok(t)
                    })?;
                    println!("{token}");
                }
                TokenCommand::List => {
                    for t in store.call_sync(|c| db::list_tokens(c))? {
                        println!("{}\t{}\t{}\t{}…", t.id, t.role.as_str(), t.name, t.prefix);
                    }
                }
                TokenCommand::Revoke { id } => {
                    if !store.call_sync(|c| db::delete_token(c, id))? {
                        anyhow::bail!("no token with id {id}");
                    }
                }
            }
            store.close()?;
            Ok(())
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("camgate")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let app = App::start(config).await?;
        let shutdown = app.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        });
        app.serve().await?;
        anyhow::Ok(())
    })?;
    // Viewer connections still draining are cut here.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
