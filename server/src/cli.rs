//! The command line: `kraft serve` (the default) and `kraft migrate`.

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::{shutdown_signal, Application};

#[derive(Debug, Parser)]
#[command(
    name = "kraft",
    version,
    about = "KRaft: a Kubernetes cluster for everyone, in seconds"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web application (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(cli.config).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate => {
            let url = cli.config.database_url()?;
            let db = platform::db::connect(&url).await?;
            platform::db::migrate(&db).await?;
            tracing::info!(database = %url, "migrations applied");
            Ok(())
        }
    }
}
