//! Networks on the host: made with their DNS server, and containers
//! wired to them (stack-net's netlink work on the host's runtime).

use std::net::IpAddr;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::Host;

/// The hidden mode of our binary that runs the DNS server of a store root.
pub const DNS_ARG: &str = stack_net::dns::SERVER_ARG;

/// Starts the DNS server of this root unless it answers on `gateway`
/// already. Where the address is free, its sockets are bound here and
/// handed to the server (the one running, or one started with them): no
/// waiting, queries wait in the sockets. Else (taken by a server that got
/// there first, or by another root's a moment longer) waits until ours
/// says it serves.
fn ensure_dns(host: &Host, network: &str, gateway: IpAddr) -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    let root = host.root();
    // Ours, by what it says: something else may answer on the address (a
    // server of another root that had it as a gateway a moment ago). A
    // server of ours that says nothing (of a build from before it did,
    // which outlives an upgrade of the engine) is asked on the address;
    // where none of ours runs, whatever answers there is not ours. (One of
    // a build older still, before the wake socket, is not found running:
    // it is waited for, then said not to answer.) What it says is read
    // again once it is found running: it may have started in between.
    let addr = std::net::SocketAddr::new(gateway, 53);
    let said = || stack_net::dns::serves(root, network, gateway);
    let up = || match said() {
        Some(ours) => ours,
        None => {
            stack_net::dns::runs(root)
                && said().unwrap_or_else(|| {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                })
        }
    };
    if stack_net::dns::handed(root, network, gateway) || up() {
        return Ok(());
    }
    if let Ok(Some(handover)) = stack_net::dns::Handover::bind(network, gateway) {
        match handover.hand(root) {
            Ok(None) => return Ok(()),
            Ok(Some(lock)) => {
                let (ours, theirs) = std::os::unix::net::UnixDatagram::pair()?;
                handover.send(root, &ours, Some(&lock))?;
                let started = start_dns(
                    host,
                    std::os::fd::OwnedFd::from(theirs).into(),
                    std::process::Stdio::null(),
                );
                if started.is_err() {
                    stack_net::dns::forget(root, network);
                }
                return started;
            }
            // (No socket to hand it on: the server binds it itself.)
            Err(_) => {}
        }
    }
    // A server that runs already serves the new gateway once woken.
    wake_dns(host);
    // Else the one we start says on its output when it serves (and exits
    // at once, closing it, if another server holds the store).
    let (said, say) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    start_dns(host, std::process::Stdio::null(), say.into())?;
    let t = Instant::now();
    let limit = Duration::from_secs(5);
    {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd as _;
        let mut fds = [PollFd::new(said.as_fd(), PollFlags::POLLIN)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(limit.as_millis() as i32).unwrap_or(PollTimeout::MAX),
        );
    }
    while !up() {
        if t.elapsed() > limit {
            bail!("the DNS server does not answer on {addr}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Starts the DNS server of this root, `stdin` and `stdout` its standard
/// input and output.
fn start_dns(
    host: &Host,
    stdin: std::process::Stdio,
    stdout: std::process::Stdio,
) -> anyhow::Result<()> {
    // `stack-dns` where it is installed beside us, else our own binary.
    let exe = match stack_runtime::sibling_binary(stack_net::dns::SERVER_BINARY) {
        Some(small) => small,
        None => std::env::current_exe().context("cannot find our own binary")?,
    };
    let server = std::process::Command::new(exe)
        .arg(DNS_ARG)
        .env("STACK_ROOT", host.root())
        .stdin(stdin)
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the DNS server")?;
    stack_runtime::reap_later(server);
    Ok(())
}

/// The network Docker's `default`/`bridge` mode joins: a stack network of
/// that name, made by the Docker API when first needed.
pub const BRIDGE: &str = "bridge";

/// Creates a network, and the DNS server that answers on it (started
/// while the network's rules load); its record on disk when this returns.
pub fn create(host: &Host, opts: &stack_net::CreateOptions) -> anyhow::Result<stack_net::Network> {
    let made = make(host, opts)?;
    stack_net::settle()?;
    Ok(made)
}

/// [`create`], its record's sync left going on (`stack_net::settle` waits
/// for it): the engine's, whose containers need not wait for the disk.
pub fn make(host: &Host, opts: &stack_net::CreateOptions) -> anyhow::Result<stack_net::Network> {
    let dns = |net: &stack_net::Network| {
        ensure_dns(host, &net.name, net.subnets[0].gateway).map_err(|e| format!("{e:#}"))
    };
    let made = host.block_on(stack_net::create(host.networks()?, opts, &pool()?, dns))?;
    if made.is_err() {
        // What was handed over went with the network; a server it started
        // lets go of the gateway now, not at its next round.
        stack_net::dns::forget(host.root(), &opts.name);
        wake_dns(host);
    }
    Ok(made?)
}

fn pool() -> anyhow::Result<stack_net::ipam::Pool> {
    match std::env::var("STACK_NETWORK_POOL") {
        Ok(p) => stack_net::ipam::Pool::parse(&p).map_err(anyhow::Error::msg),
        Err(_) => Ok(stack_net::ipam::Pool::default()),
    }
}

/// Removes a network no container uses (and, with the last network, the
/// DNS server).
pub fn remove(host: &Host, name: &str) -> anyhow::Result<()> {
    host.block_on(stack_net::remove(host.networks()?, name))??;
    stack_net::dns::forget(host.root(), name);
    // It lets go of the gateway now, not at its next round: the subnet may
    // be another's in a moment.
    wake_dns(host);
    Ok(())
}

/// Wakes the DNS server of the host's root, if one runs, for a round now.
fn wake_dns(host: &Host) {
    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = sock.send_to(b"", stack_net::dns::wake_socket(host.root()));
    }
}

/// What a container gets from its networks.
pub struct Wired {
    pub netns: PathBuf,
    pub resolv_conf: String,
    /// `IP<TAB>hostname` lines for /etc/hosts.
    pub hosts: Vec<String>,
}

/// How `container run` asks for networks.
pub struct Request<'a> {
    pub networks: &'a [String],
    pub aliases: &'a [String],
    pub ip: Option<&'a str>,
    pub ip6: Option<&'a str>,
    pub mac: Option<&'a str>,
    pub publish: &'a [String],
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
}

/// Connects a new container to its named networks.
pub fn wire(
    host: &Host,
    id: &str,
    name: &str,
    host_names: &str,
    req: &Request<'_>,
) -> anyhow::Result<Wired> {
    let store = host.networks()?;
    let parse_ip = |s: Option<&str>| {
        s.map(|s| {
            s.parse::<IpAddr>()
                .with_context(|| format!("invalid IP address `{s}`"))
        })
        .transpose()
    };
    let mut attachments = Vec::new();
    for (i, n) in req.networks.iter().enumerate() {
        let first = i == 0;
        attachments.push(stack_net::Attachment {
            network: n.clone(),
            aliases: req.aliases.to_vec(),
            ipv4: if first { parse_ip(req.ip)? } else { None },
            ipv6: if first { parse_ip(req.ip6)? } else { None },
            mac: if first {
                req.mac
                    .map(stack_net::ipam::parse_mac)
                    .transpose()
                    .map_err(anyhow::Error::msg)?
            } else {
                None
            },
        });
    }
    let mut ports = Vec::new();
    for p in req.publish {
        ports.extend(stack_net::ports::parse(p).map_err(anyhow::Error::msg)?);
    }
    let first = store.get(&req.networks[0])?;
    let (netns, endpoints) =
        host.block_on(stack_net::connect(store, id, name, &attachments, &ports))??;
    // Once wired (before the container runs): a network whose bridge went
    // missing (an engine killed between removing a network's bridge and its
    // record) has it again, and its gateway is there to be served.
    if let Err(e) = ensure_dns(host, &first.name, first.subnets[0].gateway) {
        let _ = host.block_on(stack_net::disconnect(store, id));
        return Err(e);
    }
    // The embedded DNS answers on each network's gateway.
    let servers: Vec<String> = if req.dns.is_empty() {
        first
            .subnets
            .iter()
            .filter(|s| s.gateway.is_ipv4())
            .map(|s| s.gateway.to_string())
            .collect()
    } else {
        req.dns.to_vec()
    };
    let resolv = resolv_conf(&servers, req.dns_search, req.dns_options);
    let hosts = endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(|a| format!("{a}\t{host_names}")))
        .collect();
    Ok(Wired {
        netns,
        resolv_conf: resolv,
        hosts,
    })
}

