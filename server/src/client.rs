//! The `kraft` binary as a client of a KRaft: `kraft login`, `kraft clusters ...`,
//! `kraft kubeconfig ...`, all through the JSON API (`/api/v1`) with a personal API token.
//!
//! Where it keeps the KRaft's URL and the token: `$KRAFT_CONFIG`, else
//! `$XDG_CONFIG_HOME/kraft/config.json`, else `~/.config/kraft/config.json` (mode 0600).
//! `KRAFT_URL` and `KRAFT_TOKEN` override what is saved (for CI).
//!
//! Exit codes, for scripts: 0 done; 1 KRaft could not be reached or failed; 2 bad usage;
//! 3 not logged in, or the token was refused or lacks a scope; 4 no such cluster or kubeconfig;
//! 5 KRaft refused the request (invalid input, a limit, a conflict, too many requests);
//! 6 `wait` timed out, or the cluster failed or went while waited for.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::wire::{
    Cluster, ClusterPage, ClusterStatus, CreateCluster, IssueKubeconfig, IssuedKubeconfig, Me,
    Phase, Problem,
};

/// A client command's failure: what to say and which exit code to leave with.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub const EXIT_UNREACHABLE: u8 = 1;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_NOT_FOUND: u8 = 4;
pub const EXIT_REFUSED: u8 = 5;
pub const EXIT_WAIT: u8 = 6;

