//! Synthetic resource usage for `metrics.k8s.io`: plausible, slowly varying CPU (nanocores) and
//! memory (KiB) per container and per node, derived from a stable hash of the object and the
//! time so repeated reads move like a real metrics-server's would.

use sha2::{Digest, Sha256};

fn seed(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(b)
}

/// Usage of one container at `unix_secs`: (nanocores, KiB).
pub fn container_usage(pod_uid: &str, container: &str, server: bool, unix_secs: f64) -> (u64, u64) {
    let s = seed(&format!("{pod_uid}/{container}"));
    let phase = (s % 1000) as f64 / 1000.0 * std::f64::consts::TAU;
    let wave = ((unix_secs / 30.0) + phase).sin() * 0.5 + 0.5;
    let (cpu_base, mem_base) =
        if server { (60_000_000.0, 380_000.0) } else { (15_000_000.0, 120_000.0) };
    let jitter = (s >> 16) % 20_000_000;
    let cpu = cpu_base + wave * cpu_base * 1.5 + jitter as f64;
    let mem = mem_base + wave * mem_base * 0.2 + ((s >> 32) % 50_000) as f64;
    (cpu as u64, mem as u64)
}

/// Usage of a node given the pods' total: (nanocores, KiB).
pub fn node_usage(node: &str, pods_cpu: u64, pods_mem: u64, unix_secs: f64) -> (u64, u64) {
    let s = seed(node);
    let wave = ((unix_secs / 45.0) + (s % 100) as f64).sin() * 0.5 + 0.5;
    let cpu = 250_000_000.0 + wave * 150_000_000.0 + pods_cpu as f64;
    let mem = 1_800_000.0 + wave * 200_000.0 + pods_mem as f64;
    (cpu as u64, mem as u64)
}
