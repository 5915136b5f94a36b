//! Network namespaces, bridges and veth pairs, through netlink.
//!
//! A container's network namespace is made before the container, bound to a
//! file (as `ip netns` and netavark do): the network is set up in it from
//! outside, the container joins it, and it outlives neither `rm` nor a
//! crash (the file is the record). Namespace switches happen on a
//! short-lived thread, never on a runtime thread.

use std::fs;
use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use futures::TryStreamExt as _;
use ipnet::IpNet;
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::NetError;

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |e| NetError::Netlink {
        what,
        why: e.to_string(),
    }
}

/// Whether a netlink error is the kernel's "no such device" (or "exists").
fn errno_is(e: &rtnetlink::Error, code: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -code)
}

/// Makes a new network namespace bound to `path`, with `lo` up.
pub fn create_netns(path: &Path) -> Result<(), NetError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| NetError::io(dir, e))?;
    }
    fs::File::create(path).map_err(|e| NetError::io(path, e))?;
    let p = path.to_path_buf();
    let made = std::thread::spawn(move || -> std::io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        // Addresses are ours alone: no duplicate detection delaying IPv6
        // (/proc/sys/net is this thread's namespace now).
        for key in ["all", "default"] {
            let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{key}/accept_dad"), "0");
        }
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .expect("the netns thread does not panic");
    if let Err(e) = made {
        let _ = fs::remove_file(path);
        return Err(NetError::io(path, e));
    }
    Ok(())
}

/// Unbinds and removes a namespace file; the namespace goes with its last user.
pub fn remove_netns(path: &Path) -> Result<(), NetError> {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::io(path, e)),
        _ => Ok(()),
    }
}

