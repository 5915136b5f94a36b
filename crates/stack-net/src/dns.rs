//! The embedded DNS server: one process per store root, answering on every
//! network's gateway address (UDP and TCP, port 53). A container's name, its
//! aliases and its short id resolve to its addresses on the networks the
//! asker shares with it (every match, rotated); other names go to the host's
//! resolvers. The records are re-read whenever they change on disk, so
//! answers follow containers as they come and go.
//!
//! The same process answers published TCP ports on `[::1]` (see `proxy`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};

use crate::state::{Endpoint, Network, Store};

/// What the server knows.
#[derive(Default)]
pub struct Records {
    pub networks: Vec<Network>,
    pub endpoints: Vec<Endpoint>,
}

/// The addresses `name` has for a container at `asker` (or, for an asker we
/// do not know, on the network it asked on). `None`: not one of ours.
pub fn resolve(
    name: &str,
    want_v6: bool,
    asker: IpAddr,
    asked_on: &str,
    rec: &Records,
    turn: usize,
) -> Option<Vec<IpAddr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let asker_id = rec
        .endpoints
        .iter()
        .find(|e| e.addresses.contains(&asker))
        .map(|e| e.container.as_str());
    let nets: Vec<&str> = match asker_id {
        Some(id) => rec
            .endpoints
            .iter()
            .filter(|e| e.container == id)
            .map(|e| e.network.as_str())
            .collect(),
        None => vec![asked_on],
    };
    let matching: Vec<&Endpoint> = rec
        .endpoints
        .iter()
        .filter(|e| nets.contains(&e.network.as_str()))
        .filter(|e| {
            e.name.eq_ignore_ascii_case(&name)
                || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(&name))
                || (name.len() >= 12 && e.container.starts_with(&name))
        })
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut addrs: Vec<IpAddr> = Vec::new();
    for a in matching.iter().flat_map(|e| &e.addresses) {
        if a.is_ipv6() == want_v6 && !addrs.contains(a) {
            addrs.push(*a);
        }
    }
    if !addrs.is_empty() {
        let n = turn % addrs.len();
        addrs.rotate_left(n);
    }
    Some(addrs)
}

/// Builds the answer to a query, or `None` when it must be forwarded.
pub fn answer(
    query: &Message,
    asker: IpAddr,
    asked_on: &str,
    rec: &Records,
    turn: usize,
) -> Option<Message> {
    let q = query.queries.first()?;
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_query(q.clone());
    let name = q.name().to_ascii();
    let want_v6 = match q.query_type() {
        RecordType::A => false,
        RecordType::AAAA => true,
        // Ours, but no such record: an empty answer.
        _ => {
            resolve(&name, false, asker, asked_on, rec, 0)?;
            return Some(reply);
        }
    };
    let addrs = resolve(&name, want_v6, asker, asked_on, rec, turn)?;
    for a in addrs {
        let rdata = match a {
            IpAddr::V4(v) => RData::A(v.into()),
            IpAddr::V6(v) => RData::AAAA(v.into()),
        };
        reply.add_answer(Record::from_rdata(q.name().clone(), 0, rdata));
    }
    Some(reply)
}

