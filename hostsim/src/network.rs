//! The simulated host's address plan: every address hostsim hands out — Service cluster IPs,
//! node and pod IPs, node pod CIDRs — is in 127.0.0.0/8, so a client that follows one (a
//! kubeconfig, an endpoint, a node address) never sends a packet off this machine. On Linux the
//! whole /8 is routed to `lo`, so any of these addresses can be bound and dialled without setup.
//!
//! Each hostsim takes a pair of /16 blocks, `127.<2p>.0.0/16` for pods and nodes and
//! `127.<2p+1>.0.0/16` for Services (the first pair is 127.42/127.43, after k3s's default
//! 10.42.0.0/16 cluster CIDR and 10.43.0.0/16 service CIDR). Hostsims running at the same time,
//! in one process or several, get different pairs: a pair is held by listening on the service
//! block's broadcast address (never a Service IP) at [`LOCK_PORT`], which the kernel lets only one
//! socket do; the listener is closed when the hostsim is dropped. This module owns the plan and
//! the reservation, not what is served at the addresses (see [`crate::vcluster`]).

use std::net::{Ipv4Addr, SocketAddrV4};

/// The port the reservation listener holds on the service block's broadcast address. It is
/// outside Linux's default ephemeral range (32768–60999), so no unrelated socket takes it.
pub const LOCK_PORT: u16 = 65535;
/// Pairs are `1..=126`; the search starts at 21 (127.42/127.43) and wraps.
const FIRST_PAIR: u8 = 21;
const LAST_PAIR: u8 = 126;

/// One hostsim's address blocks, reserved for as long as it lives.
pub struct Network {
    pair: u8,
    _lock: Option<std::net::TcpListener>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("service_cidr", &self.service_cidr()).finish()
    }
}

/// Where a requested ClusterIP stands against the service range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceIpFit {
    /// Inside the range and not its network or broadcast address.
    Usable,
    /// Inside the /16 but its network or broadcast address.
    Reserved,
    /// Not in the range at all.
    Outside,
}

impl Network {
    /// Reserves the first free pair of blocks. If none can be reserved (all taken, or a system
    /// where only 127.0.0.1 is configured, like macOS), the first pair is used unreserved and a
    /// warning says why: addresses then may be shared with another hostsim.
    pub fn reserve() -> Self {
        let mut last_error = None;
        for pair in (FIRST_PAIR..=LAST_PAIR).chain(1..FIRST_PAIR) {
            let lock = SocketAddrV4::new(Ipv4Addr::new(127, 2 * pair + 1, 255, 255), LOCK_PORT);
            match std::net::TcpListener::bind(lock) {
                Ok(listener) => return Self { pair, _lock: Some(listener) },
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => {
                    last_error = Some(e);
                    break;
                }
            }
        }
        tracing::warn!(
            error = ?last_error,
            "no free loopback address block; Service addresses may be shared with another hostsim"
        );
        Self { pair: FIRST_PAIR, _lock: None }
    }

    /// A network with the same blocks that reserves nothing: a virtual cluster's own API uses
    /// its host's plan.
    pub fn unreserved_copy(&self) -> Self {
        Self { pair: self.pair, _lock: None }
    }

    fn service_block(&self) -> u8 {
        2 * self.pair + 1
    }

    fn pod_block(&self) -> u8 {
        2 * self.pair
    }

    /// The service CIDR, e.g. `127.43.0.0/16` (what `--service-cluster-ip-range` would say).
    pub fn service_cidr(&self) -> String {
        format!("127.{}.0.0/16", self.service_block())
    }

    /// The `offset`-th address of the service range (1 is the `kubernetes` Service: kubernetes
    /// v1.35 `ServiceIPRange` gives the API server the range's first usable address).
    pub fn service_ip(&self, offset: u16) -> Ipv4Addr {
        let [a, b] = offset.to_be_bytes();
        Ipv4Addr::new(127, self.service_block(), a, b)
    }

    /// The `kubernetes` Service's ClusterIP.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.service_ip(1)
    }

    /// The offset of `ip` in the service range, if it is in it.
    pub fn service_offset(&self, ip: Ipv4Addr) -> Option<u16> {
        let [a, b, c, d] = ip.octets();
        (a == 127 && b == self.service_block()).then(|| u16::from_be_bytes([c, d]))
    }

    /// Whether `ip` may be a Service's ClusterIP here (kubernetes v1.35
    /// pkg/registry/core/service/ipallocator/ipallocator.go: the range's first and last
    /// addresses are never handed out).
    pub fn fit(&self, ip: Ipv4Addr) -> ServiceIpFit {
        match self.service_offset(ip) {
            None => ServiceIpFit::Outside,
            Some(0 | u16::MAX) => ServiceIpFit::Reserved,
            Some(_) => ServiceIpFit::Usable,
        }
    }

    /// Node `index`'s InternalIP, in the pod block's last /24 (outside every node's pod CIDR).
    pub fn node_ip(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, self.pod_block(), 255, (index % 253) as u8 + 2)
    }

    /// Node `index`'s pod CIDR (`spec.podCIDR`), a /24 as kube-controller-manager's
    /// `--node-cidr-mask-size` default gives.
    pub fn node_pod_cidr(&self, index: usize) -> String {
        format!("127.{}.{}.0/24", self.pod_block(), index % 255)
    }
}

/// A pod's IP inside its node's pod CIDR (`a.b.c.0/24`), `.2`–`.251` picked by `key` (its uid),
/// as stable as the uid.
pub fn pod_ip_in(pod_cidr: &str, key: &str) -> Option<Ipv4Addr> {
    let base: Ipv4Addr = pod_cidr.split('/').next()?.parse().ok()?;
    let [a, b, c, _] = base.octets();
    let host = 2 + (key.bytes().map(u32::from).sum::<u32>() % 250) as u8;
    Some(Ipv4Addr::new(a, b, c, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_networks_at_once_take_different_blocks() {
        let a = Network::reserve();
        let b = Network::reserve();
        assert_ne!(a.service_cidr(), b.service_cidr());
        assert!(a._lock.is_some() && b._lock.is_some());
    }

    #[test]
    fn the_range_ends_are_not_service_addresses() {
        let n = Network::reserve();
        assert_eq!(n.fit(n.service_ip(0)), ServiceIpFit::Reserved);
        assert_eq!(n.fit(n.service_ip(u16::MAX)), ServiceIpFit::Reserved);
        assert_eq!(n.fit(n.service_ip(2)), ServiceIpFit::Usable);
        assert_eq!(n.fit(Ipv4Addr::new(1, 1, 1, 1)), ServiceIpFit::Outside);
        assert_eq!(n.fit(Ipv4Addr::new(10, 43, 0, 2)), ServiceIpFit::Outside);
    }

    #[test]
    fn pod_ips_stay_in_their_node_cidr() {
        let ip = pod_ip_in("127.42.3.0/24", "some-uid").expect("ip");
        assert_eq!(ip.octets()[..3], [127, 42, 3]);
    }
}
