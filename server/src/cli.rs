//! The command line: `kraft serve` (the default) and `kraft migrate`.

use clap::{Parser, Subcommand};

use platform::accounts::{AccountError, Role};

use crate::config::Config;
use crate::startup::{shutdown_signal, Application};

#[derive(Debug, Parser)]
#[command(name = "kraft", version, about = "KRaft: a Kubernetes cluster for everyone, in seconds")]
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
    /// Administer accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account; the password is read from standard input (one line).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
    },
    /// Issue a single-use invite code (for `--signup-mode invite`) and print it.
    Invite {
        /// How long the code stays valid (e.g. 12h, 7d).
        #[arg(long, default_value = "7d", value_parser = crate::config::parse_duration)]
        valid_for: std::time::Duration,
    },
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
        Command::Admin { command } => admin(cli.config, command).await,
    }
}

async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    // Account administration needs no host cluster: the account service alone, on the database.
    let accounts =
        platform::accounts::Accounts::open(&config.database_url()?, config.account_settings())
            .await?;
    let outcome = match command {
        AdminCommand::CreateUser { email, username, admin } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let role = if admin { Role::Admin } else { Role::User };
            match accounts.create_user(&email, &username, password, role).await {
                Ok(user) => {
                    println!("created {} ({:?})", user.username, user.role);
                    Ok(())
                }
                Err(AccountError::Invalid(fields)) => {
                    let lines: Vec<String> =
                        fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                    Err(anyhow::anyhow!("cannot create the account:\n  {}", lines.join("\n  ")))
                }
                Err(other) => Err(other.into()),
            }
        }
        AdminCommand::Invite { valid_for } => {
            let code = accounts.create_invite(None, valid_for).await?;
            println!("{code}");
            Ok(())
        }
    };
    accounts.close().await?;
    outcome
}