fn exit(code: u8, message: impl Into<String>) -> Exit {
    Exit { code, message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The API's JSON, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The KRaft's address, e.g. https://kraft.example.org.
    pub url: String,
    /// An API token to save (created on the account page); `-` reads it from standard input.
    /// Without it, a browser opens to create one and hands it back to this command.
    #[arg(long)]
    pub token: Option<String>,
    /// Do not open a browser: print the address to open, or read a pasted token.
    #[arg(long)]
    pub no_browser: bool,
    /// A PEM file with the CA that signs the KRaft's certificate (when the system does not
    /// trust it, e.g. zero-config KRaft's self-signed one).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    /// Your clusters.
    List,
    /// One cluster, by name or id.
    Get { cluster: String },
    /// Creates a cluster (the platform's defaults fill what is left out).
    Create {
        name: String,
        #[arg(long)]
        servers: Option<u32>,
        #[arg(long)]
        agents: Option<u32>,
        /// K3s version, e.g. v1.33.1-k3s1.
        #[arg(long)]
        version: Option<String>,
        /// shared or virtual.
        #[arg(long)]
        mode: Option<String>,
        /// dynamic or ephemeral.
        #[arg(long)]
        persistence: Option<String>,
        #[arg(long)]
        storage_gi: Option<u32>,
        /// An extra name or address for the API server's certificate (repeatable).
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        /// Wait until it is ready.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (e.g. 90s, 10m).
        #[arg(long, default_value = "10m", value_parser = crate::config::parse_duration)]
        timeout: Duration,
    },
    /// Deletes a cluster.
    Delete {
        cluster: String,
        /// Wait until it is gone.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_parser = crate::config::parse_duration)]
        timeout: Duration,
    },
    /// Waits until a cluster is ready (or gone, with --for deleted).
    Wait {
        cluster: String,
        #[arg(long = "for", value_enum, default_value_t = WaitFor::Ready)]
        until: WaitFor,
        #[arg(long, default_value = "10m", value_parser = crate::config::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    Ready,
    Deleted,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The cluster, by name or id.
    pub cluster: String,
    /// The kubeconfig's name on the cluster's page (where it lives).
    #[arg(long, default_value = "kraft-cli")]
    pub name: String,
    /// Days it stays valid: 1, 7, 30 or 90.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Merge it into $KUBECONFIG's first file (or ~/.kube/config) and switch to its context.
    #[arg(long, conflicts_with = "file")]
    pub merge: bool,
    /// With --merge: keep the current context.
    #[arg(long, requires = "merge")]
    pub no_switch: bool,
    /// Write it to this file (mode 0600) instead of standard output.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
}

/// What `kraft login` saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    pub url: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// Where the CLI keeps what `kraft login` saved.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("KRAFT_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kraft").join("config.json")
}

/// Writes `contents` to `path` readable by its owner only, creating the directory.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), Exit> {
    let fail =
        |e: std::io::Error| exit(EXIT_UNREACHABLE, format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Written next to it and renamed: a crash never leaves half a file.
    let temp = path.with_extension("kraft-tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).map_err(fail)?;
        file.write_all(contents).map_err(fail)?;
        file.sync_all().map_err(fail)?;
    }
    std::fs::rename(&temp, path).map_err(fail)
}

/// A connection to one KRaft with one token.
pub struct Remote {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Remote {
    fn new(url: &str, token: &str, ca_pem: Option<&str>) -> Result<Self, Exit> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("kraft-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60));
        if let Some(pem) = ca_pem {
            let ca = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| exit(2, format!("the CA file is not a PEM certificate: {e}")))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder.build().map_err(|e| exit(EXIT_UNREACHABLE, e.to_string()))?;
        Ok(Self { http, url: url.trim_end_matches('/').to_owned(), token: token.to_owned() })
    }

    /// From what `kraft login` saved, with `KRAFT_URL` and `KRAFT_TOKEN` over it.
    fn saved() -> Result<Self, Exit> {
        let path = config_path();
        let mut saved: Saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                exit(
                    EXIT_AUTH,
                    format!("{} is not a kraft CLI config ({e}): run kraft login", path.display()),
                )
            })?,
            Err(_) => Saved::default(),
        };
        if let Some(url) = std::env::var("KRAFT_URL").ok().filter(|v| !v.is_empty()) {
            saved.url = url;
        }
        if let Some(token) = std::env::var("KRAFT_TOKEN").ok().filter(|v| !v.is_empty()) {
            saved.token = token;
        }
        if saved.url.is_empty() || saved.token.is_empty() {
            return Err(exit(
                EXIT_AUTH,
                "not logged in: run kraft login <url> (or set KRAFT_URL and KRAFT_TOKEN)",
            ));
        }
        Self::new(&saved.url, &saved.token, saved.ca_pem.as_deref())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Exit> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| exit(EXIT_UNREACHABLE, format!("cannot reach {}: {e}", self.url)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| exit(EXIT_UNREACHABLE, format!("{}: {e}", self.url)))?;
        if status.is_success() {
            let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
            return serde_json::from_slice(bytes).map_err(|e| {
                exit(EXIT_UNREACHABLE, format!("{} answered what this kraft cannot read ({e}): is it a KRaft of the same version?", self.url))
            });
        }
        let problem: Option<Problem> = serde_json::from_slice(&bytes).ok();
        let mut message = problem
            .as_ref()
            .map_or_else(|| format!("{} answered {status}", self.url), |p| p.error.message.clone());
        if let Some(p) = &problem {
            for field in &p.error.fields {
                message.push_str(&format!("\n  {}: {}", field.field, field.message));
            }
        }
        let code = match status {
            StatusCode::UNAUTHORIZED => {
                message.push_str(" Run kraft login again.");
                EXIT_AUTH
            }
            StatusCode::FORBIDDEN
                if problem.as_ref().is_some_and(|p| p.error.code == "insufficient_scope") =>
            {
                EXIT_AUTH
            }
            StatusCode::NOT_FOUND => EXIT_NOT_FOUND,
            s if s.is_client_error() => EXIT_REFUSED,
            _ => EXIT_UNREACHABLE,
        };
        Err(exit(code, message))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Exit> {
        self.call(Method::GET, path, None::<&()>).await
    }

    async fn clusters(&self) -> Result<Vec<Cluster>, Exit> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/clusters?limit=100&cursor={c}"),
                None => "/clusters?limit=100".to_owned(),
            };
            let page: ClusterPage = self.get(&path).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
}

/// A path segment: a cluster name or id is a DNS label or a UUID, but never trust that.
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn print_json(value: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "Pending",
        Phase::Provisioning => "Provisioning",
        Phase::Ready => "Ready",
        Phase::Degraded => "Degraded",
        Phase::Failed => "Failed",
        Phase::Deleting => "Deleting",
        Phase::Terminating => "Terminating",
        Phase::Unknown => "Unknown",
    }
}

