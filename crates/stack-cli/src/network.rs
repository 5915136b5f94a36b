//! `stack network ...`, and wiring a container to its networks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use std::os::unix::process::CommandExt as _;

use anyhow::{bail, Context as _};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network (a bridge with its own subnet)
    Create {
        name: String,
        /// Only `bridge`
        #[arg(short, long)]
        driver: Option<String>,
        /// A subnet in CIDR form (repeat for IPv4 and IPv6)
        #[arg(long)]
        subnet: Vec<String>,
        /// The gateway of the subnet given at the same position
        #[arg(long)]
        gateway: Vec<String>,
        /// Addresses for containers come from this range of the subnet
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// NAME=IP: an address never given to a container
        #[arg(long = "aux-address")]
        aux_address: Vec<String>,
        /// An IPv6 subnet too (a unique-local /64 unless --subnet gives one)
        #[arg(long)]
        ipv6: bool,
        /// No route out of the network
        #[arg(long)]
        internal: bool,
        /// Driver options: mtu, com.docker.network.driver.mtu, com.docker.network.bridge.name
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List networks
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a network and its containers as JSON
    Inspect { name: String },
    /// Remove networks no container uses
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The hidden mode of our binary that runs the DNS server of a store root.
pub const DNS_ARG: &str = "__stack-dns";

pub fn dns_main() -> std::process::ExitCode {
    let root = crate::container::stack_root();
    let served =
        crate::async_runtime().and_then(|rt| Ok(rt.block_on(stack_net::dns::serve(&root))?));
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stack dns: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Starts the DNS server of this root unless it answers on `gateway`
/// already, and waits until it does.
fn ensure_dns(gateway: IpAddr) -> anyhow::Result<()> {
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};
    let addr = SocketAddr::new(gateway, 53);
    let up = || TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
    if up() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find our own binary")?;
    let server = std::process::Command::new(exe)
        .arg(DNS_ARG)
        .env("STACK_ROOT", crate::container::stack_root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the DNS server")?;
    stack_runtime::reap_later(server);
    let t = Instant::now();
    while !up() {
        if t.elapsed() > Duration::from_secs(5) {
            bail!("the DNS server does not answer on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Creates a network, and the DNS server that answers on it.
pub fn create(opts: &stack_net::CreateOptions) -> anyhow::Result<stack_net::Network> {
    let net = crate::async_runtime()?.block_on(stack_net::create(&store()?, opts, &pool()?))?;
    ensure_dns(net.subnets[0].gateway)?;
    Ok(net)
}

pub fn store() -> anyhow::Result<stack_net::Store> {
    let root = crate::container::stack_root();
    stack_net::Store::open(&root)
        .with_context(|| format!("cannot open the network records in `{}`", root.display()))
}

fn pool() -> anyhow::Result<stack_net::ipam::Pool> {
    match std::env::var("STACK_NETWORK_POOL") {
        Ok(p) => stack_net::ipam::Pool::parse(&p).map_err(anyhow::Error::msg),
        Err(_) => Ok(stack_net::ipam::Pool::default()),
    }
}

fn key_values(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("invalid {what} `{kv}`: expected KEY=VALUE"))
        })
        .collect()
}

pub fn run(cmd: &NetworkCommand) -> anyhow::Result<()> {
    let store = store()?;
    let rt = crate::async_runtime()?;
    match cmd {
        NetworkCommand::Create {
            name,
            driver,
            subnet,
            gateway,
            ip_range,
            aux_address,
            ipv6,
            internal,
            opts,
            labels,
        } => {
            let parse_net = |s: &String| {
                s.parse::<ipnet::IpNet>()
                    .with_context(|| format!("invalid subnet `{s}`"))
            };
            let mut subnets = Vec::new();
            for (i, s) in subnet.iter().enumerate() {
                subnets.push(stack_net::SubnetRequest {
                    subnet: Some(parse_net(s)?),
                    gateway: gateway
                        .get(i)
                        .map(|g| {
                            g.parse::<IpAddr>()
                                .with_context(|| format!("invalid gateway `{g}`"))
                        })
                        .transpose()?,
                    ip_range: ip_range.get(i).map(parse_net).transpose()?,
                    aux_addresses: key_values(aux_address, "aux address")?
                        .values()
                        .map(|v| {
                            v.parse::<IpAddr>()
                                .with_context(|| format!("invalid aux address `{v}`"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                });
            }
            if subnet.is_empty() && (!gateway.is_empty() || !ip_range.is_empty()) {
                bail!("--gateway and --ip-range need --subnet");
            }
            let opts = stack_net::CreateOptions {
                name: name.clone(),
                driver: driver.clone(),
                driver_opts: key_values(opts, "option")?,
                subnets,
                ipv6: *ipv6,
                internal: *internal,
                labels: key_values(labels, "label")?,
            };
            println!("{}", create(&opts)?.id);
        }
        NetworkCommand::Ls { quiet } => {
            if !quiet {
                println!(
                    "{:<14}{:<24}{:<18}{:<20}SCOPE",
                    "NETWORK ID", "NAME", "BRIDGE", "SUBNET"
                );
            }
            for n in store.networks()? {
                if *quiet {
                    println!("{}", &n.id[..12]);
                    continue;
                }
                let subnets: Vec<String> = n.subnets.iter().map(|s| s.subnet.to_string()).collect();
                println!(
                    "{:<14}{:<24}{:<18}{:<20}local",
                    &n.id[..12],
                    n.name,
                    n.bridge,
                    subnets.join(",")
                );
            }
        }
        NetworkCommand::Inspect { name } => {
            let net = store.get(name)?;
            let mut v = serde_json::to_value(&net)?;
            v["endpoints"] = serde_json::to_value(store.endpoints(name)?)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        NetworkCommand::Rm { names } => {
            let mut failures = Vec::new();
            for n in names {
                match rt.block_on(stack_net::remove(&store, n)) {
                    Ok(()) => println!("{n}"),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if !failures.is_empty() {
                bail!("{}", failures.join("\n"));
            }
        }
    }
    Ok(())
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
pub fn wire(id: &str, name: &str, host_names: &str, req: &Request<'_>) -> anyhow::Result<Wired> {
    let store = store()?;
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
    ensure_dns(first.subnets[0].gateway)?;
    let rt = crate::async_runtime()?;
    let (netns, endpoints) =
        rt.block_on(stack_net::connect(&store, id, name, &attachments, &ports))?;
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

/// Takes a container off its networks (nothing to do if it was on none).
pub fn unwire(id: &str) -> anyhow::Result<()> {
    let store = store()?;
    let on_any = store.all_endpoints()?.iter().any(|e| e.container == id)
        || stack_net::netns_path(&store, id).exists();
    if on_any {
        crate::async_runtime()?.block_on(stack_net::disconnect(&store, id))?;
    }
    Ok(())
}

/// `stack container port NAME`: `80/tcp -> 0.0.0.0:8080`.
pub fn ports_of(id: &str) -> anyhow::Result<Vec<String>> {
    let store = store()?;
    let mut out = Vec::new();
    for e in store
        .all_endpoints()?
        .into_iter()
        .filter(|e| e.container == id)
    {
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
