//! Link flags of the `kraft` binary.
//!
//! On glibc Linux the binary is a position-independent executable, and ld.so applies every one of
//! its relative relocations when it loads it (the pointers in `.data.rel.ro`). As 24-byte
//! `Elf64_Rela` entries they filled `.rela.dyn`: 878,328 bytes in the `dist` binary (36,597
//! entries), 1,661,952 in `release` (69,064), which the loader reads in full and which then stays
//! in the process's resident set. DT_RELR (`-z pack-relative-relocs`; glibc 2.36, GNU ld 2.38, LLD
//! 15) packs runs of them into bitmaps: 10,416 bytes in `dist`, ASLR kept. Measured on `dist`
//! (`cargo bench -p server --bench idle`, same machine): binary 26,733,744 -> 25,876,376 bytes; the
//! platform alone on PostgreSQL, idle after start, 22.4 -> 21.2 MiB RSS. Both stages of the
//! Dockerfile are Debian bookworm (glibc 2.36), and the linker records a GLIBC_ABI_DT_RELR version
//! need, so an older glibc refuses the binary at start instead of misloading it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let glibc = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if linux && glibc {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
