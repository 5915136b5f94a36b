//! What the host has, recorded: networks and their endpoints, one JSON
//! file each under `$STACK_ROOT/networks`, written atomically and changed
//! under one lock, so that a restarted engine (or the next command) finds
//! everything that was set up and can take it down.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ipam::SubnetConfig;
use crate::NetError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// The Linux bridge.
    pub bridge: String,
    pub subnets: Vec<SubnetConfig>,
    /// No route out, no masquerade, no published ports.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created: String,
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// None: every address of the host.
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A container on a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: String,
    /// The container's name: resolvable on the network, like its aliases.
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub network: String,
    /// Inside the container (`eth0`, …) and on the host.
    pub ifname: String,
    pub host_veth: String,
    pub mac: String,
    pub addresses: Vec<IpAddr>,
    /// The container's network namespace (a bind-mounted nsfs file).
    pub netns: PathBuf,
    /// Published ports (on the container's first network).
    #[serde(default)]
    pub ports: Vec<Port>,
}

#[derive(Clone)]
pub struct Store {
    root: PathBuf,
}

/// The store lock; released on drop.
pub struct Lock(#[allow(dead_code)] stack_sys::FileLock);

impl Lock {
    /// Waits for an exclusive lock on the file at `p`.
    pub fn take(p: &Path) -> Result<Lock, NetError> {
        stack_sys::lock(p, true)
            .map(Lock)
            .map_err(|e| NetError::io(p, e))
    }
}

/// `value` as JSON in `path`, by `write` (`stack_sys::write_atomic`, or
/// `write_replace` where a power loss makes the record worthless).
fn write_json(
    path: &Path,
    value: &impl Serialize,
    write: fn(&Path, &[u8]) -> io::Result<()>,
) -> Result<(), NetError> {
    serde_json::to_vec_pretty(value)
        .map_err(io::Error::other)
        .and_then(|json| write(path, &json))
        .map_err(|e| NetError::io(path, e))
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, NetError> {
    serde_json::from_slice(bytes).map_err(|e| NetError::Corrupt {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// A record's bytes, listed a moment ago, or nothing if it was removed
/// since (a container going away while others are listed, without the
/// lock).
fn bytes_unless_gone(path: &Path) -> Result<Option<Vec<u8>>, NetError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetError::io(path, e)),
    }
}

/// A network's record (none if it was removed since it was listed, see
/// [`bytes_unless_gone`]); an empty one is what a
/// power loss left of a creation that had not returned (the record is
/// synced before it does), and is removed as found, with its endpoints
/// directory.
fn read_network(path: &Path) -> Result<Option<Network>, NetError> {
    match bytes_unless_gone(path)? {
        Some(b) if b.iter().all(|x| *x == 0) => {
            let _ = fs::remove_file(path);
            // Its containers' records too: made beside its sync.
            if let Some(dir) = path.parent() {
                let _ = stack_sys::remove_tree(dir, &path.with_extension("endpoints"));
            }
            Ok(None)
        }
        b => b.map(|b| parse(path, &b)).transpose(),
    }
}

/// An endpoint's record (as [`read_network`] reads one); an empty one is what a
/// power loss left of a record being written (they are not synced, and
/// one is never empty otherwise: it is written beside and renamed), and
/// is removed as found.
fn read_endpoint(path: &Path) -> Result<Option<Endpoint>, NetError> {
    match bytes_unless_gone(path)? {
        Some(b) if b.is_empty() => {
            let _ = fs::remove_file(path);
            Ok(None)
        }
        b => b.map(|b| parse(path, &b)).transpose(),
    }
}

/// `NAME.EXT` under `dir`, through the one checked join (a name is never a
/// path of its own).
fn named(dir: &Path, name: &str, ext: &str) -> Result<PathBuf, NetError> {
    stack_sys::join(dir, &format!("{name}.{ext}")).map_err(|e| NetError::Config(e.to_string()))
}

/// Names become file names: letters, digits, `_`, `.`, `-`, not leading `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Store {
    pub fn open(stack_root: &Path) -> Result<Store, NetError> {
        let root = stack_root.join("networks");
        stack_sys::private_dir(&root).map_err(|e| NetError::io(&root, e.into_io()))?;
        Ok(Store { root })
    }

    /// The directory of the records.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// slirp4netns's API socket, for a rootless engine's published ports.
    pub fn forwarder_socket(&self) -> PathBuf {
        stack_sys::userns::forwarder_socket(self.root.parent().unwrap_or(&self.root))
    }

    /// That socket, where this engine is rootless and has one: its
    /// published ports go through slirp4netns.
    pub fn forwarder(&self) -> Option<PathBuf> {
        let socket = self.forwarder_socket();
        (stack_sys::userns::rootless() && socket.exists()).then_some(socket)
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.root.join("netns")
    }

    /// Held while networks or endpoints change (one command at a time).
    pub fn lock(&self) -> Result<Lock, NetError> {
        Lock::take(&self.root.join(".lock"))
    }

    /// The store's lock if nobody holds it.
    pub fn try_lock(&self) -> Result<Option<Lock>, NetError> {
        let p = self.root.join(".lock");
        stack_sys::try_lock(&p)
            .map(|l| l.map(Lock))
            .map_err(|e| NetError::io(&p, e))
    }

    fn network_path(&self, name: &str) -> Result<PathBuf, NetError> {
        named(&self.root, name, "json")
    }

    fn endpoints_dir(&self, name: &str) -> Result<PathBuf, NetError> {
        named(&self.root, name, "endpoints")
    }

    pub fn networks(&self) -> Result<Vec<Network>, NetError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root)
            .map_err(|e| NetError::io(&self.root, e))?
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                out.extend(read_network(&p)?);
            }
        }
        out.sort_by(|a: &Network, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Network, NetError> {
        let missing = || NetError::NotFound(name.to_string());
        if !valid_name(name) {
            return Err(missing());
        }
        read_network(&self.network_path(name)?)?.ok_or_else(missing)
    }

    /// Writes a network's record (beside, renamed), not synced: see
    /// [`Store::sync`].
    pub fn put(&self, net: &Network) -> Result<(), NetError> {
        let dir = self.endpoints_dir(&net.name)?;
        fs::create_dir_all(&dir).map_err(|e| NetError::io(&dir, e))?;
        write_json(
            &self.network_path(&net.name)?,
            net,
            stack_sys::write_replace,
        )
    }

    /// Makes the record of network `name` durable: its bytes, then the
    /// directory's entries (its own, its endpoints directory's). Until
    /// then a power loss leaves no record, or an empty one, which reads as
    /// none ([`read_network`]).
    pub fn sync(&self, name: &str) -> Result<(), NetError> {
        let p = self.network_path(name)?;
        for path in [&p, &self.root] {
            fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| NetError::io(path, e))?;
        }
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<(), NetError> {
        let _ = fs::remove_dir(self.endpoints_dir(name)?);
        let p = self.network_path(name)?;
        fs::remove_file(&p).map_err(|e| NetError::io(&p, e))
    }

    pub fn endpoints(&self, network: &str) -> Result<Vec<Endpoint>, NetError> {
        let dir = self.endpoints_dir(network)?;
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                out.extend(read_endpoint(&e.path())?);
            }
        }
        out.sort_by(|a: &Endpoint, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every endpoint on every network.
    pub fn all_endpoints(&self) -> Result<Vec<Endpoint>, NetError> {
        let mut out = Vec::new();
        for n in self.networks()? {
            out.extend(self.endpoints(&n.name)?);
        }
        Ok(out)
    }

    /// The endpoints of one container: its file in each network's
    /// directory, not every endpoint read (a `ps` of N containers would
    /// read N² files).
    pub fn container_endpoints(&self, container: &str) -> Result<Vec<Endpoint>, NetError> {
        let mut out = Vec::new();
        for n in self.networks()? {
            let p = named(&self.endpoints_dir(&n.name)?, container, "json")?;
            out.extend(read_endpoint(&p)?);
        }
        Ok(out)
    }

    /// Not synced to disk: an endpoint is a namespace and its links, which
    /// a power loss takes away too (and a record it tears is dropped, see
    /// [`read_endpoint`]); one sync pair less per container, made under
    /// the store's lock, one container after another.
    pub fn put_endpoint(&self, ep: &Endpoint) -> Result<(), NetError> {
        let dir = self.endpoints_dir(&ep.network)?;
        let path = named(&dir, &ep.container, "json")?;
        let write = || write_json(&path, ep, stack_sys::write_replace);
        write().or_else(|e| {
            if dir.is_dir() {
                return Err(e);
            }
            // Gone with a removal of its network cut short between the
            // directory and the record ([`Store::delete`]): made again.
            fs::create_dir_all(&dir).map_err(|e| NetError::io(&dir, e))?;
            write()
        })
    }

    pub fn delete_endpoint(&self, network: &str, container: &str) -> Result<(), NetError> {
        let p = named(&self.endpoints_dir(network)?, container, "json")?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetError::io(&p, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint's record that a power loss left empty is no endpoint,
    /// and goes; one that is damaged otherwise is an error naming it.
    #[test]
    fn an_empty_endpoint_record_is_none_and_goes() {
        let root = std::env::temp_dir().join(format!("stack-net-ep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let dir = store.endpoints_dir("n").unwrap();
        fs::create_dir_all(&dir).unwrap();
        let ep = Endpoint {
            container: "kept".into(),
            name: "kept".into(),
            aliases: Vec::new(),
            network: "n".into(),
            ifname: "eth0".into(),
            host_veth: "stk-v".into(),
            mac: "02:00:00:00:00:01".into(),
            addresses: vec!["10.1.0.2".parse().unwrap()],
            netns: root.join("netns/kept"),
            ports: Vec::new(),
        };
        store.put_endpoint(&ep).unwrap();
        fs::write(dir.join("torn.json"), "").unwrap();
        assert_eq!(store.endpoints("n").unwrap(), vec![ep.clone()]);
        assert!(!dir.join("torn.json").exists());
        fs::write(dir.join("bad.json"), "{").unwrap();
        let e = store.endpoints("n").unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
        // The directory gone (a removal of the network cut short after
        // it, before the record): the next endpoint makes it again.
        fs::remove_dir_all(&dir).unwrap();
        store.put_endpoint(&ep).unwrap();
        assert_eq!(store.endpoints("n").unwrap(), vec![ep]);
        fs::remove_dir_all(&root).unwrap();
    }

    /// A network record a power loss tore before its sync (empty, or
    /// zeros) is a creation that never returned: none, and it goes with
    /// its endpoints directory; a put record is read back once synced.
    #[test]
    fn a_torn_network_record_is_no_network() {
        let root = std::env::temp_dir().join(format!("stack-net-torn-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let net = Network {
            name: "kept".into(),
            id: "0".into(),
            bridge: "stk-kept".into(),
            subnets: Vec::new(),
            internal: false,
            mtu: None,
            labels: Default::default(),
            created: "0".into(),
        };
        store.put(&net).unwrap();
        store.sync("kept").unwrap();
        for (name, torn) in [("empty", vec![]), ("zeros", vec![0u8; 447])] {
            let eps = store.endpoints_dir(name).unwrap();
            fs::create_dir_all(&eps).unwrap();
            fs::write(eps.join("c.json"), "{}").unwrap();
            fs::write(store.network_path(name).unwrap(), torn).unwrap();
            assert!(
                matches!(store.get(name), Err(NetError::NotFound(_))),
                "{name}"
            );
            assert!(!store.network_path(name).unwrap().exists(), "{name}");
            assert!(!store.endpoints_dir(name).unwrap().exists(), "{name}");
        }
        fs::write(store.network_path("torn").unwrap(), []).unwrap();
        let names: Vec<String> = store
            .networks()
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["kept"]);
        fs::write(store.network_path("bad").unwrap(), "{").unwrap();
        let e = store.networks().unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
        fs::remove_dir_all(&root).unwrap();
    }
}
