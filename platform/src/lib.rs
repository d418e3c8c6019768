//! KRaft's domain, below the UI crate: what server functions and HTTP handlers call. Nothing here
//! knows about HTTP, Leptos or the browser.

pub mod about;
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the platform needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
}

/// The running platform: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    db: sea_orm::DatabaseConnection,
    about: About,
}

impl Platform {
    /// Connects to the database and brings its schema up to date.
    pub async fn start(settings: Settings) -> Result<Self> {
        let db = db::connect(&settings.database_url).await?;
        db::migrate(&db).await?;
        let about = About::new(settings.database_url.backend());
        Ok(Self {
            inner: Arc::new(Inner { db, about }),
        })
    }

    pub fn about(&self) -> &About {
        &self.inner.about
    }

    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.inner.db
    }

    /// Whether the database answers a trivial query.
    pub async fn database_ready(&self) -> Result<()> {
        db::ping(&self.inner.db).await
    }

    /// Closes the database pool; call once on shutdown.
    pub async fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.db.close().await?),
            // Someone still holds a clone (a request in flight): the pool closes when it is dropped.
            Err(_) => Ok(()),
        }
    }
}
