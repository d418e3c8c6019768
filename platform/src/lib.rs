//! KRaft's domain, below the UI crate: what server functions and HTTP handlers call. Nothing here
//! knows about HTTP, Leptos or the browser.

pub mod about;
pub mod accounts;
pub mod db;

use std::sync::Arc;

pub use about::About;
pub use db::{Backend, DatabaseUrl};

/// Errors of the platform crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot prepare the SQLite directory {path}: {source}")]
    SqliteDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported database URL (expected postgres:// or sqlite:): {0}")]
    UnsupportedDatabaseUrl(String),
    #[error(transparent)]
    Hash(#[from] accounts::HashError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the platform needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub accounts: accounts::AccountSettings,
}

/// The running platform: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    db: sea_orm::DatabaseConnection,
    about: About,
    accounts: accounts::Accounts,
    /// Background work owned by the platform, stopped by `close`.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Platform {
    /// Connects to the database and brings its schema up to date.
    pub async fn start(settings: Settings) -> Result<Self> {
        let db = db::connect(&settings.database_url).await?;
        db::migrate(&db).await?;
        let about = About::new(settings.database_url.backend());
        let accounts = accounts::Accounts::new(db.clone(), settings.accounts)?;
        let tasks = vec![tokio::spawn(sweep_expired_sessions(db.clone()))];
        Ok(Self { inner: Arc::new(Inner { db, about, accounts, tasks }) })
    }

    pub fn about(&self) -> &About {
        &self.inner.about
    }

    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.inner.db
    }

    pub fn accounts(&self) -> &accounts::Accounts {
        &self.inner.accounts
    }

    /// The tower-sessions store on this platform's database.
    pub fn session_store(&self) -> accounts::DbSessionStore {
        accounts::DbSessionStore::new(self.inner.db.clone())
    }

    /// Whether the database answers a trivial query.
    pub async fn database_ready(&self) -> Result<()> {
        db::ping(&self.inner.db).await
    }

    /// Closes the database pool; call once on shutdown.
    pub async fn close(self) -> Result<()> {
        for task in &self.inner.tasks {
            task.abort();
        }
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.db.close().await?),
            // Someone still holds a clone (a request in flight): the pool closes when it is dropped.
            Err(_) => Ok(()),
        }
    }
}

/// Deletes expired session rows every few minutes.
async fn sweep_expired_sessions(db: sea_orm::DatabaseConnection) {
    use tower_sessions::session_store::ExpiredDeletion;
    let store = accounts::DbSessionStore::new(db);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        every.tick().await;
        if let Err(error) = store.delete_expired().await {
            tracing::warn!(%error, "could not delete expired sessions");
        }
    }
}
