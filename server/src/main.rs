use clap::Parser;

/// mimalloc (v3) instead of the system allocator. Server-side rendering allocates thousands of
/// small objects per page: glibc's malloc took 35 % of the CPU of a cluster-list page (`perf` on
/// `cargo bench -p server --bench ssr`), and with mimalloc the same page costs 20-30 % less CPU.
/// Tuned at start by [`tune_the_allocator`] so that an idle process gives memory back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tune_the_allocator();
    return_large_blocks_to_the_system();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                tokio::spawn(give_back_freed_memory());
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

/// Indices in mimalloc v3's `mi_option_e` (include/mimalloc.h; libmimalloc-sys names only some).
const ABANDONED_PAGE_PURGE: libmimalloc_sys::mi_option_t = 12;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's options, set unless the environment already sets them
/// (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ABANDONED_PAGE_PURGE`: mimalloc reads those when the process
/// loads). By default mimalloc returns freed pages to the system 10 s after they were freed, and
/// only when a thread of the process allocates again; the pages of a thread that exits (tokio's
/// blocking threads exit when idle) stayed resident for good. Idle after start, platform alone on
/// PostgreSQL (`--bench idle`), that was 22.5 MiB of anonymous memory, against glibc's 3.1. Freed
/// pages are given back after 100 ms (10 ms times the arenas' multiplier), those of an exiting
/// thread at once, and [`give_back_freed_memory`] makes sure a quiet process does it too.
fn tune_the_allocator() {
    for (option, name, value) in [
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10),
        (ABANDONED_PAGE_PURGE, "MIMALLOC_ABANDONED_PAGE_PURGE", 1),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: sets a plain option value; no other thread exists yet.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

/// mimalloc carries out a delayed purge only when a thread of the process allocates or frees
/// later, and the pages a worker thread freed stay with it until it does: a process that fell
/// quiet kept what it freed last (on PostgreSQL, 19 MiB after start). Once a second a worker gives
/// back what it holds free and every purge that is pending.
async fn give_back_freed_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: collects the calling thread's own heap and the process's pending purges.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}

/// For what still uses the C library's allocator (SQLite's own allocations). glibc raises its mmap
/// threshold whenever a large block is freed, so later large blocks come from the heap, which
/// rarely shrinks: when Rust's allocations were glibc's too, ten sign-ups (argon2id works in a
/// 19 MiB block) left the server 190 MiB larger for good (`cargo bench -p server --bench
/// dashboard`). A fixed 1 MiB threshold keeps such blocks in their own mappings, returned to the
/// system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks_to_the_system() {
    // SAFETY: mallopt only tunes the allocator; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks_to_the_system() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indices name the options meant: each holds mimalloc v3's default for it (options.c)
    /// until tuned, then the value asked for.
    #[test]
    fn the_allocator_options_tuned_are_the_purge_ones() {
        // SAFETY: reads and sets plain option values.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 1000);
            }
            if std::env::var_os("MIMALLOC_ABANDONED_PAGE_PURGE").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(ABANDONED_PAGE_PURGE), 0);
            }
        }
        tune_the_allocator();
        // SAFETY: as above.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 10);
            }
            if std::env::var_os("MIMALLOC_ABANDONED_PAGE_PURGE").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(ABANDONED_PAGE_PURGE), 1);
            }
        }
    }
}
