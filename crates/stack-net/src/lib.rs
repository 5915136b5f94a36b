//! Networking for containers: one Linux bridge per network, a veth pair per
//! container and network, addresses from IPAM, nftables rules of our own for
//! masquerade, isolation and published ports, and records of all of it.
//!
//! Every change is made under the store lock; the firewall is recomputed from
//! the records after each one, so the rules always say what the records say.

pub mod dns;
pub mod firewall;
pub mod forward;
pub mod ipam;
pub mod link;
pub mod nftables;
pub mod ports;
pub mod proxy;
pub mod state;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use state::{Endpoint, Network, Port, Store};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no such network: `{0}`")]
    NotFound(String),
    #[error("network `{0}` already exists")]
    Exists(String),
    #[error("network `{name}` is in use by {containers}: remove them first")]
    InUse { name: String, containers: String },
    #[error("{0}")]
    Config(String),
    #[error("{what}: {why}")]
    Netlink { what: String, why: String },
    #[error("firewall: {0}")]
    Firewall(String),
    #[error("{0}")]
    PortTaken(String),
    #[error(transparent)]
    Io(#[from] stack_sys::IoError),
    #[error("`{}` is damaged: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
}

impl NetError {
    pub fn io(path: &Path, source: std::io::Error) -> NetError {
        NetError::Io(stack_sys::IoError::new(path, source))
    }
}

/// One `ipam.config` entry.
#[derive(Clone, Debug, Default)]
pub struct SubnetRequest {
    pub subnet: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    pub ip_range: Option<IpNet>,
    pub aux_addresses: Vec<IpAddr>,
}

/// `stack network create` / a stack file's `networks:` entry.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub name: String,
    /// `bridge` (or none); anything else is refused.
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub subnets: Vec<SubnetRequest>,
    pub ipv6: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

fn random_hex(n: usize) -> Result<String, NetError> {
    stack_sys::random_hex(n).map_err(|e| NetError::io(Path::new("/dev/urandom"), e))
}

fn now() -> String {
    (stack_sys::time::now_nanos() / 1_000_000_000).to_string()
}

/// A lock for the whole host, held while a subnet is chosen and its bridge
/// made. A rootless engine's host is its own network namespace: its store's.
fn host_lock(store: &Store) -> Result<state::Lock, NetError> {
    if stack_sys::userns::rootless() {
        return state::Lock::take(&store.root().join("subnets.lock"));
    }
    let dir = ["/run/lock", "/run", "/tmp"]
        .into_iter()
        .map(Path::new)
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("/tmp"));
    state::Lock::take(&dir.join("stack-net.lock"))
}

