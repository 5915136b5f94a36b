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
use std::path::Path;

use futures::TryStreamExt as _;
use ipnet::IpNet;
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::{
    AddressMessageBuilder, Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
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

/// Makes a new network namespace bound to `path`; returns a netlink
/// socket in it (opened by the thread that made it, so no other thread
/// has to enter it).
pub fn create_netns(path: &Path) -> Result<Batch, NetError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| NetError::io(dir, e))?;
    }
    fs::File::create(path).map_err(|e| NetError::io(path, e))?;
    let p = path.to_path_buf();
    let made = std::thread::spawn(move || -> std::io::Result<Batch> {
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
        Batch::open()
    })
    .join()
    .expect("the netns thread does not panic");
    made.map_err(|e| {
        let _ = remove_netns(path);
        NetError::io(path, e)
    })
}

/// A blocking rtnetlink socket that takes requests in batches: a batch goes
/// to the kernel in one `send` (which handles its messages in order, each
/// on its own) and the answers are read back. No runtime, no thread.
pub struct Batch {
    socket: Socket,
    seq: u32,
}

/// What the kernel answered one request of a batch: its replies, or why not.
pub type Answer = Result<Vec<RouteNetlinkMessage>, std::io::Error>;

impl Batch {
    /// A socket in this thread's network namespace.
    pub fn open() -> std::io::Result<Batch> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Batch { socket, seq: 0 })
    }

    /// A socket in the namespace bound at `path`, opened on a short-lived
    /// thread that enters it.
    pub fn in_netns(path: &Path) -> Result<Batch, NetError> {
        let p = path.to_path_buf();
        std::thread::spawn(move || {
            setns(fs::File::open(&p)?, CloneFlags::CLONE_NEWNET)?;
            Batch::open()
        })
        .join()
        .expect("the netlink thread does not panic")
        .map_err(|e| NetError::io(path, e))
    }

    /// Sends `requests` (each with its flags besides REQUEST and ACK) in
    /// one write; their answers, in the same order. Not for dumps: they end
    /// with `NLMSG_DONE`, not with the acknowledgement waited for here.
    pub fn run(
        &mut self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> std::io::Result<Vec<Answer>> {
        let n = requests.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n as u32);
        let mut buf = Vec::new();
        for (i, (msg, flags)) in requests.into_iter().enumerate() {
            let mut m = NetlinkMessage::from(msg);
            m.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            m.header.sequence_number = first.wrapping_add(i as u32);
            m.finalize();
            let at = buf.len();
            buf.resize(at + m.buffer_len(), 0);
            m.serialize(&mut buf[at..]);
        }
        self.socket.send(&buf, 0)?;
        let mut replies: Vec<Vec<RouteNetlinkMessage>> = vec![Vec::new(); n];
        let mut answers: Vec<Option<Answer>> = (0..n).map(|_| None).collect();
        self.read_until(|m| {
            // Each request ends with its error message (zero: done).
            let i = m.header.sequence_number.wrapping_sub(first) as usize;
            match (m.payload, replies.get_mut(i)) {
                (NetlinkPayload::InnerMessage(r), Some(got)) => got.push(r),
                (NetlinkPayload::Error(e), Some(got)) => {
                    answers[i] = Some(match e.code {
                        None => Ok(std::mem::take(got)),
                        Some(_) => Err(e.to_io()),
                    });
                }
                _ => {}
            }
            answers.iter().all(Option::is_some)
        })?;
        Ok(answers.into_iter().flatten().collect())
    }

    /// Sends one dump request; every message it lists.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> std::io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut m = NetlinkMessage::from(msg);
        m.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        m.header.sequence_number = seq;
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut listed = Vec::new();
        let mut refused = None;
        self.read_until(|m| {
            if m.header.sequence_number != seq {
                return false;
            }
            match m.payload {
                NetlinkPayload::InnerMessage(r) => {
                    listed.push(r);
                    false
                }
                NetlinkPayload::Done(_) => true,
                NetlinkPayload::Error(e) => {
                    refused = e.code.map(|_| e.to_io());
                    true
                }
                _ => false,
            }
        })?;
        refused.map_or(Ok(listed), Err)
    }

    /// Reads the messages the socket gets, each given to `take`, until
    /// `take` says that was the last one awaited.
    fn read_until(
        &mut self,
        mut take: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> bool,
    ) -> std::io::Result<()> {
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut at = 0;
            while at < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                    .map_err(std::io::Error::other)?;
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                at += len.next_multiple_of(4);
                if take(m) {
                    return Ok(());
                }
            }
        }
    }

    /// The index of each link named, `None` where there is none.
    pub fn indexes(&mut self, names: &[&str]) -> Result<Vec<Option<u32>>, NetError> {
        let get = |n: &&str| {
            let msg = LinkUnspec::new_with_name(n).build();
            (RouteNetlinkMessage::GetLink(msg), 0)
        };
        let answers = self
            .run(names.iter().map(get).collect())
            .map_err(io_nl("look up links"))?;
        names
            .iter()
            .zip(answers)
            .map(|(name, a)| match a {
                Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                    RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                    _ => None,
                })),
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
                Err(e) => Err(io_nl(format!("look up link {name}"))(e)),
            })
            .collect()
    }
}

