//! The database connection: PostgreSQL in production, a SQLite file as the zero-config default.

pub mod entities;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;

use crate::{Error, Result};

/// What database calls fail with, for callers that map failures (the web edge).
pub use sea_orm::{ConnAcquireErr, DbErr};

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn display_name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

/// A database URL whose backend is known. Its `Debug`/`Display` hide any password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// The embedded default: a SQLite file under `dir`, created on first start.
    pub fn sqlite_file(path: &Path) -> Self {
        Self { url: format!("sqlite://{}?mode=rwc", path.display()), backend: Backend::Sqlite }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The file a SQLite URL points at, if any (not for `:memory:`).
    fn sqlite_path(&self) -> Option<&Path> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self.url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then_some(Path::new(path))
    }
}

impl FromStr for DatabaseUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(Error::UnsupportedDatabaseUrl(redact(url)));
        };
        Ok(Self { url: url.to_owned(), backend })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A pooled connection back in the pool for less than this is taken as alive without a ping:
/// sqlx pings every connection as it goes back, so it answered a moment ago. Under load every
/// query takes such a connection, and a second ping as it was taken (sqlx's default) was a round
/// trip to the server per query for nothing. One idle longer is pinged first, so a connection
/// the server dropped meanwhile (a restart, a failover, an idle timeout) is replaced before a
/// query fails on it. HikariCP draws the same line at 500 ms (`aliveBypassWindowMs`).
const TRUST_USED_WITHIN: Duration = Duration::from_secs(1);

pub async fn connect(url: &DatabaseUrl) -> Result<DatabaseConnection> {
    if let Some(path) = url.sqlite_path() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::SqliteDirectory {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    if url.backend() == Backend::Postgres {
        return connect_postgres(url).await;
    }
    let mut options = ConnectOptions::new(url.expose());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // One writer at a time is SQLite's rule, and a read transaction that later writes fails
        // at once with SQLITE_BUSY when another writer got in first. One connection serialises
        // all access: ample for the embedded default, and never "database is locked".
        .max_connections(1)
        // A file in this process cannot hang up: a ping would only be a trip to sqlx's worker
        // thread and back before every query.
        .test_before_acquire(false);
    Ok(Database::connect(options).await?)
}

/// PostgreSQL: sea-orm's pool, built here only to ping idle connections alone (see
/// [`TRUST_USED_WITHIN`]); timeouts and statement logging as the SQLite path sets them.
async fn connect_postgres(url: &DatabaseUrl) -> Result<DatabaseConnection> {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    use sea_orm::SqlxPostgresConnector;

    let options = url
        .expose()
        .parse::<PgConnectOptions>()
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= TRUST_USED_WITHIN {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    migrations::Migrator::up(db, None).await?;
    Ok(())
}

/// The database had no connection free in time (the pool's acquire timeout): every one is busy,
/// so the request may succeed if tried again, unlike other failures.
pub fn is_busy(error: &DbErr) -> bool {
    matches!(error, DbErr::ConnectionAcquire(_))
}

pub async fn ping(db: &DatabaseConnection) -> Result<()> {
    let backend = db.get_database_backend();
    db.execute(Statement::from_string(backend, "SELECT 1")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_not_had_in_time_is_busy() {
        assert!(is_busy(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
        assert!(is_busy(&DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)));
        assert!(!is_busy(&DbErr::Custom("broken".into())));
        assert!(!is_busy(&DbErr::RecordNotFound("row".into())));
    }

    #[test]
    fn passwords_never_print() {
        let url: DatabaseUrl = "postgres://kraft:s3cret@db:5432/kraft".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://kraft:***@db:5432/kraft");
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[test]
    fn unknown_schemes_are_refused_without_leaking_the_password() {
        let err = "mysql://root:hunter2@db/kraft".parse::<DatabaseUrl>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn sqlite_paths_are_found() {
        let url = DatabaseUrl::sqlite_file(Path::new("data/kraft.db"));
        assert_eq!(url.sqlite_path(), Some(Path::new("data/kraft.db")));
        let memory: DatabaseUrl = "sqlite::memory:".parse().unwrap();
        assert_eq!(memory.sqlite_path(), None);
    }
}
