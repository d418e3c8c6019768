//! The `hostsim` binary: `hostsim serve [--addr 127.0.0.1:6443] [--kubeconfig-out PATH]
//! [--ingress-addr 127.0.0.1:8443]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hostsim", about = "A simulated host Kubernetes cluster with K3k")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the host API until interrupted; prints the kubeconfig.
    Serve {
        #[arg(long, default_value = "127.0.0.1:6443")]
        addr: SocketAddr,
        /// Also write the kubeconfig to this file.
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
        /// Serve plain HTTP instead of HTTPS.
        #[arg(long)]
        insecure_http: bool,
        /// A fixed bearer token (random otherwise).
        #[arg(long, env = "HOSTSIM_TOKEN")]
        token: Option<String>,
        /// Milliseconds before a cluster's servers are Ready once running.
        #[arg(long, default_value_t = 1500)]
        ready_delay_ms: u64,
        /// Milliseconds a new pod stays ContainerCreating.
        #[arg(long, default_value_t = 1000)]
        pod_start_delay_ms: u64,
        /// Milliseconds a deleted running pod takes to stop (at most its grace period); it and
        /// its namespace stay Terminating until then.
        #[arg(long, default_value_t = 3000)]
        pod_stop_delay_ms: u64,
        /// Log lines per second per container.
        #[arg(long, default_value_t = 2.0)]
        log_rate: f64,
        /// Number of host nodes.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// The IngressClass of the simulated ingress-nginx controller; "none" for no ingress
        /// controller (then no cluster host name resolves).
        #[arg(long, default_value = "nginx")]
        ingress_class: String,
        /// Start the ingress controller without `--enable-ssl-passthrough`.
        #[arg(long)]
        no_ssl_passthrough: bool,
        /// Where the ingress controller takes TLS (wildcard DNS would point here).
        #[arg(long, default_value = "127.0.0.1:8443")]
        ingress_addr: SocketAddr,
        /// The K3k release to play: v1.1.0 (the stable release) or v1.2 (v1.2.0-rc4).
        #[arg(long, env = "HOSTSIM_K3K_VERSION", default_value = "v1.1.0", value_parser = parse_k3k_version)]
        k3k_version: hostsim::k3k::K3kVersion,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hostsim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        addr,
        kubeconfig_out,
        insecure_http,
        token,
        ready_delay_ms,
        pod_start_delay_ms,
        pod_stop_delay_ms,
        log_rate,
        nodes,
        ingress_class,
        no_ssl_passthrough,
        ingress_addr,
        k3k_version,
    } = Cli::parse().command;
    let ingress = (ingress_class != "none").then_some(hostsim::ingress::IngressController {
        class: ingress_class,
        ssl_passthrough: !no_ssl_passthrough,
    });
    let config = hostsim::Config {
        addr,
        tls: !insecure_http,
        token,
        ready_delay: Duration::from_millis(ready_delay_ms),
        pod_start_delay: Duration::from_millis(pod_start_delay_ms),
        pod_stop_delay: Duration::from_millis(pod_stop_delay_ms),
        log_lines_per_second: log_rate,
        nodes,
        ingress,
        ingress_addr,
        k3k_version,
        ..hostsim::Config::default()
    };
    let running = hostsim::start(config).await?;
    let kubeconfig = running.kubeconfig_yaml();
    if let Some(path) = kubeconfig_out {
        std::fs::write(&path, &kubeconfig)?;
        tracing::info!(path = %path.display(), "kubeconfig written");
    }
    println!("{kubeconfig}");
    tracing::info!(url = %running.url(), k3k = k3k_version.as_str(), "hostsim serving");
    if let Some(addr) = running.ingress_addr() {
        tracing::info!(%addr, "ingress controller serving (TLS passthrough by SNI)");
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

fn parse_k3k_version(text: &str) -> Result<hostsim::k3k::K3kVersion, String> {
    hostsim::k3k::K3kVersion::parse(text)
        .ok_or_else(|| format!("{text:?}: the K3k profiles are v1.1.0 and v1.2"))
}