/// Creates a network: its record, its bridge, its rules; and, beside the
/// rules' load once the bridge is up, what the caller does with it (starts
/// its DNS server). Where any of it fails, nothing of it is left.
pub async fn create(
    store: &Store,
    opts: &CreateOptions,
    pool: &ipam::Pool,
    beside: impl FnOnce(&Network) -> Result<(), String>,
) -> Result<Network, NetError> {
    if !state::valid_name(&opts.name) {
        return Err(NetError::Config(format!(
            "invalid network name `{}`: use letters, digits, `_`, `.` and `-`",
            opts.name
        )));
    }
    match opts.driver.as_deref() {
        None | Some("bridge") | Some("") => {}
        Some(d) => {
            return Err(NetError::Config(format!(
                "network `{}`: driver `{d}` is not supported on one host (only `bridge`)",
                opts.name
            )))
        }
    }
    let mut mtu = None;
    let mut bridge = None;
    for (k, v) in &opts.driver_opts {
        match k.as_str() {
            "com.docker.network.driver.mtu" | "mtu" => {
                mtu = Some(v.parse::<u32>().ok().filter(|m| (68..=65535).contains(m)).ok_or_else(|| {
                    NetError::Config(format!("network `{}`: invalid MTU `{v}`", opts.name))
                })?)
            }
            "com.docker.network.bridge.name" => {
                if v.is_empty() || v.len() > 15 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                    return Err(NetError::Config(format!("network `{}`: invalid bridge name `{v}`", opts.name)));
                }
                bridge = Some(v.clone())
            }
            other => {
                return Err(NetError::Config(format!(
                    "network `{}`: driver option `{other}` is not supported for a bridge (mtu, com.docker.network.driver.mtu, com.docker.network.bridge.name)",
                    opts.name
                )))
            }
        }
    }
    let _lock = store.lock()?;
    // Stores under other roots choose subnets too: one at a time on the host.
    let _host = host_lock(store)?;
    if store.get(&opts.name).is_ok() {
        return Err(NetError::Exists(opts.name.clone()));
    }
    let mut taken = link::routed()?;
    for n in store.networks()? {
        taken.extend(n.subnets.iter().map(|s| s.subnet));
    }
    let id = random_hex(32)?;
    let mut subnets = Vec::new();
    let requests = if opts
        .subnets
        .iter()
        .any(|s| s.subnet.is_some_and(|n| n.addr().is_ipv4()))
    {
        opts.subnets.clone()
    } else {
        // No v4 subnet given: one from the pool comes first.
        let mut r = vec![SubnetRequest::default()];
        r.extend(opts.subnets.iter().cloned());
        r
    };
    for r in &requests {
        let subnet = match r.subnet {
            Some(s) => {
                if let Some(t) = taken.iter().find(|t| ipam::overlaps(&s, t)) {
                    return Err(NetError::Config(format!(
                        "network `{}`: subnet `{s}` overlaps `{t}`, which is already in use on this host",
                        opts.name
                    )));
                }
                s
            }
            None => pool.pick(&taken).ok_or_else(|| {
                NetError::Config(format!(
                    "network `{}`: no free subnet left in the pool {}/{}",
                    opts.name, pool.base, pool.prefix
                ))
            })?,
        };
        taken.push(subnet);
        subnets.push(
            ipam::SubnetConfig::new(subnet, r.gateway, r.ip_range, r.aux_addresses.clone())
                .map_err(|e| NetError::Config(format!("network `{}`: {e}", opts.name)))?,
        );
    }
    if opts.ipv6 && !subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
        let ula = ipam::ula_for(&id);
        subnets
            .push(ipam::SubnetConfig::new(ula, None, None, Vec::new()).map_err(NetError::Config)?);
    }
    let net = Network {
        name: opts.name.clone(),
        bridge: bridge.unwrap_or_else(|| format!("stk-{}", &id[..11])),
        id,
        subnets,
        internal: opts.internal,
        mtu,
        labels: opts.labels.clone(),
        created: now(),
    };
    if store.networks()?.iter().any(|n| n.bridge == net.bridge) {
        return Err(NetError::Config(format!(
            "bridge `{}` belongs to another network",
            net.bridge
        )));
    }
    // Written, not synced: its sync goes on beside the bridge and the
    // rules, and beyond (see [`settle`]); a record a power loss tore is a
    // creation that never returned, read as none.
    store.put(&net)?;
    let syncing = {
        let (store, name) = (store.clone(), net.name.clone());
        std::thread::spawn(move || store.sync(&name))
    };
    let addrs: Vec<(IpAddr, u8)> = net
        .subnets
        .iter()
        .map(|s| (s.gateway, s.subnet.prefix_len()))
        .collect();
    let made = link::ensure_bridge(&net.bridge, net.mtu, &addrs).and_then(|()| {
        std::thread::scope(|s| {
            let rules = s.spawn(|| firewall::apply(store, true));
            let theirs = beside(&net).map_err(NetError::Config);
            let rules = rules.join().unwrap_or_else(|_| {
                Err(NetError::Firewall(
                    "the thread that loads the rules panicked".into(),
                ))
            });
            rules.and(theirs)
        })
    });
    if let Err(e) = made {
        // Leave nothing half made.
        let _ = syncing.join();
        if let Ok(nl) = link::Netlink::host() {
            let _ = nl.delete(&net.bridge).await;
        }
        let _ = store.delete(&net.name);
        let _ = firewall::apply(store, true);
        return Err(e);
    }
    SYNCING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((net.name.clone(), syncing));
    Ok(net)
}

/// The syncs of network records made by [`create`] that nobody has
/// waited for yet.
type Syncing = (String, std::thread::JoinHandle<Result<(), NetError>>);
static SYNCING: std::sync::Mutex<Vec<Syncing>> = std::sync::Mutex::new(Vec::new());

