//! Address management, pure: a subnet for a new network from a pool that
//! avoids what the host already routes, and an address for a new endpoint.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

/// Where new networks get their subnets: `10.210.0.0/16` cut into /24s by
/// default (clear of Docker's 172.17-31/16 and 192.168/16 and podman's
/// 10.88/16 and 10.89/16); `STACK_NETWORK_POOL=CIDR/PREFIX` changes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub base: IpNet,
    pub prefix: u8,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            base: "10.210.0.0/16".parse().expect("valid"),
            prefix: 24,
        }
    }
}

impl Pool {
    /// `10.210.0.0/16/24` (base and the prefix of each subnet), or a plain
    /// CIDR cut into /24s.
    pub fn parse(s: &str) -> Result<Pool, String> {
        let bad = || {
            format!("invalid network pool `{s}`: expected CIDR[/PREFIX], such as 10.210.0.0/16/24")
        };
        let (base, prefix) = match s.matches('/').count() {
            1 => (s, None),
            2 => {
                let (b, p) = s.rsplit_once('/').expect("two slashes");
                (b, Some(p.parse::<u8>().map_err(|_| bad())?))
            }
            _ => return Err(bad()),
        };
        let base: IpNet = base.parse().map_err(|_| bad())?;
        let prefix = prefix.unwrap_or(if base.addr().is_ipv4() { 24 } else { 64 });
        if prefix < base.prefix_len() || prefix > base.max_prefix_len() - 2 {
            return Err(bad());
        }
        Ok(Pool {
            base: base.trunc(),
            prefix,
        })
    }

    /// The first subnet of the pool that overlaps none of `taken`.
    pub fn pick(&self, taken: &[IpNet]) -> Option<IpNet> {
        let free = |n: &IpNet| !taken.iter().any(|t| overlaps(n, t));
        match self.base {
            IpNet::V4(b) => b.subnets(self.prefix).ok()?.map(IpNet::V4).find(free),
            IpNet::V6(b) => b.subnets(self.prefix).ok()?.map(IpNet::V6).find(free),
        }
    }
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A subnet of a network, as `ipam.config` gives it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetConfig {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    /// Addresses for endpoints are taken from here (default: the subnet).
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    /// Addresses that are never given out.
    #[serde(default)]
    pub aux_addresses: Vec<IpAddr>,
}

impl SubnetConfig {
    /// Checks the parts against each other; the gateway defaults to the first host.
    pub fn new(
        subnet: IpNet,
        gateway: Option<IpAddr>,
        ip_range: Option<IpNet>,
        aux_addresses: Vec<IpAddr>,
    ) -> Result<SubnetConfig, String> {
        if subnet != subnet.trunc() {
            return Err(format!(
                "subnet `{subnet}` has host bits set: did you mean `{}`?",
                subnet.trunc()
            ));
        }
        if subnet.prefix_len() + 2 > subnet.max_prefix_len() {
            return Err(format!("subnet `{subnet}` is too small for a network"));
        }
        let gateway = match gateway {
            Some(g) => g,
            None => {
                nth(&subnet, 1).ok_or_else(|| format!("subnet `{subnet}` has no first host"))?
            }
        };
        if !subnet.contains(&gateway) {
            return Err(format!("gateway `{gateway}` is not in subnet `{subnet}`"));
        }
        if let Some(r) = ip_range {
            if !subnet.contains(&r.network()) || r.prefix_len() < subnet.prefix_len() {
                return Err(format!("ip_range `{r}` is not inside subnet `{subnet}`"));
            }
        }
        for a in &aux_addresses {
            if !subnet.contains(a) {
                return Err(format!("aux address `{a}` is not in subnet `{subnet}`"));
            }
        }
        Ok(SubnetConfig {
            subnet,
            gateway,
            ip_range,
            aux_addresses,
        })
    }

    /// The first address of the range that is not the network, broadcast,
    /// gateway, an aux address or in `used`.
    pub fn allocate(&self, used: &HashSet<IpAddr>) -> Option<IpAddr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let blocked = |a: &IpAddr| {
            *a == self.subnet.network()
                || (a.is_ipv4() && *a == self.subnet.broadcast())
                || *a == self.gateway
                || self.aux_addresses.contains(a)
                || used.contains(a)
        };
        match range {
            IpNet::V4(r) => r.hosts().map(IpAddr::V4).find(|a| !blocked(a)),
            // A v6 range is huge: walk its first 64 Ki addresses.
            IpNet::V6(r) => r
                .hosts()
                .take(1 << 16)
                .map(IpAddr::V6)
                .find(|a| !blocked(a)),
        }
    }

    /// Whether `addr` may be given to an endpoint (`ipv4_address`).
    pub fn check_static(&self, addr: IpAddr, used: &HashSet<IpAddr>) -> Result<(), String> {
        if !self.subnet.contains(&addr) {
            return Err(format!(
                "address `{addr}` is not in the network's subnet `{}`",
                self.subnet
            ));
        }
        if addr == self.gateway
            || addr == self.subnet.network()
            || (addr.is_ipv4() && addr == self.subnet.broadcast())
        {
            return Err(format!("address `{addr}` is reserved in `{}`", self.subnet));
        }
        if used.contains(&addr) || self.aux_addresses.contains(&addr) {
            return Err(format!("address `{addr}` is already in use"));
        }
        Ok(())
    }
}

