use clap::Parser;

fn main() -> anyhow::Result<()> {
    return_large_blocks_to_the_system();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
        let cli = kraft::cli::Cli::parse();
        kraft::telemetry::init(cli.config.log_format);
        kraft::cli::run(cli).await
    })
}

/// glibc raises its mmap threshold whenever a large block is freed, so after the first password
/// hash (argon2id works in a 19 MiB block) later ones come from the heap, which rarely shrinks:
/// ten sign-ups left the server 190 MiB larger for good (measured with
/// `cargo bench -p server --bench dashboard`). A fixed 1 MiB threshold keeps such blocks in their
/// own mappings, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks_to_the_system() {
    // SAFETY: mallopt only tunes the allocator; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks_to_the_system() {}