/// A netlink connection, to the host's namespace or to one bound to a file.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Must be called inside a tokio runtime.
    pub fn host() -> Result<Netlink, NetError> {
        Self::connect(None)
    }

    pub fn in_netns(path: &Path) -> Result<Netlink, NetError> {
        Self::connect(Some(path))
    }

    fn connect(netns: Option<&Path>) -> Result<Netlink, NetError> {
        let rt = tokio::runtime::Handle::current();
        let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
        let where_ = netns.clone().unwrap_or_else(|| "/proc/self/ns/net".into());
        // The socket belongs to the namespace of the thread that opens it.
        let (conn, handle, _) = std::thread::spawn(move || {
            let _guard = rt.enter();
            if let Some(p) = &netns {
                setns(fs::File::open(p)?, CloneFlags::CLONE_NEWNET)?;
            }
            rtnetlink::new_connection()
        })
        .join()
        .expect("the netlink thread does not panic")
        .map_err(|e| NetError::io(&where_, e))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn index(&self, name: &str) -> Result<Option<u32>, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(Some(l.header.index)),
            Ok(None) => Ok(None),
            Err(e) if errno_is(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(nl(format!("look up link {name}"))(e)),
        }
    }

    async fn must_index(&self, name: &str) -> Result<u32, NetError> {
        self.index(name).await?.ok_or_else(|| NetError::Netlink {
            what: format!("look up link {name}"),
            why: "no such device".into(),
        })
    }

    /// The bridge with these addresses and a fixed MAC, up (made if missing).
    pub async fn ensure_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        addrs: &[(IpAddr, u8)],
    ) -> Result<(), NetError> {
        if self.index(name).await?.is_none() {
            // A MAC of its own: without one, a bridge takes the lowest of
            // its ports', so it changes as containers join and the others'
            // ARP entries for the gateway (DNS) go stale for seconds.
            let mut b = LinkBridge::new(name).address(bridge_mac(name).to_vec());
            if let Some(m) = mtu {
                b = b.mtu(m);
            }
            self.handle
                .link()
                .add(b.build())
                .execute()
                .await
                .map_err(nl(format!("create bridge {name}")))?;
        }
        let index = self.must_index(name).await?;
        for (a, prefix) in addrs {
            match self
                .handle
                .address()
                .add(index, *a, *prefix)
                .execute()
                .await
            {
                Err(e) if errno_is(&e, libc::EEXIST) => {}
                r => r.map_err(nl(format!("add {a}/{prefix} to {name}")))?,
            }
        }
        self.up(index, name).await
    }

    async fn up(&self, index: u32, name: &str) -> Result<(), NetError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("set {name} up")))
    }

    /// Deletes a link; a missing one is not an error. Returns whether it was there.
    pub async fn delete(&self, name: &str) -> Result<bool, NetError> {
        let Some(index) = self.index(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(index).execute().await {
            Err(e) if errno_is(&e, libc::ENODEV) => Ok(false),
            r => r.map(|()| true).map_err(nl(format!("delete {name}"))),
        }
    }

    /// A veth pair: `host` on `bridge`, up; `peer` made in the namespace at
    /// `netns`. One request: the peer is created there rather than moved
    /// (a move waits for an RCU grace period, some 20 ms each).
    pub async fn veth_into(
        &self,
        host: &str,
        peer: &str,
        bridge: &str,
        mtu: Option<u32>,
        netns: &Path,
    ) -> Result<(), NetError> {
        let b = self.must_index(bridge).await?;
        let ns = fs::File::open(netns).map_err(|e| NetError::io(netns, e))?;
        let mut peer_msg = LinkUnspec::new_with_name(peer).setns_by_fd(ns.as_raw_fd());
        let mut v = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .controller(b)
            .up();
        if let Some(m) = mtu {
            v = v.mtu(m);
            peer_msg = peer_msg.mtu(m);
        }
        let v = v.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())));
        self.handle
            .link()
            .add(v.build())
            .execute()
            .await
            .map_err(nl(format!("create veth {host} on {bridge}")))
    }

    /// Inside a container's namespace: `from` renamed to `to`, with its MAC,
    /// addresses and MTU, up, and default routes through the gateways.
    pub async fn configure(
        &self,
        from: &str,
        to: &str,
        mac: [u8; 6],
        addrs: &[(IpAddr, u8)],
        gateways: &[IpAddr],
    ) -> Result<(), NetError> {
        let i = self.must_index(from).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(i)
                    .name(to.to_string())
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("rename {from} to {to}")))?;
        for (a, prefix) in addrs {
            self.handle
                .address()
                .add(i, *a, *prefix)
                .execute()
                .await
                .map_err(nl(format!("add {a}/{prefix} to {to}")))?;
        }
        self.up(i, to).await?;
        for g in gateways {
            let route = match g {
                IpAddr::V4(v) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .gateway(*v)
                    .build(),
                IpAddr::V6(v) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .gateway(*v)
                    .build(),
            };
            match self.handle.route().add(route).execute().await {
                // A second network's gateway: the first one keeps the default route.
                Err(e) if errno_is(&e, libc::EEXIST) => {}
                r => r.map_err(nl(format!("default route via {g}")))?,
            }
        }
        Ok(())
    }

    /// Every destination the host routes (v4 and v6): new subnets avoid them.
    pub async fn routed(&self) -> Result<Vec<IpNet>, NetError> {
        let mut out = Vec::new();
        for msg in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let mut routes = self.handle.route().get(msg).execute();
            while let Some(r) = routes.try_next().await.map_err(nl("list routes"))? {
                let len = r.header.destination_prefix_length;
                if len == 0 {
                    continue;
                }
                for a in &r.attributes {
                    let addr = match a {
                        RouteAttribute::Destination(RouteAddress::Inet(v)) => IpAddr::V4(*v),
                        RouteAttribute::Destination(RouteAddress::Inet6(v)) => IpAddr::V6(*v),
                        _ => continue,
                    };
                    if let Ok(n) = IpNet::new(addr, len) {
                        out.push(n.trunc());
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A bridge's MAC: locally administered, unicast, from its name (FNV-1a),
/// so the same bridge gets the same one each time it is made.
pub fn bridge_mac(name: &str) -> [u8; 6] {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let b = h.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

#[cfg(test)]
mod tests {
    #[test]
    fn bridge_macs_are_local_unicast_and_stable() {
        let a = super::bridge_mac("stk-1a2b3c");
        assert_eq!(a, super::bridge_mac("stk-1a2b3c"));
        assert_ne!(a, super::bridge_mac("stk-1a2b3d"));
        assert_eq!(a[0] & 0b11, 0b10, "locally administered, not multicast");
    }
}