/// The `n`th address of a subnet.
fn nth(net: &IpNet, n: u32) -> Option<IpAddr> {
    match net {
        IpNet::V4(v) => {
            let a = u32::from(v.network()).checked_add(n)?;
            Some(IpAddr::V4(a.into()))
        }
        IpNet::V6(v) => {
            let a = u128::from(v.network()).checked_add(n.into())?;
            Some(IpAddr::V6(a.into()))
        }
    }
}

/// A unique-local /64 for a network's IPv6 side, derived from its id.
pub fn ula_for(id: &str) -> IpNet {
    let bytes: Vec<u8> = (0..5)
        .map(|i| u8::from_str_radix(id.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[1..6].copy_from_slice(&bytes);
    IpNet::V6(Ipv6Net::new(a.into(), 64).expect("valid prefix"))
}

/// A MAC address derived from an IPv4 address, as Docker makes them
/// (`02:42:` then the four bytes), or from the last bytes of a v6 one.
pub fn mac_for(addr: IpAddr) -> [u8; 6] {
    let tail: [u8; 4] = match addr {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(v) => v.octets()[12..].try_into().expect("4 bytes"),
    };
    [0x02, 0x42, tail[0], tail[1], tail[2], tail[3]]
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("invalid MAC address `{s}`"))?;
    let mac: [u8; 6] = parts
        .try_into()
        .map_err(|_| format!("invalid MAC address `{s}`"))?;
    if mac[0] & 1 == 1 {
        return Err(format!("invalid MAC address `{s}`: a multicast address"));
    }
    Ok(mac)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_avoid_what_is_taken() {
        let p = Pool::default();
        assert_eq!(p.pick(&[]), Some(net("10.210.0.0/24")));
        // A host route over the first two, and a network of ours on the third.
        let taken = [net("10.210.0.0/23"), net("10.210.2.128/25")];
        assert_eq!(p.pick(&taken), Some(net("10.210.3.0/24")));
        // A route that covers the whole pool leaves nothing.
        assert_eq!(p.pick(&[net("10.0.0.0/8")]), None);
        assert_eq!(
            Pool::parse("172.40.0.0/16/20").unwrap().pick(&[]),
            Some(net("172.40.0.0/20"))
        );
        assert_eq!(Pool::parse("10.9.0.0/16").unwrap().prefix, 24);
        assert!(Pool::parse("10.9.0.0").is_err() && Pool::parse("10.9.0.0/16/8").is_err());
    }

    #[test]
    fn addresses_skip_reserved_ones() {
        let s = SubnetConfig::new(
            net("10.1.0.0/29"),
            None,
            None,
            vec!["10.1.0.2".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(s.gateway, "10.1.0.1".parse::<IpAddr>().unwrap());
        let mut used = HashSet::new();
        let mut got = Vec::new();
        while let Some(a) = s.allocate(&used) {
            used.insert(a);
            got.push(a.to_string());
        }
        // .0 network, .1 gateway, .2 aux, .7 broadcast.
        assert_eq!(got, ["10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]);
        let r = SubnetConfig::new(
            net("10.1.0.0/24"),
            Some("10.1.0.254".parse().unwrap()),
            Some(net("10.1.0.128/25")),
            vec![],
        )
        .unwrap();
        assert_eq!(
            r.allocate(&HashSet::new()).unwrap().to_string(),
            "10.1.0.129"
        );
        assert!(r
            .check_static("10.1.0.254".parse().unwrap(), &HashSet::new())
            .unwrap_err()
            .contains("reserved"));
        assert!(r
            .check_static("10.2.0.5".parse().unwrap(), &HashSet::new())
            .unwrap_err()
            .contains("not in"));
        assert!(r
            .check_static(
                "10.1.0.5".parse().unwrap(),
                &HashSet::from(["10.1.0.5".parse().unwrap()])
            )
            .unwrap_err()
            .contains("in use"));
    }

    #[test]
    fn bad_ipam_configs_say_why() {
        assert!(SubnetConfig::new(net("10.1.0.5/24"), None, None, vec![])
            .unwrap_err()
            .contains("did you mean `10.1.0.0/24`"));
        assert!(SubnetConfig::new(
            net("10.1.0.0/24"),
            Some("10.2.0.1".parse().unwrap()),
            None,
            vec![]
        )
        .unwrap_err()
        .contains("gateway"));
        assert!(
            SubnetConfig::new(net("10.1.0.0/24"), None, Some(net("10.3.0.0/25")), vec![])
                .unwrap_err()
                .contains("ip_range")
        );
        assert!(SubnetConfig::new(net("10.1.0.0/31"), None, None, vec![])
            .unwrap_err()
            .contains("too small"));
    }

    #[test]
    fn macs_and_ula() {
        assert_eq!(
            format_mac(&mac_for("10.210.0.3".parse().unwrap())),
            "02:42:0a:d2:00:03"
        );
        assert_eq!(
            parse_mac("02:42:0a:d2:00:03").unwrap(),
            mac_for("10.210.0.3".parse().unwrap())
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_err() && parse_mac("zz").is_err());
        assert_eq!(ula_for("0123456789ab").to_string(), "fd01:2345:6789::/64");
        let s = SubnetConfig::new(ula_for("ab"), None, None, vec![]).unwrap();
        assert_eq!(s.allocate(&HashSet::new()).unwrap().to_string(), "fdab::2");
    }
}