/// What the records on disk are at: every file of the root and of its
/// endpoint directories, with its inode (a file rewritten atomically is a
/// new inode, however close in time: modification times are only as fine
/// as the kernel's tick) and its modification time.
fn stamp(root: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(d) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in d.flatten() {
            let path = e.path();
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if m.is_dir() && path.extension().is_some_and(|x| x == "endpoints") {
                dirs.push(path.clone());
            }
            out.push((
                path,
                m.ino(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    out.sort();
    out
}

/// The stamp of the records on disk, and what they said then.
type Cached = (Vec<(PathBuf, u64, SystemTime)>, Arc<Records>);

struct Shared {
    store: Store,
    root: PathBuf,
    records: Mutex<Cached>,
    turn: AtomicUsize,
    upstream: Vec<SocketAddr>,
}

impl Shared {
    /// The records, re-read if anything changed on disk.
    fn current(&self) -> Arc<Records> {
        let now = stamp(&self.root);
        let mut r = self.records.lock().unwrap();
        if r.0 != now {
            // What cannot be read is nothing: a root that is gone has no
            // networks left, and the server ends.
            let fresh = Records {
                networks: self.store.networks().unwrap_or_default(),
                endpoints: self.store.all_endpoints().unwrap_or_default(),
            };
            *r = (now, Arc::new(fresh));
        }
        r.1.clone()
    }

    async fn handle(&self, bytes: &[u8], asker: IpAddr, asked_on: &str) -> Option<Vec<u8>> {
        let query = Message::from_vec(bytes).ok()?;
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let rec = self.current();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = answer(&query, asker, asked_on, &rec, turn) {
            return a.to_vec().ok();
        }
        if self.upstream.is_empty() {
            // Forwarding is off: nobody else is asked.
            return Message::error_msg(query.metadata.id, OpCode::Query, ResponseCode::NXDomain)
                .to_vec()
                .ok();
        }
        match self.forward(bytes).await {
            Some(r) => Some(r),
            None => Message::error_msg(query.metadata.id, OpCode::Query, ResponseCode::ServFail)
                .to_vec()
                .ok(),
        }
    }

    /// Asks the host's resolvers, one after the other.
    async fn forward(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        for up in &self.upstream {
            let bind: SocketAddr = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                .parse()
                .ok()?;
            let Ok(sock) = UdpSocket::bind(bind).await else {
                continue;
            };
            if sock.send_to(bytes, up).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await
            {
                buf.truncate(n);
                return Some(buf);
            }
        }
        None
    }
}

/// Where other names are asked: `STACK_DNS_UPSTREAM` (comma-separated
/// addresses, `ADDR` or `ADDR:PORT` / `[V6]:PORT`, or `none` to answer
/// NXDOMAIN instead of forwarding), else the host's resolvers from
/// /etc/resolv.conf, without our own addresses.
fn upstream(ours: &[IpAddr]) -> Vec<SocketAddr> {
    let parse = |a: &str| {
        let a = a.trim();
        a.parse::<SocketAddr>()
            .ok()
            .or_else(|| a.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
    };
    let listed: Vec<SocketAddr> = match std::env::var("STACK_DNS_UPSTREAM") {
        Ok(v) if v == "none" => return Vec::new(),
        Ok(v) => v.split(',').filter_map(parse).collect(),
        Err(_) => std::fs::read_to_string("/etc/resolv.conf")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(parse)
            .collect(),
    };
    listed
        .into_iter()
        .filter(|a| !ours.contains(&a.ip()))
        .collect()
}

async fn serve_udp(sock: UdpSocket, shared: Arc<Shared>, network: String) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let (bytes, sock, shared, network) = (
            buf[..n].to_vec(),
            sock.clone(),
            shared.clone(),
            network.clone(),
        );
        tokio::spawn(async move {
            if let Some(reply) = shared.handle(&bytes, from.ip(), &network).await {
                let _ = sock.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, network: String) {
    loop {
        let Ok((mut conn, from)) = listener.accept().await else {
            continue;
        };
        let (shared, network) = (shared.clone(), network.clone());
        tokio::spawn(async move {
            loop {
                let Ok(len) = conn.read_u16().await else {
                    return;
                };
                let mut bytes = vec![0u8; len.into()];
                if conn.read_exact(&mut bytes).await.is_err() {
                    return;
                }
                let Some(reply) = shared.handle(&bytes, from.ip(), &network).await else {
                    return;
                };
                let Ok(len) = u16::try_from(reply.len()) else {
                    return;
                };
                if conn.write_u16(len).await.is_err() || conn.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Runs the server for the store at `stack_root` until no network is left.
/// Holds `networks/dns.lock` while it runs: one server per root.
pub async fn serve(stack_root: &Path) -> Result<(), crate::NetError> {
    let store = Store::open(stack_root)?;
    let root = stack_root.join("networks");
    let lock_path = lock_path(stack_root);
    // Started by the maker of a network: its sockets, and the lock it
    // took for us, on our standard input.
    let mut handed = Handed::new();
    let mut passed = None;
    while let Ok(Some((key, sockets, lock))) = take_handover(std::io::stdin().as_fd()) {
        handed.insert(key, sockets);
        passed = passed.or(lock);
    }
    if !handed.is_empty() {
        // Nothing more comes on it.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = nix::unistd::dup2_stdin(&null);
        }
    }
    let _lock = match passed {
        Some(fd) => (Some(fd), None),
        None => {
            match stack_sys::try_lock(&lock_path).map_err(|e| crate::NetError::io(&lock_path, e))? {
                Some(lock) => (None, Some(lock)),
                None => return Ok(()), // another server runs
            }
        }
    };
    let gateways: Vec<IpAddr> = store
        .networks()?
        .iter()
        .flat_map(|n| n.subnets.iter().map(|s| s.gateway))
        .collect();
    let shared = Arc::new(Shared {
        store: Store::open(stack_root)?,
        root: root.clone(),
        records: Mutex::new((Vec::new(), Arc::new(Records::default()))),
        turn: AtomicUsize::new(0),
        upstream: upstream(&gateways),
    });
    // What this server serves, from the start: nobody takes another's
    // server for ours. Said before the socket below is there: one that
    // finds it (see [`runs`]) finds this said.
    let mut said: Vec<(String, IpAddr)> = Vec::new();
    let mut unsaid = !say_serving(stack_root, &said);
    // Whoever adds a network wakes us on this socket: no waiting out a
    // round. (Without it, as where its path is too long, the rounds do.)
    let wake_path = wake_socket(stack_root);
    let _ = std::fs::remove_file(&wake_path);
    let wake = tokio::net::UnixDatagram::bind(&wake_path).ok();
    let mut ready = true;
    let mut listening: HashMap<(String, IpAddr), Vec<tokio::task::JoinHandle<()>>> = HashMap::new();
    let mut proxies: HashMap<(u16, SocketAddr), tokio::task::JoinHandle<()>> = HashMap::new();
    let mut idle = 0;
    let mut retry = Duration::from_millis(5);
    loop {
        // Sockets handed over since (their networks' records are written
        // before): served this round.
        if let Some(w) = &wake {
            while let Ok(got) = w.try_io(tokio::io::Interest::READABLE, || {
                take_handover(w.as_fd()).map_err(std::io::Error::from)
            }) {
                if let Some((key, sockets, _)) = got {
                    handed.insert(key, sockets);
                }
            }
        }
        let rec = shared.current();
        let forwards = crate::proxy::loopback_v6(&rec.endpoints);
        proxies.retain(|k, task| {
            let keep = forwards.contains(k);
            if !keep {
                task.abort();
            }
            keep
        });
        for f in forwards {
            if proxies.contains_key(&f) {
                continue;
            }
            // Taken or not there yet (a port just given up): the next round.
            if let Some(listener) = crate::proxy::listen(f.0).await {
                proxies.insert(f, tokio::spawn(crate::proxy::forward(listener, f.1)));
            }
        }
        let wanted: Vec<(String, IpAddr)> = rec
            .networks
            .iter()
            .flat_map(|n| n.subnets.iter().map(move |s| (n.name.clone(), s.gateway)))
            .collect();
        listening.retain(|k, tasks| {
            let keep = wanted.contains(k);
            if !keep {
                tasks.iter().for_each(|t| t.abort());
            }
            keep
        });
        let mut missing = false;
        for (net, ip) in &wanted {
            if listening.contains_key(&(net.clone(), *ip)) {
                continue;
            }
            let addr = SocketAddr::new(*ip, 53);
            // The bridge may still be coming up, or another root's server
            // still holds the address (its network just removed, it lets go
            // when woken): again soon.
            let bound = match handed.remove(&(net.clone(), *ip)) {
                Some((udp, tcp)) => (
                    udp.set_nonblocking(true)
                        .and_then(|()| UdpSocket::from_std(udp)),
                    tcp.set_nonblocking(true)
                        .and_then(|()| TcpListener::from_std(tcp)),
                ),
                None => (UdpSocket::bind(addr).await, TcpListener::bind(addr).await),
            };
            let (Ok(udp), Ok(tcp)) = bound else {
                missing = true;
                continue;
            };
            let tasks = vec![
                tokio::spawn(serve_udp(udp, shared.clone(), net.clone())),
                tokio::spawn(serve_tcp(tcp, shared.clone(), net.clone())),
            ];
            listening.insert((net.clone(), *ip), tasks);
        }
        // Those of networks gone meanwhile let go of their addresses.
        handed.clear();
        let mut served: Vec<(String, IpAddr)> = listening.keys().cloned().collect();
        served.sort();
        if served != said || unsaid {
            // Unsaid, it is tried again next round (and those who wait for
            // it say that the server does not answer).
            unsaid = !say_serving(stack_root, &served);
            said = served;
            // Answering needs little of the code that got here.
            stack_sys::memory::shed_code();
        }
        if std::mem::take(&mut ready) {
            say_ready();
        }
        idle = if wanted.is_empty() { idle + 1 } else { 0 };
        // Ends under the lock that networks are made under: a network made
        // meanwhile keeps us (its maker may be handing us its sockets);
        // else nobody hands us anything once the socket is gone. Not
        // waited for: its holder may be waiting for us to serve (another
        // round then). A lock not to be had at all is a root that is gone,
        // with its networks.
        if idle >= 3 {
            let made = shared.store.try_lock();
            if !matches!(made, Ok(None)) {
                if shared.store.networks().unwrap_or_default().is_empty() {
                    let _ = std::fs::remove_file(&wake_path);
                    let _ = std::fs::remove_file(serving_path(stack_root));
                    return Ok(());
                }
                idle = 0;
            }
        }
        let woken = async {
            match &wake {
                Some(w) => drop(w.readable().await),
                None => std::future::pending().await,
            }
        };
        // An address not to be had: soon again, then less and less often
        // (a bridge gone missing may not come back).
        let round = match missing {
            true => {
                let now = retry;
                retry = (retry * 2).min(Duration::from_millis(200));
                now
            }
            false => {
                retry = Duration::from_millis(5);
                Duration::from_millis(200)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(round) => {}
            _ = woken => {}
        }
    }
}

/// The server's process: `serve` on a runtime of one thread (it waits on
/// sockets and does little else), until no network is left.
pub fn server_main(stack_root: &Path) -> std::process::ExitCode {
    stack_sys::memory::lean();
    let served = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(serve(stack_root)).map_err(|e| e.to_string()),
        Err(e) => Err(format!("cannot start the async runtime: {e}")),
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stack dns: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The binary of the server alone, installed beside `stack`: the server
/// lives as long as networks do, and costs a third of the memory there.
pub const SERVER_BINARY: &str = "stack-dns";

/// The lock a running DNS server of `stack_root` holds: one per root.
fn lock_path(stack_root: &Path) -> PathBuf {
    stack_root.join("networks").join("dns.lock")
}

/// The socket a running DNS server of `stack_root` is woken on.
pub fn wake_socket(stack_root: &Path) -> PathBuf {
    stack_root.join("networks").join("dns.sock")
}

/// Whether a DNS server of `stack_root` runs: one is bound to its wake
/// socket (every build that says what it serves, having said it first,
/// and the builds just before), which it removes as it ends; a socket
/// left by one killed refuses.
pub fn runs(stack_root: &Path) -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(wake_socket(stack_root)))
        .is_ok()
}

/// The argument that runs a process as the DNS server of a store root.
pub const SERVER_ARG: &str = "__stack-dns";

/// Sockets handed to a server: by network and gateway, the UDP socket and
/// the TCP listener on port 53.
type Handed = HashMap<(String, IpAddr), (std::net::UdpSocket, std::net::TcpListener)>;

/// What one handover message says.
type Handing = (
    (String, IpAddr),
    (std::net::UdpSocket, std::net::TcpListener),
    Option<OwnedFd>,
);

/// One message from `sock` if one waits: a handover (its network and
/// gateway, its sockets, the server's lock where it comes with it), or
/// `None` for a plain wake.
fn take_handover(sock: BorrowedFd<'_>) -> nix::Result<Option<Handing>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 512];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 3]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let (len, fds) = {
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                fds.extend(stack_sys::passed_fds(raw));
            }
        }
        (msg.bytes, fds)
    };
    let said = std::str::from_utf8(&buf[..len]).unwrap_or_default();
    let key = said
        .trim_end()
        .split_once(' ')
        .and_then(|(n, ip)| Some((n.to_string(), ip.parse().ok()?)));
    let mut fds = fds.into_iter();
    Ok(match (key, fds.next(), fds.next()) {
        (Some(key), Some(udp), Some(tcp)) => Some((key, (udp.into(), tcp.into()), fds.next())),
        _ => None,
    })
}

/// Port 53 of a new network's gateway, bound by the network's maker and
/// handed to the server: containers started a moment later have their
/// queries wait in these sockets, so nobody waits for the server.
pub struct Handover {
    network: String,
    gateway: IpAddr,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

/// Networks whose sockets this process handed to a root's server, and
/// when.
static HANDED: Mutex<Vec<(PathBuf, String, IpAddr, std::time::Instant)>> = Mutex::new(Vec::new());

impl Handover {
    /// The sockets; `None` where the address is taken (by a server that
    /// got there first: ours, or another root's that held it a moment ago).
    pub fn bind(network: &str, gateway: IpAddr) -> std::io::Result<Option<Handover>> {
        let addr = SocketAddr::new(gateway, 53);
        let taken = |e: &std::io::Error| e.kind() == std::io::ErrorKind::AddrInUse;
        let udp = match std::net::UdpSocket::bind(addr) {
            Err(e) if taken(&e) => return Ok(None),
            r => r?,
        };
        let tcp = match std::net::TcpListener::bind(addr) {
            Err(e) if taken(&e) => return Ok(None),
            r => r?,
        };
        Ok(Some(Handover {
            network: network.to_string(),
            gateway,
            udp,
            tcp,
        }))
    }

    /// Sends the sockets on `sock`, with `lock` to a server being started.
    pub fn send(
        &self,
        stack_root: &Path,
        sock: &std::os::unix::net::UnixDatagram,
        lock: Option<&stack_sys::FileLock>,
    ) -> std::io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let said = format!("{} {}\n", self.network, self.gateway);
        let mut fds = vec![self.udp.as_raw_fd(), self.tcp.as_raw_fd()];
        fds.extend(lock.map(|l| l.as_fd().as_raw_fd()));
        // A server whose queue is full (stopped, or stuck) is not waited
        // for: the caller falls back to waiting for it to serve.
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[std::io::IoSlice::new(said.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut handed = HANDED.lock().unwrap_or_else(|p| p.into_inner());
        handed.push((
            stack_root.to_path_buf(),
            self.network.clone(),
            self.gateway,
            std::time::Instant::now(),
        ));
        Ok(())
    }

    /// Hands the sockets to the server of `stack_root` where one runs
    /// (`None`); where none does, the lock a server holds (`Some`), for the
    /// caller to send with the sockets to the one it starts. A server
    /// decides to end under the lock of the network records, which the
    /// maker of a network holds (or, wiring a container, while its network
    /// exists, which keeps the server): one about to end has its socket
    /// removed already, and lets go of its lock in a moment.
    pub fn hand(&self, stack_root: &Path) -> std::io::Result<Option<stack_sys::FileLock>> {
        use std::time::Instant;
        let lock_path = lock_path(stack_root);
        let wake = wake_socket(stack_root);
        if wake.as_os_str().len() >= 108 {
            // No server has such a socket: it serves by its rounds.
            return Err(std::io::Error::other("the wake socket's path is too long"));
        }
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let t = Instant::now();
        loop {
            if let Some(lock) = stack_sys::try_lock(&lock_path)? {
                return Ok(Some(lock));
            }
            match sock.connect(&wake) {
                Ok(()) => return self.send(stack_root, &sock, None).map(|()| None),
                // One that ends, or one that starts (its lock taken, its
                // socket not yet there).
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED))
                        && t.elapsed() < Duration::from_secs(5) =>
                {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether this process handed `network`'s sockets on `gateway` to the
/// server of `stack_root` a moment ago: that server serves them, or will
/// once it gets to its socket (and says so, within that moment).
pub fn handed(stack_root: &Path, network: &str, gateway: IpAddr) -> bool {
    let mut handed = HANDED.lock().unwrap_or_else(|p| p.into_inner());
    handed.retain(|(.., at)| at.elapsed() < Duration::from_secs(2));
    handed
        .iter()
        .any(|(r, n, g, _)| r == stack_root && n == network && *g == gateway)
}

/// Forgets the handovers of a network removed (one of that name made
/// again hands its own).
pub fn forget(stack_root: &Path, network: &str) {
    let mut handed = HANDED.lock().unwrap_or_else(|p| p.into_inner());
    handed.retain(|(r, n, ..)| !(r == stack_root && n == network));
}

/// The file where the server of a root says what it serves: its pid, then
/// a line per network and gateway it listens on (`NAME GATEWAY`). Written
/// as it starts, and whenever that changes.
fn serving_path(stack_root: &Path) -> PathBuf {
    stack_root.join("networks").join("dns.serving")
}

/// Whether the DNS server of `stack_root` listens on `gateway` for
/// `network`, as it says (something else may answer on the address: a
/// server of another root that had it as a gateway a moment ago); `None`
/// where no server has said anything (none runs, or one of a build from
/// before it did).
pub fn serves(stack_root: &Path, network: &str, gateway: IpAddr) -> Option<bool> {
    let text = std::fs::read_to_string(serving_path(stack_root)).ok()?;
    let mut lines = text.lines();
    let alive = lines
        .next()
        .is_some_and(|pid| stack_sys::runs_with_arg(pid, SERVER_ARG));
    let line = format!("{network} {gateway}");
    Some(alive && lines.any(|l| l == line))
}

/// Says what is served (see `serving_path`); false where it cannot.
fn say_serving(stack_root: &Path, served: &[(String, IpAddr)]) -> bool {
    let text: String = std::iter::once(std::process::id().to_string())
        .chain(served.iter().map(|(n, ip)| format!("{n} {ip}")))
        .map(|l| l + "\n")
        .collect();
    // Not synced: it says what a live process does (and the server's one
    // thread would wait on the disk meanwhile).
    stack_sys::write_replace(&serving_path(stack_root), text.as_bytes()).is_ok()
}

/// Tells whoever started us, on our standard output, that the first round
/// is done (every gateway there was then is served), then lets it go.
fn say_ready() {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(b"1");
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record replaced right after it was read: modification times are
    /// only as fine as the kernel's tick, the new inode shows it always.
    #[test]
    fn a_record_replaced_at_once_changes_the_stamp() {
        let root = std::env::temp_dir().join(format!("stack-dns-stamp-{}", std::process::id()));
        let eps = root.join("net.endpoints");
        std::fs::create_dir_all(&eps).unwrap();
        let rec = eps.join("c1.json");
        std::fs::write(&rec, "{}").unwrap();
        for _ in 0..100 {
            let before = stamp(&root);
            std::fs::write(eps.join(".c1.json.tmp"), "{}").unwrap();
            std::fs::rename(eps.join(".c1.json.tmp"), &rec).unwrap();
            assert_ne!(stamp(&root), before);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn ep(container: &str, name: &str, aliases: &[&str], network: &str, addr: &str) -> Endpoint {
        Endpoint {
            container: container.into(),
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            network: network.into(),
            ifname: "eth0".into(),
            host_veth: "v".into(),
            mac: "02:42:00:00:00:00".into(),
            addresses: vec![addr.parse().unwrap()],
            netns: "/x".into(),
            ports: vec![],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_resolve_on_shared_networks_only() {
        let rec = Records {
            networks: vec![],
            endpoints: vec![
                ep("aaaaaaaaaaaa1111", "web-1", &["web"], "front", "10.0.0.2"),
                ep("bbbbbbbbbbbb2222", "web-2", &["web"], "front", "10.0.0.3"),
                ep("cccccccccccc3333", "db", &[], "back", "10.0.1.2"),
                ep("dddddddddddd4444", "api", &[], "front", "10.0.0.4"),
                ep("dddddddddddd4444", "api", &[], "back", "10.0.1.3"),
            ],
        };
        let r =
            |name: &str, asker: &str, turn| resolve(name, false, ip(asker), "front", &rec, turn);
        // Every replica behind an alias, rotated.
        assert_eq!(
            r("web", "10.0.0.4", 0),
            Some(vec![ip("10.0.0.2"), ip("10.0.0.3")])
        );
        assert_eq!(
            r("WEB.", "10.0.0.4", 1),
            Some(vec![ip("10.0.0.3"), ip("10.0.0.2")])
        );
        // api is on both networks; web-1 only on front: db is not its business.
        assert_eq!(r("db", "10.0.1.3", 0), Some(vec![ip("10.0.1.2")]));
        assert_eq!(r("db", "10.0.0.2", 0), None);
        assert_eq!(r("aaaaaaaaaaaa", "10.0.0.4", 0), Some(vec![ip("10.0.0.2")]));
        // An unknown asker sees the network it asked on.
        assert_eq!(r("web-2", "10.9.9.9", 0), Some(vec![ip("10.0.0.3")]));
        assert_eq!(r("example.com", "10.0.0.4", 0), None);
        // Ours, but no v6 address: an empty answer, not a forward.
        assert_eq!(
            resolve("web", true, ip("10.0.0.4"), "front", &rec, 0),
            Some(vec![])
        );
    }

    #[test]
    fn messages_round_trip() {
        let rec = Records {
            networks: vec![],
            endpoints: vec![ep("aaaaaaaaaaaa1111", "web", &[], "front", "10.0.0.2")],
        };
        let name = hickory_proto::rr::Name::from_ascii("web.").unwrap();
        let mut q = Message::query();
        q.add_query(hickory_proto::op::Query::query(name.clone(), RecordType::A));
        let bytes = q.to_vec().unwrap();
        let parsed = Message::from_vec(&bytes).unwrap();
        let a = answer(&parsed, ip("10.0.0.9"), "front", &rec, 0).unwrap();
        let back = Message::from_vec(&a.to_vec().unwrap()).unwrap();
        assert_eq!(back.metadata.id, q.metadata.id);
        assert_eq!(back.answers.len(), 1);
        assert_eq!(back.answers[0].data, RData::A(ip4("10.0.0.2").into()));
        let mut other = Message::query();
        other.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("example.org.").unwrap(),
            RecordType::A,
        ));
        assert!(answer(&other, ip("10.0.0.9"), "front", &rec, 0).is_none());
    }

    fn ip4(s: &str) -> std::net::Ipv4Addr {
        s.parse().unwrap()
    }
}