fn age(at: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - at).num_seconds().max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn cluster_rows(clusters: &[Cluster]) {
    table(
        &["NAME", "PHASE", "VERSION", "SERVERS", "AGENTS", "MODE", "AGE"],
        clusters
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    phase(c.phase).to_owned(),
                    c.version.clone(),
                    c.servers.to_string(),
                    c.agents.to_string(),
                    c.mode.clone(),
                    age(c.created_at),
                ]
            })
            .collect(),
    );
}

pub async fn login(args: LoginArgs) -> Result<(), Exit> {
    let url = args.url.trim().trim_end_matches('/').to_owned();
    let parsed =
        url::Url::parse(&url).map_err(|e| exit(2, format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(exit(2, format!("'{url}' must be an http:// or https:// address")));
    }
    let ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| exit(2, format!("cannot read {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let token = match args.token.as_deref() {
        Some("-") => read_line("")?,
        Some(token) => token.trim().to_owned(),
        None => through_browser(&url, args.no_browser).await?,
    };
    if token.is_empty() {
        return Err(exit(2, "no token given"));
    }
    let remote = Remote::new(&url, &token, ca_pem.as_deref())?;
    let me: Me = remote.get("/me").await?;
    let saved = Saved { url: url.clone(), token, ca_pem };
    let path = config_path();
    write_private(&path, serde_json::to_string_pretty(&saved).unwrap_or_default().as_bytes())?;
    eprintln!(
        "Logged in to {url} as {} (scopes: {}; the token expires {}). Saved in {}.",
        me.username,
        me.scopes.join(", "),
        me.token_expires_at.format("%Y-%m-%d"),
        path.display()
    );
    Ok(())
}

fn read_line(prompt: &str) -> Result<String, Exit> {
    if !prompt.is_empty() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| exit(2, format!("cannot read the token: {e}")))?;
    Ok(line.trim().to_owned())
}

/// Opens the KRaft's "authorize the CLI" page; the page creates a token and redirects the
/// browser to a one-off listener on this machine's loopback (RFC 8252 §7.3), which checks the
/// `state` it sent. A pasted token works too.
async fn through_browser(url: &str, no_browser: bool) -> Result<String, Exit> {
    use rand::RngCore as _;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| exit(EXIT_UNREACHABLE, format!("cannot listen on the loopback: {e}")))?;
    let port = listener.local_addr().map_err(|e| exit(EXIT_UNREACHABLE, e.to_string()))?.port();
    let mut random = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let state = hex::encode(random);
    let host = hostname();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let address = format!(
        "{url}/account/tokens/cli?callback={}&state={state}&name={}",
        segment(&callback),
        segment(&format!("kraft CLI on {host}")),
    );
    eprintln!(
        "To log in, open this address in a browser and authorize the kraft CLI:\n\n  {address}\n"
    );
    if !no_browser && webbrowser::open(&address).is_ok() {
        eprintln!("(A browser should have opened it.)");
    }
    eprintln!(
        "Waiting for the browser… or paste a token created on the account page and press Enter."
    );
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(1);
    let pasted = sender.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_ok() && !line.trim().is_empty() {
            let _ = pasted.blocking_send(line.trim().to_owned());
        }
    });
    let expected = state.clone();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/callback",
            axum::routing::get(
                move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                    let sender = sender.clone();
                    let expected = expected.clone();
                    async move {
                        let good = q.get("state").is_some_and(|s| *s == expected);
                        match (good, q.get("token")) {
                            (true, Some(token)) => {
                                let _ = sender.send(token.clone()).await;
                                axum::response::Html("<!doctype html><title>kraft CLI</title><p>The kraft CLI is logged in. You can close this tab.</p>")
                            }
                            _ => axum::response::Html("<!doctype html><title>kraft CLI</title><p>This is not the login the kraft CLI is waiting for.</p>"),
                        }
                    }
                },
            ),
        );
        let _ = axum::serve(listener, app).await;
    });
    let token = tokio::time::timeout(Duration::from_secs(600), receiver.recv()).await;
    server.abort();
    match token {
        Ok(Some(token)) => Ok(token),
        _ => Err(exit(EXIT_AUTH, "no token arrived within 10 minutes")),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this machine".into())
}