/// /etc/resolv.conf from servers, search domains and options.
pub fn resolv_conf(servers: &[String], search: &[String], options: &[String]) -> String {
    let mut r: String = servers
        .iter()
        .map(|s| format!("nameserver {s}\n"))
        .collect();
    if !search.is_empty() {
        r.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        r.push_str(&format!("options {}\n", options.join(" ")));
    }
    r
}

/// Connects a made container to one more network (its DNS server
/// answering there too).
pub fn join(
    host: &Host,
    id: &str,
    name: &str,
    attachment: &stack_net::Attachment,
) -> anyhow::Result<stack_net::Endpoint> {
    let store = host.networks()?;
    let net = store.get(&attachment.network)?;
    let joined = host.block_on(stack_net::join(store, id, name, attachment))??;
    // Once wired, as in `wire`.
    if let Err(e) = ensure_dns(host, &net.name, net.subnets[0].gateway) {
        let _ = host.block_on(stack_net::leave(store, id, &net.name));
        return Err(e);
    }
    Ok(joined)
}

/// Takes a container off one of its networks.
pub fn leave(host: &Host, id: &str, network: &str) -> anyhow::Result<()> {
    Ok(host.block_on(stack_net::leave(host.networks()?, id, network))??)
}

/// Takes a container off its networks (nothing to do if it was on none).
pub fn unwire(host: &Host, id: &str) -> anyhow::Result<()> {
    let store = host.networks()?;
    let on_any =
        !store.container_endpoints(id)?.is_empty() || stack_net::netns_path(store, id).exists();
    if on_any {
        host.block_on(stack_net::disconnect(store, id))??;
    }
    Ok(())
}

/// `stack container port NAME`: `80/tcp -> 0.0.0.0:8080`.
pub fn ports_of(host: &Host, id: &str) -> anyhow::Result<Vec<String>> {
    let store = host.networks()?;
    let mut out = Vec::new();
    for e in store.container_endpoints(id)? {
        for p in e.ports {
            let host = p.host_ip.map_or("0.0.0.0".to_string(), |i| match i {
                IpAddr::V6(v) => format!("[{v}]"),
                v => v.to_string(),
            });
            out.push(format!(
                "{}/{} -> {host}:{}",
                p.container_port, p.protocol, p.host_port
            ));
        }
    }
    Ok(out)
}
