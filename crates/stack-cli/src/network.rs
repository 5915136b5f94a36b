//! `stack network ...`: the host's networks, made and removed here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Context as _};
use stack_host::Host;

use crate::cli::network::NetworkCommand;

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
    let host = Host::new(crate::client::stack_root());
    let store = host.networks()?;
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
            println!("{}", stack_host::network::create(&host, &opts)?.id);
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
                match stack_host::network::remove(&host, n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => failures.push(format!("{e:#}")),
                }
            }
            if !failures.is_empty() {
                bail!("{}", failures.join("\n"));
            }
        }
    }
    Ok(())
}
