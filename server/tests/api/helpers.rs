use std::path::PathBuf;
use std::time::Duration;

use kraft::config::LogFormat;
use kraft::{Application, Config};
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The database a test runs against.
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

/// Runs one async test body once per backend, as two named tests.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            use $crate::helpers::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
        }
    };
}

/// A running KRaft with its own database; everything is torn down on drop.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database = match backend {
        Backend::Postgres => TestDatabase::create_postgres().await,
        // Leave DATABASE_URL unset: the zero-config default (a SQLite file in the data dir).
        Backend::Sqlite => TestDatabase::EmbeddedSqlite(data_dir.path().join("kraft.db")),
    };
    let config = Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        database_url: database.url(),
        data_dir: data_dir.path().to_path_buf(),
        site_root: data_dir.path().join("site"),
        log_format: LogFormat::Text,
    };
    let app = Application::build(config)
        .await
        .expect("application starts");
    let address = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    TestApp {
        address,
        client,
        database,
        shutdown: Some(tx),
        server: Some(server),
        _data_dir: data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Calls a Leptos server function the way the browser does without JavaScript (URL-encoded).
    pub async fn server_fn(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/{endpoint}")))
            .header("Accept", "application/json")
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A database that exists for one test only.
pub enum TestDatabase {
    Postgres { admin_url: String, name: String },
    EmbeddedSqlite(PathBuf),
}

fn admin_url() -> String {
    std::env::var("KRAFT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    async fn create_postgres() -> Self {
        let admin_url = admin_url();
        let name = format!("kraft_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.expect(
            "PostgreSQL must be reachable (KRAFT_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)",
        );
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        TestDatabase::Postgres { admin_url, name }
    }

    /// The URL the app is configured with (`None` means the embedded default).
    pub fn url(&self) -> Option<String> {
        match self {
            TestDatabase::Postgres { admin_url, name } => {
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(admin_url);
                Some(format!("{base}/{name}"))
            }
            TestDatabase::EmbeddedSqlite(_) => None,
        }
    }

    /// Removes the Postgres database now (even with the app still connected).
    pub async fn drop_now(&self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let admin = Database::connect(admin_url)
                .await
                .expect("admin connection");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .expect("drop test database");
            admin.close().await.expect("close admin connection");
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside async: use a private runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}
