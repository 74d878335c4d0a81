//! `starling-server`: the aggregation server's command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use starling_server::{auth, AppState, ServerConfig, SqliteStorage, Storage};

/// Starling's aggregation server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    listen: SocketAddr,
    /// Directory of the embedded database.
    #[arg(long, default_value = "./starling-data", global = true)]
    data_dir: PathBuf,
    /// Largest accepted request body (compressed), in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest accepted body after decompression, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_decompressed_bytes: usize,
    /// Fewest distinct contributing devices before a bandit's fleet prior is published.
    #[arg(long, default_value_t = 5)]
    prior_min_devices: u32,
    /// A file of API keys to register at start-up, one `app:key` per line.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// A JSON file of signal and bandit definitions served to devices at GET /v1/config (see
    /// docs/server.md).
    #[arg(long)]
    device_config: Option<PathBuf>,
    /// A JSON file of federated learning tasks (`{"tasks": [...]}`, see docs/federated.md).
    #[arg(long)]
    learning_tasks: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Create an API key for an app, store its hash, and print the key once.
    CreateKey {
        /// The app's name.
        #[arg(long)]
        app: String,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("starling-server: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::CreateKey { app } => {
            let key = auth::generate_key();
            SqliteStorage::open(&cli.data_dir)?.add_api_key(&app, &auth::hash_key(&key))?;
            println!("{key}");
            Ok(())
        }
        Command::Serve => {
            let mut config = ServerConfig::new(&cli.data_dir);
            config.max_body_bytes = cli.max_body_bytes;
            config.max_decompressed_bytes = cli.max_decompressed_bytes;
            config.prior_min_devices = cli.prior_min_devices;
            if let Some(file) = &cli.device_config {
                config.device_config = Some(starling_server::load_device_config(file)?);
            }
            if let Some(file) = &cli.learning_tasks {
                config.learning_tasks = starling_server::learning::load_tasks(file)?;
            }
            if let Some(file) = &cli.api_key_file {
                for (number, line) in std::fs::read_to_string(file)?.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (app, key) = line.split_once(':').ok_or_else(|| {
                        format!("{}:{}: expected `app:key`", file.display(), number + 1)
                    })?;
                    config.api_keys.push((app.trim().into(), key.trim().into()));
                }
            }
            let state = AppState::open(config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(cli.listen).await?;
                log::info!(
                    "listening on http://{}, data in {}",
                    listener.local_addr()?,
                    cli.data_dir.display()
                );
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                    log::info!("shutting down");
                };
                starling_server::serve(listener, state, shutdown).await
            })?;
            Ok(())
        }
    }
}
