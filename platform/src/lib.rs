//! KRaft's domain, below the UI crate: what server functions and HTTP handlers call. Nothing here
//! knows about HTTP, Leptos or the browser.

pub mod about;
pub mod access;
pub mod accounts;
pub mod caps;
pub mod clusters;
pub mod db;
pub mod host;
pub mod installation;
pub mod leader;
pub mod observe;
pub mod settings;
pub mod workshops;
pub use host::stream;

use std::sync::Arc;

pub use about::About;
pub use db::{Backend, DatabaseUrl};
pub use installation::Installation;

/// An error with its causes, for messages an operator can act on (`error sending request: …:
/// connection refused`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

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
    #[error(transparent)]
    Host(#[from] host::HostError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the platform needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub accounts: accounts::AccountSettings,
    /// The host cluster that runs K3k.
    pub host: HostSettings,
}

/// The host cluster and the rules for clusters on it.
#[derive(Clone)]
pub struct HostSettings {
    pub host: host::Host,
    pub clusters: clusters::ClusterSettings,
    /// How often the reconciler makes a full pass even when nothing seems to happen.
    pub resync: std::time::Duration,
    pub metrics: stream::metrics::MetricsSettings,
    pub logs: stream::logs::LogSettings,
    /// The leader Lease's namespace and duration; `None`: this process always leads (no Lease).
    /// The Lease is named after the installation, so replicas of one installation share it.
    pub lease: Option<(String, std::time::Duration)>,
}

impl std::fmt::Debug for HostSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSettings")
            .field("simulated", &self.host.simulated())
            .finish_non_exhaustive()
    }
}

/// The running platform: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    db: sea_orm::DatabaseConnection,
    about: About,
    installation: Installation,
    /// The one-time token that makes the first admin, while none exists.
    setup_token: Option<String>,
    accounts: Arc<accounts::Accounts>,
    settings: Arc<settings::Settings>,
    clusters: Arc<clusters::Clusters>,
    logs: Arc<stream::logs::LogHub>,
    metrics: Arc<stream::metrics::MetricsHub>,
    access: Arc<access::Access>,
    workshops: Arc<workshops::Workshops>,
    upstreams: Arc<host::gateway::Upstreams>,
    /// The admin's capacity overview, polled while someone watches.
    capacity: Arc<host::capacity::CapacityHub>,
    /// Background work owned by the platform, stopped by `close`.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    leadership: leader::Leadership,
    stop_election: tokio::sync::watch::Sender<bool>,
    /// Turns true when the server begins to shut down (live views close themselves then).
    stopping: tokio::sync::watch::Sender<bool>,
    /// Set when a shutdown was asked for: readiness fails from then on.
    draining: std::sync::atomic::AtomicBool,
    /// The live views (websockets) open on this replica, waited for on shutdown so that each
    /// has sent its close frame before the process ends.
    live_views: tokio_util::task::TaskTracker,
    /// The election, awaited on close so the Lease is released before the process ends.
    elector: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    /// A platform dropped without `close` (a crashed test server) stops its work all the same,
    /// without releasing the Lease: like a killed process.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(elector) = self.elector.lock().unwrap_or_else(|p| p.into_inner()).take() {
            elector.abort();
        }
    }
}

