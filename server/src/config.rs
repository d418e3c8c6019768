//! Configuration from flags and environment. With none at all KRaft runs on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use platform::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "KRAFT_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub addr: SocketAddr,

    /// Database URL: postgres://user:pass@host/db or sqlite://path?mode=rwc.
    /// Without one KRaft keeps a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded defaults (the SQLite file).
    #[arg(long, env = "KRAFT_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Directory holding the built front end (pkg/kraft.js, pkg/kraft.wasm, pkg/kraft.css).
    #[arg(
        long,
        env = "KRAFT_SITE_ROOT",
        default_value = "target/site",
        global = true
    )]
    pub site_root: PathBuf,

    /// Log output format.
    #[arg(long, env = "KRAFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl Config {
    /// The database to use: the configured URL, or the embedded SQLite file.
    pub fn database_url(&self) -> Result<DatabaseUrl, platform::Error> {
        match &self.database_url {
            Some(url) => url.parse(),
            None => Ok(DatabaseUrl::sqlite_file(&self.data_dir.join("kraft.db"))),
        }
    }
}
