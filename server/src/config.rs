//! Configuration from flags and environment. With none at all KRaft runs on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use platform::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignupMode {
    /// Anyone.
    Open,
    /// Only with a single-use invite code from an admin (`kraft admin invite`).
    Invite,
    /// Nobody; admins create accounts with `kraft admin create-user`.
    Closed,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KRAFT_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub addr: SocketAddr,

    /// Database URL: postgres://user:pass@host/db or sqlite://path?mode=rwc.
    /// Without one KRaft keeps a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded defaults (the SQLite file).
    #[arg(long, env = "KRAFT_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Directory holding the built front end (pkg/kraft.js, pkg/kraft.wasm, pkg/kraft.css).
    #[arg(long, env = "KRAFT_SITE_ROOT", default_value = "target/site", global = true)]
    pub site_root: PathBuf,

    /// Who may sign up.
    #[arg(long, env = "KRAFT_SIGNUP_MODE", value_enum, default_value_t = SignupMode::Open, global = true)]
    pub signup_mode: SignupMode,

    /// A session unused for this long expires (e.g. 30m, 12h, 7d).
    #[arg(long, env = "KRAFT_SESSION_IDLE", default_value = "7d", value_parser = parse_duration, global = true)]
    pub session_idle: Duration,

    /// A session expires this long after sign-in, however active (e.g. 30d).
    #[arg(long, env = "KRAFT_SESSION_ABSOLUTE", default_value = "30d", value_parser = parse_duration, global = true)]
    pub session_absolute: Duration,

    /// Mark the session cookie `Secure` (set this when KRaft is served over HTTPS).
    #[arg(long, env = "KRAFT_SECURE_COOKIES", default_value_t = false, global = true)]
    pub secure_cookies: bool,

    /// Log output format.
    #[arg(long, env = "KRAFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// "90s", "30m", "12h", "7d" (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 =
        number.parse().map_err(|_| format!("'{text}' is not a duration like 30m, 12h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit '{unit}' in '{text}' (use s, m, h or d)")),
    };
    if number == 0 {
        return Err("a duration must be longer than zero".to_owned());
    }
    Ok(Duration::from_secs(number * seconds))
}

impl Config {
    pub fn account_settings(&self) -> platform::accounts::AccountSettings {
        platform::accounts::AccountSettings {
            signup: match self.signup_mode {
                SignupMode::Open => platform::accounts::SignupMode::Open,
                SignupMode::Invite => platform::accounts::SignupMode::Invite,
                SignupMode::Closed => platform::accounts::SignupMode::Closed,
            },
            session_idle: self.session_idle,
            session_absolute: self.session_absolute,
            ..Default::default()
        }
    }

    /// The database to use: the configured URL, or the embedded SQLite file.
    pub fn database_url(&self) -> Result<DatabaseUrl, platform::Error> {
        match &self.database_url {
            Some(url) => url.parse(),
            None => Ok(DatabaseUrl::sqlite_file(&self.data_dir.join("kraft.db"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(parse_duration("7w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