impl Platform {
    /// Connects to the database, brings its schema up to date and starts the background work.
    pub async fn start(settings: Settings) -> Result<Self> {
        let db = db::connect(&settings.database_url).await?;
        db::migrate(&db).await?;
        let about = About::new(settings.database_url.backend());
        let installation = Installation::load_or_create(&db).await?;
        let accounts = Arc::new(accounts::Accounts::new(db.clone(), settings.accounts)?);
        let setup_token = accounts.prepare_setup_token().await.map_err(|error| match error {
            accounts::AccountError::Database(db) => Error::Database(db),
            other => Error::Database(sea_orm::DbErr::Custom(other.to_string())),
        })?;
        let host = settings.host;
        // One leader among the replicas runs the reconciler and the sweepers.
        let (stop_election, election_stopped) = tokio::sync::watch::channel(false);
        let (leadership, elector) = match &host.lease {
            None => (leader::Leadership::always(), None),
            Some((namespace, duration)) => {
                let name = format!("kraft-leader-{}", &installation.id.simple().to_string()[..8]);
                let lease = leader::LeaseSettings::new(namespace, &name, *duration);
                let (elector, leadership) = leader::Elector::new(host.host.client(), lease);
                let mut stopped = election_stopped.clone();
                let run = elector.run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                });
                (leadership, Some(tokio::spawn(run)))
            }
        };
        let mut tasks = vec![tokio::spawn(while_leading(leadership.clone(), {
            let db = db.clone();
            move || sweep_expired_sessions(db.clone())
        }))];
        let logs = stream::logs::LogHub::new(host.host.client(), host.logs.clone());
        let metrics =
            stream::metrics::MetricsHub::new(host.host.impatient_client(), host.metrics.clone());
        tasks.push(tokio::spawn(metrics.clone().run()));
        // Ingress access without wildcard DNS: the gateway dials the ingress controller too.
        let dial =
            host.clusters.ingress_address.clone().filter(|_| host.clusters.ingress_class.is_some());
        let upstreams = Arc::new(host::gateway::Upstreams::new(host.host.clone(), dial));
        let access = Arc::new(access::Access::new(db.clone()));
        tasks.push(tokio::spawn(access.clone().run(leadership.clone())));
        let clusters = Arc::new(clusters::Clusters::new(
            db.clone(),
            host.host,
            host.clusters,
            installation.id,
        ));
        tasks.push(tokio::spawn(while_following(leadership.clone(), {
            let clusters = clusters.clone();
            move || clusters.clone().follow_changes(std::time::Duration::from_secs(1))
        })));
        tasks.push(tokio::spawn(while_leading(leadership.clone(), {
            let clusters = clusters.clone();
            let resync = host.resync;
            move || clusters.clone().run_reconciler(resync)
        })));
        // Virtual mode's nodes whose pod is gone, deleted in their clusters (see `clusters::nodes`):
        // a call to each cluster's API and one to the host per look, so less often than a pass.
        tasks.push(tokio::spawn(while_leading(leadership.clone(), {
            let (clusters, upstreams) = (clusters.clone(), upstreams.clone());
            let every = host.resync * 6;
            move || clusters.clone().tidy_nodes_forever(upstreams.clone(), every)
        })));
        // What an admin changed, applied before the first request and watched for on every replica.
        let runtime =
            Arc::new(settings::Settings::new(db.clone(), clusters.clone(), accounts.clone()));
        runtime.refresh().await?;
        tasks.push(tokio::spawn(runtime.clone().run()));
        let workshops = Arc::new(workshops::Workshops::new(db.clone(), clusters.clone()));
        tasks.push(tokio::spawn(while_leading(leadership.clone(), {
            let workshops = workshops.clone();
            move || workshops.clone().run_pools()
        })));
        let capacity = Arc::new(host::capacity::CapacityHub::new(host.metrics.interval));
        Ok(Self {
            inner: Arc::new(Inner {
                capacity,
                workshops,
                db,
                about,
                installation,
                setup_token,
                accounts,
                settings: runtime,
                clusters,
                logs,
                metrics,
                access,
                upstreams,
                tasks,
                leadership,
                stop_election,
                stopping: tokio::sync::watch::channel(false).0,
                draining: std::sync::atomic::AtomicBool::new(false),
                live_views: tokio_util::task::TaskTracker::new(),
                elector: std::sync::Mutex::new(elector),
            }),
        })
    }

    pub fn about(&self) -> &About {
        &self.inner.about
    }

    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.inner.db
    }

    pub fn installation(&self) -> &Installation {
        &self.inner.installation
    }

    /// The token printed at start that makes the first admin (`None` once an admin exists).
    pub fn setup_token(&self) -> Option<&str> {
        self.inner.setup_token.as_deref()
    }

    pub fn accounts(&self) -> &accounts::Accounts {
        &self.inner.accounts
    }

    /// The settings an admin changes while KRaft runs.
    pub fn settings(&self) -> &settings::Settings {
        &self.inner.settings
    }

    pub fn clusters(&self) -> &clusters::Clusters {
        &self.inner.clusters
    }

    pub fn logs(&self) -> &Arc<stream::logs::LogHub> {
        &self.inner.logs
    }

    pub fn metrics(&self) -> &Arc<stream::metrics::MetricsHub> {
        &self.inner.metrics
    }

    /// Kubeconfig tokens: issuing, listing, revoking, and checking them for the gateway.
    pub fn access(&self) -> &access::Access {
        &self.inner.access
    }

    /// The gateway's clients for virtual cluster APIs.
    pub fn upstreams(&self) -> &host::gateway::Upstreams {
        &self.inner.upstreams
    }

    /// The latest capacity overview, as it is polled (every metrics interval, while anyone
    /// watches).
    pub fn watch_capacity(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<Arc<host::capacity::CapacityOverview>>> {
        let clusters = self.inner.clusters.clone();
        self.inner.capacity.subscribe(move || {
            let clusters = clusters.clone();
            async move { clusters.capacity().await }
        })
    }

    pub fn workshops(&self) -> &workshops::Workshops {
        &self.inner.workshops
    }

    /// Whether the host cluster answers.
    pub async fn host_ready(&self) -> Result<String, host::HostError> {
        self.inner.clusters.host().ping().await
    }

    /// Deletes an account after checking the password and typed username: first every cluster
    /// of the user (marked for deletion and removed from the host by the reconciler), then the
    /// account's own data.
    pub async fn delete_account(
        &self,
        user_id: uuid::Uuid,
        password: &str,
        typed_username: &str,
        meta: &accounts::RequestMeta,
    ) -> Result<(), accounts::AccountError> {
        let user =
            self.inner.accounts.verify_deletion(user_id, password, typed_username, meta).await?;
        self.remove_account(&user, meta).await
    }

    /// An admin deletes the account `username` (typed again as `confirm`), as its owner would:
    /// its workshops end, its clusters go first, then its data. Not the admin's own (the account
    /// page does that, with the password).
    pub async fn delete_account_as_admin(
        &self,
        admin: &accounts::User,
        username: &str,
        confirm: &str,
        meta: &accounts::RequestMeta,
    ) -> Result<(), accounts::AccountError> {
        let user = self.inner.accounts.by_username(username).await?;
        if user.id == admin.id {
            return Err(accounts::AccountError::NotAllowed(
                "Delete your own account from your account page.".into(),
            ));
        }
        if confirm.trim() != user.username {
            return Err(accounts::AccountError::Invalid(vec![accounts::FieldError::new(
                "confirm_username",
                format!("Type {} exactly to confirm.", user.username),
            )]));
        }
        self.remove_account(&user, meta).await?;
        accounts::audit::record(
            &self.inner.db,
            accounts::AuditEvent::on(
                accounts::AuditAction::AccountDeletedByAdmin,
                Some(admin.id),
                None,
                meta.client_addr.as_deref(),
            )
            .target(&user.username),
        )
        .await?;
        Ok(())
    }

    /// Ends the user's workshops, hands their clusters to the reconciler, then removes their data.
    async fn remove_account(
        &self,
        user: &accounts::User,
        meta: &accounts::RequestMeta,
    ) -> Result<(), accounts::AccountError> {
        let user = user.clone();
        // The workshops they organize end now: their attendees' clusters go with them.
        let organized =
            self.inner.workshops.organized_by(user.id).await.map_err(|e| {
                accounts::AccountError::Database(sea_orm::DbErr::Custom(e.to_string()))
            })?;
        for workshop in organized.iter().filter(|w| w.ended_at.is_none()) {
            let ended =
                self.inner.workshops.end_now(&user, workshop.id, meta.client_addr.as_deref());
            if let Err(error) = ended.await {
                tracing::warn!(workshop = %workshop.id, %error, "could not end a deleted organizer's workshop");
            }
        }
        self.inner.clusters.delete_all_of(user.id).await.map_err(|e| match e {
            clusters::ClusterError::Database(db) => accounts::AccountError::Database(db),
            other => accounts::AccountError::Database(sea_orm::DbErr::Custom(other.to_string())),
        })?;
        self.inner.accounts.delete_account_data(&user, meta).await
    }

    /// The tower-sessions store on this platform's database.
    pub fn session_store(&self) -> accounts::DbSessionStore {
        accounts::DbSessionStore::new(self.inner.db.clone())
    }

    /// Whether the database answers a trivial query.
    pub async fn database_ready(&self) -> Result<()> {
        db::ping(&self.inner.db).await
    }

    /// Marks the replica as going away: it still serves, but is no longer ready.
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a shutdown was asked for ([`Platform::begin_drain`] or [`Platform::begin_stop`]).
    pub fn draining(&self) -> bool {
        self.inner.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells live views that the server is shutting down.
    pub fn begin_stop(&self) {
        self.begin_drain();
        self.inner.stopping.send_replace(true);
    }

    /// Resolves when the server begins to shut down (at once if it has). Owns what it needs,
    /// so it can outlive the caller's borrow (a response body, a live view's loop).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.inner.stopping.subscribe();
        async move {
            // An error means the platform is gone: stopped all the same.
            let _ = stopping.wait_for(|s| *s).await;
        }
    }

    /// Held by an open live view for its whole life; [`Platform::live_views_closed`] waits for
    /// every one to be dropped.
    pub fn live_view(&self) -> tokio_util::task::task_tracker::TaskTrackerToken {
        self.inner.live_views.token()
    }

    /// After [`Platform::begin_stop`]: waits until every live view has closed (each sends its
    /// close frame first), for at most `within` (a client that stops reading can hold its close
    /// back). Whether they all closed in time.
    pub async fn live_views_closed(&self, within: std::time::Duration) -> bool {
        self.inner.live_views.close();
        let closed = tokio::time::timeout(within, self.inner.live_views.wait()).await.is_ok();
        if !closed {
            let open = self.inner.live_views.len();
            tracing::warn!(open, "live views did not close in time; they end with the process");
        }
        closed
    }

    /// Whether this replica leads (runs the reconciler and sweepers) now.
    pub fn is_leader(&self) -> bool {
        self.inner.leadership.is_leader()
    }

    /// Stops the background work, releases the leader Lease if held (another replica takes
    /// over at once), flushes what is buffered and closes the database pool; call once on
    /// shutdown.
    pub async fn close(self) -> Result<()> {
        for task in &self.inner.tasks {
            task.abort();
        }
        let _ = self.inner.stop_election.send(true);
        let elector = self.inner.elector.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(elector) = elector {
            if tokio::time::timeout(std::time::Duration::from_secs(5), elector).await.is_err() {
                tracing::warn!("the leader election did not stop in time");
            }
        }
        if let Err(error) = self.inner.access.flush_usage().await {
            tracing::warn!(%error, "could not record the last kubeconfig use");
        }
        if let Err(error) = self.inner.access.api_tokens().flush_usage().await {
            tracing::warn!(%error, "could not record the last API token use");
        }
        self.inner.logs.close().await;
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.db.clone().close().await?),
            // Someone still holds a clone (a request in flight): the pool closes when it is dropped.
            Err(_) => Ok(()),
        }
    }
}

/// Runs the task `make` builds while this replica leads; stops it when leadership is lost and
/// starts a fresh one when it comes back.
async fn while_leading<F, T>(mut leadership: leader::Leadership, make: F)
where
    F: Fn() -> T,
    T: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        leadership.acquired().await;
        let task = tokio::spawn(make());
        leadership.lost().await;
        task.abort();
    }
}

/// Runs the task `make` builds while another replica leads.
async fn while_following<F, T>(mut leadership: leader::Leadership, make: F)
where
    F: Fn() -> T,
    T: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        if leadership.is_leader() {
            leadership.lost().await;
        }
        let task = tokio::spawn(make());
        leadership.acquired().await;
        task.abort();
    }
}

/// Deletes expired session rows every few minutes.
async fn sweep_expired_sessions(db: sea_orm::DatabaseConnection) {
    use tower_sessions::session_store::ExpiredDeletion;
    let store = accounts::DbSessionStore::new(db.clone());
    let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        every.tick().await;
        if let Err(error) = store.delete_expired().await {
            tracing::warn!(%error, "could not delete expired sessions");
        }
        if let Err(error) = accounts::throttle::sweep(&db).await {
            tracing::warn!(%error, "could not delete old throttled attempts");
        }
    }
}
