use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use clap::Parser;
use kraft::cli::Cli;
use kraft::config::LogFormat;
use kraft::{Application, Config};
use reqwest::cookie::{CookieStore, Jar};
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
    /// A browser-like client with its own cookie jar.
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub database: TestDatabase,
    /// The simulated host the app talks to over HTTPS (kube-rs), as it would to a real one.
    pub hostsim: Option<hostsim::Running>,
    /// The one-time token that makes the first admin (printed in the server log at start).
    pub setup_token: Option<String>,
    /// The installation id KRaft labels its host objects with.
    pub installation_id: uuid::Uuid,
    /// `http://<KRAFT_METRICS_ADDR>` when the test set one.
    pub metrics_address: Option<String>,
    /// The configuration it runs with (a replica gets the same).
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts KRaft with the test defaults changed by `configure`.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(backend, hostsim::Config::default(), configure).await
}

/// Starts KRaft on a hostsim with `host` settings (slower pods, say).
pub async fn spawn_app_on(
    backend: Backend,
    host: hostsim::Config,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    // TEST_LOG=1 shows the server's logs (filtered by RUST_LOG).
    if std::env::var_os("TEST_LOG").is_some() {
        kraft::telemetry::init(LogFormat::Text);
    }
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database = match backend {
        Backend::Postgres => TestDatabase::create_postgres().await,
        // Leave DATABASE_URL unset: the zero-config default (a SQLite file in the data dir).
        Backend::Sqlite => TestDatabase::EmbeddedSqlite(data_dir.path().join("kraft.db")),
    };
    let hostsim = hostsim::start(host).await.expect("hostsim starts");
    let kubeconfig = data_dir.path().join("host-kubeconfig.yaml");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml()).expect("write host kubeconfig");
    // Every setting at its default, as `kraft serve` with no flags would have it, then the test's.
    let mut config = Cli::try_parse_from(["kraft"]).expect("default config").config;
    config.addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url = database.url();
    config.data_dir = data_dir.path().to_path_buf();
    config.site_root = data_dir.path().join("site");
    config.session_idle = Duration::from_secs(3600);
    config.session_absolute = Duration::from_secs(24 * 3600);
    config.host_kubeconfig = Some(kubeconfig);
    config.host_is_hostsim = true;
    // No wildcard DNS here: with ingress access the gateway dials hostsim's ingress controller,
    // naming the cluster by SNI.
    config.ingress_address = hostsim.ingress_addr().map(|a| a.to_string());
    config.reconcile_interval = Duration::from_millis(500);
    configure(&mut config);
    let app = Application::build(config.clone()).await.expect("application starts");
    let address = format!("http://{}", app.local_addr());
    let setup_token = app.setup_token().map(str::to_owned);
    let installation_id = app.installation_id();
    let metrics_address = app.metrics_addr().map(|a| format!("http://{a}"));
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let (client, jar) = browser();
    TestApp {
        address,
        client,
        jar,
        database,
        hostsim: Some(hostsim),
        setup_token,
        installation_id,
        metrics_address,
        config,
        shutdown: Some(tx),
        server: Some(server),
        _data_dir: data_dir,
    }
}

/// Another `kraft` on the same database and host; stops when dropped.
pub struct Replica {
    pub address: String,
    _shutdown: oneshot::Sender<()>,
}