pub async fn clusters(command: ClustersCommand, output: Output) -> Result<(), Exit> {
    let remote = Remote::saved()?;
    match command {
        ClustersCommand::List => {
            let clusters = remote.clusters().await?;
            match output {
                Output::Json => print_json(&clusters),
                Output::Table if clusters.is_empty() => eprintln!("No clusters yet."),
                Output::Table => cluster_rows(&clusters),
            }
        }
        ClustersCommand::Get { cluster } => {
            let found: Cluster = remote.get(&format!("/clusters/{}", segment(&cluster))).await?;
            match output {
                Output::Json => print_json(&found),
                Output::Table => cluster_rows(&[found]),
            }
        }
        ClustersCommand::Create {
            name,
            servers,
            agents,
            version,
            mode,
            persistence,
            storage_gi,
            tls_sans,
            wait,
            timeout,
        } => {
            let body = CreateCluster {
                name,
                servers,
                agents,
                version,
                mode,
                persistence,
                storage_gi,
                tls_sans: (!tls_sans.is_empty()).then_some(tls_sans),
            };
            let mut created: Cluster = remote.call(Method::POST, "/clusters", Some(&body)).await?;
            if wait {
                created = wait_ready(&remote, &created.id.to_string(), timeout, output).await?;
            }
            match output {
                Output::Json => print_json(&created),
                Output::Table => cluster_rows(&[created]),
            }
        }
        ClustersCommand::Delete { cluster, wait, timeout } => {
            let gone: Cluster = remote
                .call(Method::DELETE, &format!("/clusters/{}", segment(&cluster)), None::<&()>)
                .await?;
            if wait {
                wait_deleted(&remote, &gone.id.to_string(), timeout).await?;
            }
            match output {
                Output::Json => print_json(&gone),
                Output::Table => {
                    eprintln!("{} {}", gone.name, if wait { "deleted" } else { "is being deleted" })
                }
            }
        }
        ClustersCommand::Wait { cluster, until, timeout } => match until {
            WaitFor::Ready => {
                let ready = wait_ready(&remote, &cluster, timeout, output).await?;
                match output {
                    Output::Json => print_json(&ready),
                    Output::Table => eprintln!("{} is ready", ready.name),
                }
            }
            WaitFor::Deleted => {
                wait_deleted(&remote, &cluster, timeout).await?;
                if output == Output::Table {
                    eprintln!("{cluster} is gone");
                }
            }
        },
    }
    Ok(())
}

