use clap::Parser;

fn main() -> std::process::ExitCode {
    return_large_blocks_to_the_system();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                let cli = kraft::cli::Cli::parse();
                kraft::telemetry::init(cli.config.log_format);
                kraft::cli::run(cli).await
            })
        });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The client commands' failures say what went wrong and leave with a code scripts use.
        Err(error) => match error.downcast_ref::<kraft::client::Exit>() {
            Some(exit) => {
                eprintln!("kraft: {}", exit.message);
                std::process::ExitCode::from(exit.code)
            }
            None => {
                eprintln!("Error: {error:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
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