/// The index of each bridge named, as this process last looked it up
/// (a bridge's index stays while it exists, and is never another's
/// after it: the kernel hands indexes out in turn, and those we choose
/// for veths, [`host_index`], are of a range it does not reach); looked up
/// where not known, on a socket opened for that. `fresh` forgets what was
/// known of them first.
pub fn bridge_indexes(names: &[&str], fresh: bool) -> Result<Vec<Option<u32>>, NetError> {
    static KNOWN: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());
    let known = |n: &str| {
        let mut k = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
        if fresh {
            k.retain(|(b, _)| b != n);
        }
        k.iter().find(|(b, _)| b == n).map(|(_, i)| *i)
    };
    let mut got: Vec<Option<u32>> = names.iter().map(|n| known(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&got)
        .filter(|(_, i)| i.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Ok(got);
    }
    let mut looked = Batch::open()
        .map_err(io_nl("open a netlink socket"))?
        .indexes(&missing)?
        .into_iter();
    let mut k = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    for (n, i) in names.iter().zip(got.iter_mut()) {
        if i.is_none() {
            *i = looked.next().flatten();
            if let Some(index) = *i {
                k.retain(|(b, _)| b != n);
                k.push((n.to_string(), index));
            }
        }
    }
    Ok(got)
}

/// A veth pair's request, sent from a socket in the container's
/// namespace: its end `host` made in the namespace of `host_ns` (the
/// engine's), on the bridge at index `bridge` there, up; its peer made
/// beside the socket as `peer`, with its MAC. Both at the indexes given
/// (the kernel takes the peer's only where the other end's is given too):
/// the requests that follow in the same batch (the peer up, its addresses,
/// its routes) name the peer without waiting for an answer. The peer is
/// born in its namespace with its final name (a move would wait for an RCU
/// grace period, some 20 ms each; a rename is one more request); not up
/// yet: a veth cannot go up before its peer exists, and the peer is made
/// first ([`up`]).
pub fn veth(
    host: &str,
    bridge: u32,
    (peer, mac): (&str, [u8; 6]),
    mtu: Option<u32>,
    host_ns: &fs::File,
    (host_index, peer_index): (u32, u32),
) -> (RouteNetlinkMessage, u16) {
    // One queue each way, said at creation: left unsaid, the kernel makes
    // as many as CPUs, then cuts each end down to one, and each cut waits
    // for an expedited RCU grace period with the rtnl lock held (every
    // other container's netlink work waits with it).
    fn one_queue<T>(m: LinkMessageBuilder<T>) -> LinkMessageBuilder<T> {
        m.append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
    }
    let mut peer_msg = one_queue(
        LinkUnspec::new_with_name(peer)
            .index(peer_index)
            .address(mac.to_vec()),
    );
    let mut v = one_queue(
        LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .index(host_index)
            .setns_by_fd(host_ns.as_raw_fd())
            .controller(bridge)
            .up(),
    );
    if let Some(m) = mtu {
        v = v.mtu(m);
        peer_msg = peer_msg.mtu(m);
    }
    let v = v.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())));
    (
        RouteNetlinkMessage::NewLink(v.build()),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// An index for a veth's end on the host: one of the upper half of the
/// range, which those the kernel hands out itself (in turn, from 1) do not
/// reach; another link that has it is a chance of one in a billion (a
/// refusal, and the caller chooses again).
pub fn host_index() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Each `RandomState` hashes with keys of its own (random per thread,
    // then another each time): a random number without a file to read.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32;
    0x4000_0000 | (r & 0x3fff_ffff)
}

/// The index of a container's `ethN` in its namespace. In a namespace
/// just made (`fresh`), 1000 + N: clear of the loopback and the fallback
/// tunnels a new namespace may have, 1 and up. Else one of the upper half,
/// as [`host_index`]: a running container may have made links of its own
/// (those of a refused veth's index would get its peer's addresses).
pub fn peer_index(ifname: &str, fresh: bool) -> u32 {
    match ifname
        .strip_prefix("eth")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some(n) if fresh && n < 1000 => 1000 + n,
        _ => host_index(),
    }
}