/// Waits until every network record this process made is on disk: what
/// made networks (a `network create`, an engine's `up`) does before it
/// says it is done, while the containers it starts meanwhile need not
/// wait. The first failure, if any.
pub fn settle() -> Result<(), NetError> {
    let pending = std::mem::take(&mut *SYNCING.lock().unwrap_or_else(|p| p.into_inner()));
    let mut done = Ok(());
    for (name, sync) in pending {
        let synced = match sync.join() {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("its thread panicked".into()),
        };
        done = done.and(synced.map_err(|why| {
            NetError::Config(format!(
                "network `{name}` is made, but its record could not be synced to disk: {why}"
            ))
        }));
    }
    done
}

/// Removes a network that no container uses: bridge, record, rules. The
/// bridge goes first: a removal cut short (an engine killed) leaves the
/// record, and the next removal finds it; never a bridge no record names.
pub async fn remove(store: &Store, name: &str) -> Result<(), NetError> {
    let _lock = store.lock()?;
    let net = store.get(name)?;
    let eps = store.endpoints(name)?;
    if !eps.is_empty() {
        let names: Vec<String> = eps.iter().map(|e| format!("`{}`", e.name)).collect();
        return Err(NetError::InUse {
            name: name.to_string(),
            containers: names.join(", "),
        });
    }
    link::Netlink::host()?.delete(&net.bridge).await?;
    store.delete(name)?;
    let mut failures = Vec::new();
    if let Err(e) = firewall::apply(store, true) {
        failures.push(e.to_string());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(NetError::Config(format!(
            "network `{name}` removed, but: {}",
            failures.join("; ")
        )))
    }
}

/// A container's wish for one network.
#[derive(Clone, Debug, Default)]
pub struct Attachment {
    pub network: String,
    pub aliases: Vec<String>,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub mac: Option<[u8; 6]>,
}

/// Where a container's network namespace file lives.
pub fn netns_path(store: &Store, container: &str) -> PathBuf {
    store.netns_dir().join(container)
}

