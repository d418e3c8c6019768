use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = kraft::cli::Cli::parse();
    kraft::telemetry::init(cli.config.log_format);
    kraft::cli::run(cli).await
}