/// The request that sets the link at `index` up.
pub fn up(index: u32) -> (RouteNetlinkMessage, u16) {
    let msg = LinkUnspec::new_with_index(index).up().build();
    (RouteNetlinkMessage::SetLink(msg), 0)
}

/// The request that removes the link at `index` (and a veth's peer with it).
pub fn remove(index: u32) -> (RouteNetlinkMessage, u16) {
    let msg = LinkUnspec::new_with_index(index).build();
    (RouteNetlinkMessage::DelLink(msg), 0)
}

/// An address's request, on the link at `index`.
pub fn address(index: u32, addr: IpAddr, prefix: u8) -> (RouteNetlinkMessage, u16) {
    let msg = match addr {
        IpAddr::V4(a) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(a, prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(a, prefix)
            .build(),
    };
    (
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// A default route's request, through `gateway`.
pub fn default_route(gateway: IpAddr) -> (RouteNetlinkMessage, u16) {
    let msg = match gateway {
        IpAddr::V4(v) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(v)
            .build(),
        IpAddr::V6(v) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .gateway(v)
            .build(),
    };
    (
        RouteNetlinkMessage::NewRoute(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// The error of a link that is not there.
pub fn missing(name: &str) -> NetError {
    NetError::Netlink {
        what: format!("look up link {name}"),
        why: "no such device".into(),
    }
}

/// A failed request of a batch as a netlink error saying what it was.
pub fn io_nl(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let what = what.into();
    move |e| NetError::Netlink {
        what,
        why: e.to_string(),
    }
}

/// Unbinds and removes a namespace file; the namespace goes with its last user.
pub fn remove_netns(path: &Path) -> Result<(), NetError> {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::io(path, e)),
        _ => Ok(()),
    }
}

/// An async netlink connection to the host's namespace, for what is not
/// on a container's path (bridges, removals, routes).
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Must be called inside a tokio runtime.
    pub fn host() -> Result<Netlink, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| NetError::io(Path::new("/proc/self/ns/net"), e))?;
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
}

/// The bridge with these addresses and a fixed MAC, up (made if missing):
/// two batches of netlink requests, the bridge made up and echoed back
/// with its index, then its addresses.
pub fn ensure_bridge(name: &str, mtu: Option<u32>, addrs: &[(IpAddr, u8)]) -> Result<(), NetError> {
    let mut nl = Batch::open().map_err(io_nl("open a netlink socket"))?;
    // A MAC of its own: without one, a bridge takes the lowest of its
    // ports', so it changes as containers join and the others' ARP
    // entries for the gateway (DNS) go stale for seconds.
    let mut bridge = LinkBridge::new(name)
        .address(bridge_mac(name).to_vec())
        .up();
    if let Some(m) = mtu {
        bridge = bridge.mtu(m);
    }
    let made = nl
        .run(vec![(
            RouteNetlinkMessage::NewLink(bridge.build()),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
        )])
        .map_err(io_nl(format!("create bridge {name}")))?;
    let echoed = match made.into_iter().next() {
        Some(Ok(replies)) => replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
            _ => None,
        }),
        Some(Err(e)) if e.raw_os_error() == Some(libc::EEXIST) => None,
        Some(Err(e)) => return Err(io_nl(format!("create bridge {name}"))(e)),
        None => None,
    };
    let index = match echoed {
        Some(i) => i,
        None => nl.indexes(&[name])?[0].ok_or_else(|| missing(name))?,
    };
    // Up again: one made before, by a creation cut short, may be down.
    let mut requests = vec![up(index)];
    requests.extend(addrs.iter().map(|(a, prefix)| address(index, *a, *prefix)));
    let answers = nl
        .run(requests)
        .map_err(io_nl(format!("configure bridge {name}")))?;
    let mut what = std::iter::once(format!("set {name} up"))
        .chain(addrs.iter().map(|(a, p)| format!("add {a}/{p} to {name}")));
    for answer in answers {
        let what = what.next().unwrap_or_default();
        match answer {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            a => {
                a.map_err(io_nl(what))?;
            }
        }
    }
    Ok(())
}

/// Every destination the host routes (v4 and v6): new subnets avoid them.
pub fn routed() -> Result<Vec<IpNet>, NetError> {
    let mut nl = Batch::open().map_err(io_nl("open a netlink socket"))?;
    let mut out = Vec::new();
    for msg in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        let routes = nl
            .dump(RouteNetlinkMessage::GetRoute(msg))
            .map_err(io_nl("list routes"))?;
        for r in routes {
            let RouteNetlinkMessage::NewRoute(r) = r else {
                continue;
            };
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