/// A client that keeps cookies like a browser and does not follow redirects.
pub fn browser() -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    (client, jar)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
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

    /// A kube-rs client for the simulated host, to look at (or tamper with) what KRaft made there.
    pub async fn host(&self) -> kube::Client {
        let yaml = self.hostsim.as_ref().expect("a simulated host").kubeconfig_yaml();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).expect("host kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("host client")
    }

    pub fn hostsim(&self) -> &hostsim::Running {
        self.hostsim.as_ref().expect("a simulated host")
    }

    /// A second browser (its own cookies) on the same server.
    pub fn another_browser(&self) -> TestBrowser {
        let (client, jar) = browser();
        TestBrowser { address: self.address.clone(), client, jar }
    }

    /// This app's own browser.
    pub fn browser(&self) -> TestBrowser {
        TestBrowser {
            address: self.address.clone(),
            client: self.client.clone(),
            jar: self.jar.clone(),
        }
    }

    /// A second KRaft process on the same database and host (another replica).
    pub async fn replica(&self) -> Replica {
        let app = Application::build(self.config.clone()).await.expect("replica starts");
        let address = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Replica { address, _shutdown: tx }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stops cleanly");
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

/// The one number a `SELECT COUNT(*) …` answers, read from the app's database.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let db = app.database.connect().await;
    let row = db
        .query_one(sea_orm::Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .expect("count query")
        .expect("a row");
    let n: i64 = row.try_get_by_index(0).expect("a number");
    db.close().await.expect("close");
    n
}

/// A database that exists for one test only.
pub enum TestDatabase {
    Postgres { admin_url: String, name: String },
    EmbeddedSqlite(PathBuf),
}

impl TestDatabase {
    /// A connection of the test's own, to look at what the app stored.
    pub async fn connect(&self) -> sea_orm::DatabaseConnection {
        let url = match self {
            TestDatabase::Postgres { .. } => self.url().expect("postgres url"),
            TestDatabase::EmbeddedSqlite(path) => format!("sqlite://{}?mode=rw", path.display()),
        };
        Database::connect(&url).await.expect("test connection")
    }
}

fn admin_url() -> String {
    std::env::var("KRAFT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    pub async fn create_postgres() -> Self {
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
                let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(admin_url);
                Some(format!("{base}/{name}"))
            }
            TestDatabase::EmbeddedSqlite(_) => None,
        }
    }

    /// Removes the Postgres database now (even with the app still connected).
    pub async fn drop_now(&self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let admin = Database::connect(admin_url).await.expect("admin connection");
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
                let Ok(runtime) =
                    tokio::runtime::Builder::new_current_thread().enable_all().build()
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

/// One browser: a cookie jar and the calls a user makes.
#[derive(Clone)]
pub struct TestBrowser {
    pub address: String,
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A websocket as the tests hold one.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The handshake of a websocket to `path` on the KRaft at `address`, as a page of `origin`
/// opens it, with the session cookie's value `cookie` if any.
pub fn ws_request(
    address: &str,
    path: &str,
    cookie: Option<&str>,
    origin: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request =
        format!("{}{path}", address.replace("http://", "ws://")).into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert("Cookie", format!("kraft_session={cookie}").parse().unwrap());
    }
    request.headers_mut().insert("Origin", origin.parse().unwrap());
    request
}

/// The next message on a live view, as JSON (within 30 s).
pub async fn next_json(socket: &mut Socket) -> serde_json::Value {
    use futures::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .expect("a message within 30 s")
        .expect("the socket is open")
        .expect("a frame");
    serde_json::from_str(message.to_text().expect("text")).expect("JSON")
}

impl TestBrowser {
    /// Opens `path` as a websocket from one of this KRaft's pages, as this browser.
    pub async fn websocket(
        &self,
        path: &str,
    ) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        self.websocket_from(path, &self.address).await
    }

    /// Opens `path` as a websocket from a page of `origin`, as this browser.
    pub async fn websocket_from(
        &self,
        path: &str,
        origin: &str,
    ) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let cookie = self.session_cookie();
        let request = ws_request(&self.address, path, cookie.as_deref(), origin);
        tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
    }
}

impl TestBrowser {
    /// Calls a server function as the Leptos client does (URL-encoded in, JSON out), from KRaft's
    /// own origin.
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}/api/{endpoint}", self.address))
            .header("Accept", "application/json")
            .header("Origin", &self.address)
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, email: &str, username: &str, password: &str) -> reqwest::Response {
        self.call(
            "account/register",
            &[
                ("email", email),
                ("username", username),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await
    }

    /// Registers `username` (`<username>@example.org`, the test password) with extra form fields.
    pub async fn register_with(&self, username: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let email = format!("{username}@example.org");
        let mut form = vec![
            ("email", email.as_str()),
            ("username", username),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ];
        form.extend_from_slice(extra);
        self.call("account/register", &form).await
    }

    /// Registers the first admin with the app's one-time setup token; must succeed.
    pub async fn sign_up_admin(&self, app: &TestApp, username: &str) {
        let token = app.setup_token.as_deref().expect("a setup token (no admin yet)");
        let response = self.register_with(username, &[("setup_token", token)]).await;
        assert_eq!(
            response.status(),
            200,
            "admin sign-up failed: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Registers `username` with `<username>@example.org` and the test password; must succeed.
    pub async fn sign_up(&self, username: &str) {
        let response = self.register(&format!("{username}@example.org"), username, PASSWORD).await;
        assert_eq!(
            response.status(),
            200,
            "sign-up failed: {}",
            response.text().await.unwrap_or_default()
        );
    }

    pub async fn login(&self, identifier: &str, password: &str) -> reqwest::Response {
        self.call("account/login", &[("identifier", identifier), ("password", password)]).await
    }

    pub async fn change_password(&self, current: &str, new: &str) -> reqwest::Response {
        self.call(
            "account/password",
            &[("current_password", current), ("new_password", new), ("new_password_confirm", new)],
        )
        .await
    }

    pub async fn logout(&self) -> reqwest::Response {
        self.call("account/logout", &[]).await
    }

    /// The account overview as JSON (status checked by the caller).
    pub async fn overview(&self) -> reqwest::Response {
        self.call("account/overview", &[]).await
    }

    /// The session cookie's value, if there is one.
    pub fn session_cookie(&self) -> Option<String> {
        let url = self.address.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix("kraft_session=").map(str::to_owned))
    }

    /// Replays a request with exactly this session cookie and no jar.
    pub async fn overview_with_cookie(&self, cookie: &str) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("{}/api/account/overview", self.address))
            .header("Accept", "application/json")
            .header("Origin", &self.address)
            .header("Cookie", format!("kraft_session={cookie}"))
            .send()
            .await
            .expect("request")
            .status()
    }
}

/// Waits (bounded) until `check` passes; this is waiting for the system, not timing it.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}
