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
    /// Log in to a KRaft (saves its address and an API token for the commands below).
    Login(crate::client::LoginArgs),
    /// Forget the saved address and token.
    Logout,
    /// Your clusters on the KRaft you logged in to.
    Clusters {
        #[command(subcommand)]
        command: crate::client::ClustersCommand,
        /// table for people, json for scripts.
        #[arg(long, short = 'o', value_enum, default_value_t = crate::client::Output::Table, global = true)]
        output: crate::client::Output,
    },
    /// Issue a kubeconfig for one of your clusters: print it, write it (-f), or merge it into
    /// ~/.kube/config (--merge).
    Kubeconfig {
        #[command(flatten)]
        args: crate::client::KubeconfigArgs,
        #[arg(long, short = 'o', value_enum, default_value_t = crate::client::Output::Table, global = true)]
        output: crate::client::Output,
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
    /// Create a personal API token for an account and print it (e.g. for a CI pipeline).
    CreateToken {
        #[arg(long)]
        username: String,
        /// What it is for, e.g. CI.
        #[arg(long)]
        name: String,
        /// Comma-separated: read, clusters, kubeconfigs.
        #[arg(long, value_delimiter = ',', default_value = "read,clusters,kubeconfigs")]
        scopes: Vec<String>,
        /// Days it stays valid: 1, 7, 30, 90 or 365.
        #[arg(long, default_value_t = 30)]
        days: u32,
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
        Command::Login(args) => Ok(crate::client::login(args).await?),
        Command::Logout => {
            let path = crate::client::config_path();
            match std::fs::remove_file(&path) {
                Ok(()) => eprintln!("Logged out: removed {}.", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("Not logged in."),
                Err(e) => return Err(anyhow::anyhow!("cannot remove {}: {e}", path.display())),
            }
            Ok(())
        }
        Command::Clusters { command, output } => {
            Ok(crate::client::clusters(command, output).await?)
        }
        Command::Kubeconfig { args, output } => Ok(crate::client::kubeconfig(args, output).await?),
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
        AdminCommand::CreateToken { username, name, scopes, days } => {
            let mut parsed = Vec::new();
            for scope in &scopes {
                parsed.push(platform::access::api_tokens::Scope::parse(scope.trim()).ok_or_else(
                    || {
                        anyhow::anyhow!(
                            "unknown scope {scope:?}: use read, clusters or kubeconfigs"
                        )
                    },
                )?);
            }
            let user = accounts.by_username(&username).await?;
            let access = platform::access::Access::new(accounts.db().clone());
            match access.api_tokens().create(&user, &name, &parsed, days, None).await {
                Ok(issued) => {
                    println!("{}", issued.token);
                    Ok(())
                }
                Err(platform::access::AccessError::Invalid(fields)) => {
                    let lines: Vec<String> =
                        fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                    Err(anyhow::anyhow!("cannot create the token:\n  {}", lines.join("\n  ")))
                }
                Err(other) => Err(anyhow::anyhow!("cannot create the token: {other}")),
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