/// Whether a container's network namespace is still there: its file still
/// a namespace (nsfs). The file stays without its mount once the mount
/// namespace that held it is gone (a reboot; a rootless store's
/// namespaces stopped), or where a removal was cut short between the two.
pub fn netns_alive(netns: &Path) -> bool {
    nix::sys::statfs::statfs(netns)
        .is_ok_and(|f| f.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Makes a container's network namespace and connects it to its networks
/// (the first gets the default route and the published ports). On failure
/// nothing is left.
///
/// Only the choice of addresses and ports (and the records that reserve
/// them) happens under the store's lock; the netlink work that follows runs
/// in parallel with other containers' (an `up` wires its containers at once).
pub async fn connect(
    store: &Store,
    container: &str,
    name: &str,
    attachments: &[Attachment],
    ports: &[Port],
) -> Result<(PathBuf, Vec<Endpoint>), NetError> {
    let netns = netns_path(store, container);
    let mut done: Vec<Endpoint> = Vec::new();
    let planned = {
        let _lock = store.lock()?;
        reserve(
            store,
            container,
            name,
            attachments,
            ports,
            (&netns, 0),
            &mut done,
        )
    };
    let result = match planned {
        Ok(plan) => wire(&netns, &done, &plan),
        Err(e) => Err(e),
    };
    let published = done.first().is_some_and(|ep| !ep.ports.is_empty());
    match result {
        Ok(()) if !published => Ok((netns, done)),
        Ok(()) => {
            let _lock = store.lock()?;
            let applied =
                firewall::publish(store, &done[..1], &[]).and_then(|()| match store.forwarder() {
                    Some(forwarder) => forward::check(&forwarder, &done[0]),
                    None => Ok(()),
                });
            match applied {
                Ok(()) => Ok((netns, done)),
                Err(e) => {
                    drop(_lock);
                    undo(store, container, &netns, &done, true).await;
                    Err(e)
                }
            }
        }
        // Its ports were never published.
        Err(e) => {
            undo(store, container, &netns, &done, false).await;
            Err(e)
        }
    }
}

/// What [`reserve`] decided for one endpoint that netlink must make.
struct Planned {
    mac: [u8; 6],
    addrs: Vec<(IpAddr, u8)>,
    gateways: Vec<IpAddr>,
    bridge: String,
    mtu: Option<u32>,
    /// The bridge's own addresses (its subnets' gateways).
    bridge_addrs: Vec<(IpAddr, u8)>,
}

/// Removes what a failed connect made.
async fn undo(store: &Store, container: &str, netns: &Path, done: &[Endpoint], rules: bool) {
    if let Ok(nl) = link::Netlink::host() {
        for ep in done {
            let _ = nl.delete(&ep.host_veth).await;
        }
    }
    let Ok(_lock) = store.lock() else {
        return;
    };
    for ep in done {
        let _ = store.delete_endpoint(&ep.network, container);
    }
    let _ = link::remove_netns(netns);
    if rules {
        let _ = firewall::publish(store, &[], done);
    }
}

/// Under the lock: checks the request, picks addresses and host ports, and
/// writes the endpoint records that reserve them: interfaces numbered from
/// `first_interface`, in the namespace at `netns`.
fn reserve(
    store: &Store,
    container: &str,
    name: &str,
    attachments: &[Attachment],
    ports: &[Port],
    (netns, first_interface): (&Path, usize),
    done: &mut Vec<Endpoint>,
) -> Result<Vec<Planned>, NetError> {
    let nets: Vec<Network> = attachments
        .iter()
        .map(|a| store.get(&a.network))
        .collect::<Result<_, _>>()?;
    let mut ports = ports.to_vec();
    if !ports.is_empty() {
        if nets.first().is_some_and(|n| n.internal) {
            return Err(NetError::Config(format!(
                "network `{}` is internal: no port can be published from it",
                nets[0].name
            )));
        }
        ports::check_free(store, &mut ports)?;
    }
    let mut plan = Vec::new();
    for (i, (a, net)) in attachments.iter().zip(&nets).enumerate() {
        let i = first_interface + i;
        let used: std::collections::HashSet<IpAddr> = store
            .endpoints(&net.name)?
            .iter()
            .flat_map(|e| e.addresses.clone())
            .collect();
        let mut addrs: Vec<(IpAddr, u8)> = Vec::new();
        for s in &net.subnets {
            let wanted = if s.subnet.addr().is_ipv4() {
                a.ipv4
            } else {
                a.ipv6
            };
            let addr = match wanted {
                Some(w) => {
                    s.check_static(w, &used)
                        .map_err(|e| NetError::Config(format!("network `{}`: {e}", net.name)))?;
                    w
                }
                None => s.allocate(&used).ok_or_else(|| {
                    NetError::Config(format!(
                        "network `{}`: no free address left in {}",
                        net.name, s.subnet
                    ))
                })?,
            };
            addrs.push((addr, s.subnet.prefix_len()));
        }
        for (w, v4) in [(a.ipv4, true), (a.ipv6, false)] {
            if let Some(w) = w {
                if !net
                    .subnets
                    .iter()
                    .any(|s| s.subnet.addr().is_ipv4() == v4 && s.subnet.contains(&w))
                {
                    return Err(NetError::Config(format!(
                        "network `{}` has no subnet for `{w}`",
                        net.name
                    )));
                }
            }
        }
        let mac = a.mac.unwrap_or_else(|| ipam::mac_for(addrs[0].0));
        let tag = format!("{}{i}", &container[..container.len().min(9)]);
        let ep = Endpoint {
            container: container.to_string(),
            name: name.to_string(),
            aliases: a.aliases.clone(),
            network: net.name.clone(),
            ifname: format!("eth{i}"),
            host_veth: format!("vs{tag}"),
            mac: ipam::format_mac(&mac),
            addresses: addrs.iter().map(|(a, _)| *a).collect(),
            netns: netns.to_path_buf(),
            ports: if i == 0 { ports.clone() } else { Vec::new() },
        };
        store.put_endpoint(&ep)?;
        done.push(ep);
        plan.push(Planned {
            mac,
            addrs,
            gateways: if net.internal {
                Vec::new()
            } else {
                net.subnets.iter().map(|s| s.gateway).collect()
            },
            bridge: net.bridge.clone(),
            mtu: net.mtu,
            bridge_addrs: net
                .subnets
                .iter()
                .map(|s| (s.gateway, s.subnet.prefix_len()))
                .collect(),
        });
    }
    Ok(plan)
}

/// Connects a container that has its namespace already (made, or
/// running) to one more network (`docker network connect`): the next free
/// `ethN`, no published ports.
pub async fn join(
    store: &Store,
    container: &str,
    name: &str,
    attachment: &Attachment,
) -> Result<Endpoint, NetError> {
    let netns = netns_path(store, container);
    if !netns_alive(&netns) {
        return Err(NetError::Config(format!(
            "container {container} has no network namespace of its own to connect"
        )));
    }
    let mut done: Vec<Endpoint> = Vec::new();
    let planned = {
        let _lock = store.lock()?;
        let mine = store.container_endpoints(container)?;
        if mine.iter().any(|e| e.network == attachment.network) {
            return Err(NetError::Config(format!(
                "container {container} is already on network `{}`",
                attachment.network
            )));
        }
        // The lowest `ethN` no endpoint has.
        let next = (0..)
            .find(|i| !mine.iter().any(|e| e.ifname == format!("eth{i}")))
            .unwrap_or(0);
        reserve(
            store,
            container,
            name,
            std::slice::from_ref(attachment),
            &[],
            (&netns, next),
            &mut done,
        )
    };
    let result = match planned {
        Ok(plan) => match link::Batch::in_netns(&netns) {
            Ok(mut inside) => wire_into(&mut inside, false, &done, &plan),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    // No published port comes with it: the rules stay as they are.
    match result {
        Ok(()) => Ok(done.remove(0)),
        Err(e) => {
            if let Ok(nl) = link::Netlink::host() {
                for ep in &done {
                    let _ = nl.delete(&ep.host_veth).await;
                }
            }
            if let Ok(_lock) = store.lock() {
                for ep in &done {
                    let _ = store.delete_endpoint(&ep.network, container);
                }
            }
            Err(e)
        }
    }
}

/// Takes a container off one of its networks (`docker network
/// disconnect`): its veth there, its record, the rules.
pub async fn leave(store: &Store, container: &str, network: &str) -> Result<(), NetError> {
    let _lock = store.lock()?;
    let Some(ep) = store
        .endpoints(network)?
        .into_iter()
        .find(|e| e.container == container)
    else {
        return Err(NetError::Config(format!(
            "container {container} is not connected to network `{network}`"
        )));
    };
    link::Netlink::host()?.delete(&ep.host_veth).await?;
    store.delete_endpoint(network, container)?;
    firewall::publish(store, &[], &[ep])
}

/// Without the lock: the namespace, a veth per endpoint into it, addresses
/// and routes.
fn wire(netns: &Path, endpoints: &[Endpoint], plan: &[Planned]) -> Result<(), NetError> {
    let mut inside = link::create_netns(netns)?;
    wire_into(&mut inside, true, endpoints, plan)
}

/// A veth per endpoint into the namespace there is (`inside`: a socket in
/// it; `fresh`, one just made), addresses and routes: all of them in one
/// batch of netlink requests on that socket, whatever the number of
/// endpoints. Each veth is made from inside, its host end sent to the
/// engine's namespace onto its bridge (whose index the process knows from
/// the last time), both ends at indexes chosen here: the peers' addresses
/// and routes that follow name them without waiting for an answer. (A
/// bridge index gone stale, a bridge made again, or an index taken: the
/// veths made go, and one more try with the bridges looked up afresh and
/// other indexes.)
fn wire_into(
    inside: &mut link::Batch,
    fresh: bool,
    endpoints: &[Endpoint],
    plan: &[Planned],
) -> Result<(), NetError> {
    // Ours, where the host ends go: opened once (a process's namespace
    // stays; its threads' are entered only by short-lived ones).
    static HOST_NS: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let host_ns = match HOST_NS.get() {
        Some(ns) => ns,
        None => {
            let path = Path::new("/proc/thread-self/ns/net");
            let ns = std::fs::File::open(path).map_err(|e| NetError::io(path, e))?;
            HOST_NS.get_or_init(|| ns)
        }
    };
    let bridges: Vec<&str> = plan.iter().map(|p| p.bridge.as_str()).collect();
    let mut retry = false;
    // What the first try was refused, once it is tried again.
    let mut first = None;
    loop {
        let mut indexes = link::bridge_indexes(&bridges, retry)?;
        for (i, p) in plan.iter().enumerate() {
            // A network whose creation was cut short (an engine killed
            // between its record and its bridge) gets its bridge now.
            if indexes[i].is_none() {
                link::ensure_bridge(&p.bridge, p.mtu, &p.bridge_addrs)?;
                indexes[i] = link::bridge_indexes(&[&p.bridge], true)?[0];
            }
        }
        let mut requests = Vec::new();
        // What each request does; whether it may find its work done.
        let mut what = Vec::new();
        let mut peers = Vec::new();
        for ((ep, p), bridge) in endpoints.iter().zip(plan).zip(&indexes) {
            let bridge = bridge.ok_or_else(|| link::missing(&p.bridge))?;
            let peer = link::peer_index(&ep.ifname, fresh && !retry);
            requests.push(link::veth(
                &ep.host_veth,
                bridge,
                (&ep.ifname, p.mac),
                p.mtu,
                host_ns,
                (link::host_index(), peer),
            ));
            what.push((
                format!("create veth {} on {}", ep.host_veth, p.bridge),
                false,
            ));
            peers.push(peer);
        }
        for ((ep, p), &index) in endpoints.iter().zip(plan).zip(&peers) {
            requests.push(link::up(index));
            what.push((format!("set {} up", ep.ifname), false));
            for (a, prefix) in &p.addrs {
                requests.push(link::address(index, *a, *prefix));
                what.push((format!("add {a}/{prefix} to {}", ep.ifname), false));
            }
            for g in &p.gateways {
                requests.push(link::default_route(*g));
                // A second network's gateway: the first one keeps the default route.
                what.push((format!("default route via {g}"), true));
            }
        }
        let answers = inside
            .run(requests)
            .map_err(link::io_nl("wire the container's links"))?;
        let refused = what.iter().zip(&answers).position(|((_, may_exist), a)| {
            matches!(a, Err(e) if !(*may_exist && e.raw_os_error() == Some(libc::EEXIST)))
        });
        let Some(at) = refused else {
            return Ok(());
        };
        // The veths made go (each with its host end); then one more try
        // where a veth was refused (as with a stale bridge index), else the
        // first refusal is said.
        let made: Vec<_> = peers
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_ok())
            .map(|(&peer, _)| link::remove(peer))
            .collect();
        let _ = inside.run(made);
        let veth_refused = answers.iter().take(endpoints.len()).any(Result::is_err);
        let e = answers.into_iter().nth(at).and_then(Result::err);
        let e = e.unwrap_or_else(|| std::io::Error::other("refused"));
        let refusal = (what.swap_remove(at).0, e);
        if !veth_refused || retry {
            // A veth the first try made and could not remove is no cause.
            let exists = refusal.1.raw_os_error() == Some(libc::EEXIST);
            let (what, e) = match first.take() {
                Some(first) if exists => first,
                _ => refusal,
            };
            return Err(link::io_nl(what)(e));
        }
        first = Some(refusal);
        retry = true;
    }
}

/// Whether any process is in the namespace bound at `path`.
fn netns_in_use(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|p| {
        std::fs::metadata(p.path().join("ns/net"))
            .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
    })
}

/// Takes a container off every network and removes its namespace; reports
/// every failure but goes on.
pub async fn disconnect(store: &Store, container: &str) -> Result<(), NetError> {
    let _lock = store.lock()?;
    let mut failures = Vec::new();
    let host = link::Netlink::host()?;
    let mine = store.container_endpoints(container)?;
    // Unbinding the namespace is enough: the kernel destroys it once its
    // last process is gone, and its veths with it (without making us wait
    // for the deletions). A container still running keeps it; then its
    // veths are taken away now.
    let running = netns_in_use(&netns_path(store, container));
    for ep in &mine {
        if running {
            if let Err(e) = host.delete(&ep.host_veth).await {
                failures.push(e.to_string());
            }
        }
        if let Err(e) = store.delete_endpoint(&ep.network, container) {
            failures.push(e.to_string());
        }
    }
    if let Err(e) = firewall::publish(store, &[], &mine) {
        failures.push(e.to_string());
    }
    if let Err(e) = link::remove_netns(&netns_path(store, container)) {
        failures.push(e.to_string());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(NetError::Config(failures.join("; ")))
    }
}