/// Polls the cluster's status every 2 s until it is ready; fails fast when it failed or went.
async fn wait_ready(
    remote: &Remote,
    cluster: &str,
    timeout: Duration,
    output: Output,
) -> Result<Cluster, Exit> {
    let started = Instant::now();
    let mut said = String::new();
    loop {
        let status: ClusterStatus =
            remote.get(&format!("/clusters/{}/status", segment(cluster))).await.map_err(|e| {
                if e.code == EXIT_NOT_FOUND {
                    exit(EXIT_WAIT, format!("{cluster} is gone"))
                } else {
                    e
                }
            })?;
        if status.ready && status.rollout.is_none() {
            return remote.get(&format!("/clusters/{}", status.id)).await;
        }
        match status.phase {
            Phase::Failed => {
                return Err(exit(
                    EXIT_WAIT,
                    format!(
                        "{} failed: {}",
                        status.name,
                        status.blocked_by.or(status.message).unwrap_or_default()
                    ),
                ))
            }
            Phase::Deleting | Phase::Terminating => {
                return Err(exit(EXIT_WAIT, format!("{} is being deleted", status.name)))
            }
            _ => {}
        }
        let now = format!(
            "{}: {}{}",
            status.name,
            phase(status.phase),
            status.blocked_by.or(status.message).map(|m| format!(" ({m})")).unwrap_or_default()
        );
        if now != said && output == Output::Table {
            eprintln!("{now}");
            said = now;
        }
        if started.elapsed() >= timeout {
            return Err(exit(
                EXIT_WAIT,
                format!("{cluster} was not ready within {}s", timeout.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn wait_deleted(remote: &Remote, cluster: &str, timeout: Duration) -> Result<(), Exit> {
    let started = Instant::now();
    loop {
        match remote.get::<Cluster>(&format!("/clusters/{}", segment(cluster))).await {
            Err(e) if e.code == EXIT_NOT_FOUND => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) if started.elapsed() >= timeout => {
                return Err(exit(
                    EXIT_WAIT,
                    format!("{cluster} was not gone within {}s", timeout.as_secs()),
                ))
            }
            Ok(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

pub async fn kubeconfig(args: KubeconfigArgs, output: Output) -> Result<(), Exit> {
    let remote = Remote::saved()?;
    let body = IssueKubeconfig { name: args.name, days: Some(args.days) };
    let issued: IssuedKubeconfig = remote
        .call(
            Method::POST,
            &format!("/clusters/{}/kubeconfigs", segment(&args.cluster)),
            Some(&body),
        )
        .await?;
    if args.merge {
        let path = kubeconfig_path();
        merge_into(&path, &issued.yaml, !args.no_switch)?;
        eprintln!(
            "Merged context \"{}\" into {}{}.",
            issued.context,
            path.display(),
            if args.no_switch { "" } else { " and switched to it" }
        );
        if output == Output::Json {
            print_json(&issued.kubeconfig);
        }
    } else if let Some(path) = &args.file {
        write_private(path, issued.yaml.as_bytes())?;
        eprintln!("Wrote {} (context \"{}\").", path.display(), issued.context);
    } else if output == Output::Json {
        print_json(&issued);
    } else {
        print!("{}", issued.yaml);
    }
    Ok(())
}

/// `$KUBECONFIG`'s first file, else `~/.kube/config`: where kubectl writes too.
fn kubeconfig_path() -> PathBuf {
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        if let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()) {
            return first;
        }
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".kube")
        .join("config")
}

/// Puts the new kubeconfig's cluster, user and context into the file at `path` (replacing
/// entries of the same names, keeping everything else), and makes its context current.
pub fn merge_into(path: &Path, new_yaml: &str, switch: bool) -> Result<(), Exit> {
    use kube::config::Kubeconfig;
    let unreadable = |e: &dyn std::fmt::Display| {
        exit(EXIT_UNREACHABLE, format!("cannot read {}: {e}", path.display()))
    };
    let new = Kubeconfig::from_yaml(new_yaml).map_err(|e| unreadable(&e))?;
    let mut config = match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            Kubeconfig::from_yaml(&text).map_err(|e| unreadable(&e))?
        }
        Ok(_) => Kubeconfig::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kubeconfig::default(),
        Err(e) => return Err(unreadable(&e)),
    };
    config.api_version.get_or_insert_with(|| "v1".into());
    config.kind.get_or_insert_with(|| "Config".into());
    for cluster in new.clusters {
        config.clusters.retain(|c| c.name != cluster.name);
        config.clusters.push(cluster);
    }
    for user in new.auth_infos {
        config.auth_infos.retain(|u| u.name != user.name);
        config.auth_infos.push(user);
    }
    for context in new.contexts {
        config.contexts.retain(|c| c.name != context.name);
        config.contexts.push(context);
    }
    if switch || config.current_context.is_none() {
        config.current_context = new.current_context;
    }
    let text = serde_yaml::to_string(&config)
        .map_err(|e| exit(EXIT_UNREACHABLE, format!("cannot write the kubeconfig: {e}")))?;
    write_private(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(name: &str, server: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\ncurrent-context: {name}\n"
        )
    }

    #[test]
    fn merging_keeps_other_entries_replaces_same_names_and_switches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube").join("config");
        merge_into(&path, &kubeconfig("work", "https://work:6443", "w"), true).unwrap();
        merge_into(&path, &kubeconfig("demo-alice", "https://kraft/k8s/clusters/1", "a"), true)
            .unwrap();
        merge_into(&path, &kubeconfig("demo-alice", "https://kraft/k8s/clusters/1", "b"), false)
            .unwrap();
        let merged = kube::config::Kubeconfig::read_from(&path).unwrap();
        let names: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["work", "demo-alice"]);
        assert_eq!(merged.current_context.as_deref(), Some("demo-alice"));
        let user = merged.auth_infos.iter().find(|u| u.name == "demo-alice").unwrap();
        let token = user.auth_info.as_ref().unwrap().token.as_ref().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(token), "b");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
