//! Image builds on this host: the builder (`stack-build`) with the host's
//! base images (pulled as asked) and a network of the build's own for its
//! RUN steps, made at the first RUN that needs it and removed at the end.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use stack_build::{Event, Request, Sandbox, Wiring};
use stack_image::Image;

use crate::Host;

struct HostSandbox<'a> {
    host: &'a Host,
    /// The build's network, once a RUN has needed it (made under the lock:
    /// parallel stages share it).
    network: Mutex<Option<String>>,
}

impl Sandbox for HostSandbox<'_> {
    fn image(&self, reference: &str, pull: bool) -> anyhow::Result<Image> {
        crate::images::ensure(
            self.host,
            reference,
            None,
            if pull { "always" } else { "missing" },
        )?;
        Ok(self.host.images()?.lookup(reference)?)
    }

    fn fetch(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        // The registry client's HTTP (redirects, TLS), with no credentials:
        // a URL in a Dockerfile gets none of the user's.
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .with_context(|| format!("`{url}`: only http and https URLs are fetched"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            anyhow::bail!("`{url}`: no host, or credentials in the URL");
        }
        let client = stack_image::registry::Client::new(stack_image::auth::AuthSources {
            ours: PathBuf::from("/nonexistent"),
            docker: None,
        });
        let call = stack_image::registry::Call::get(url.to_string(), &[]);
        let body = self.host.block_on(async {
            let reply = client.send(host, host, &call).await?.success().await?;
            reply.bytes(1 << 30).await
        })??;
        Ok(body.to_vec())
    }

    fn connect(&self, id: &str) -> anyhow::Result<Wiring> {
        let mut network = self.network.lock().unwrap_or_else(|p| p.into_inner());
        let name = match network.clone() {
            Some(n) => n,
            None => {
                let name = format!("build-{}", stack_sys::random_hex(6)?);
                crate::network::create(
                    self.host,
                    &stack_net::CreateOptions {
                        name: name.clone(),
                        driver: None,
                        driver_opts: Default::default(),
                        subnets: Vec::new(),
                        ipv6: false,
                        internal: false,
                        labels: [("com.stack.build".to_string(), "true".to_string())].into(),
                    },
                )
                .context("cannot make the build's network")?;
                *network = Some(name.clone());
                name
            }
        };
        drop(network);
        let w = crate::network::wire(
            self.host,
            id,
            &format!("build-{}", &id[..12]),
            "buildkitsandbox",
            &crate::network::Request {
                networks: &[name],
                aliases: &[],
                ip: None,
                ip6: None,
                mac: None,
                publish: &[],
                dns: &[],
                dns_search: &[],
                dns_options: &[],
            },
        )?;
        Ok(Wiring {
            netns: w.netns,
            resolv_conf: w.resolv_conf,
            hosts: w.hosts,
        })
    }

    fn disconnect(&self, id: &str) {
        if let Err(e) = crate::network::unwire(self.host, id) {
            tracing::warn!("build step {id}: {e:#}");
        }
    }
}

/// Builds `req`, telling `say` each step.
pub fn build(host: &Host, req: &Request, say: &(dyn Fn(Event) + Sync)) -> anyhow::Result<Image> {
    let runs = host.build_runs();
    std::fs::create_dir_all(&runs)?;
    stack_build::sweep(&runs);
    let sandbox = HostSandbox {
        host,
        network: Mutex::new(None),
    };
    let store = host.images()?;
    let built = stack_build::build(&store, &runs, req, &sandbox, say);
    if let Some(n) = sandbox
        .network
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        if let Err(e) = crate::network::remove(host, &n) {
            tracing::warn!("build network {n}: {e:#}");
        }
    }
    built
}

/// An SSH agent for a build: `id` with its socket, or the agent of
/// `$SSH_AUTH_SOCK`; the socket must be there.
pub fn ssh_agent((id, socket): (&str, Option<&str>)) -> anyhow::Result<(String, PathBuf)> {
    let socket = match socket {
        Some(p) => PathBuf::from(p.split(',').next().unwrap_or(p)),
        None => PathBuf::from(std::env::var_os("SSH_AUTH_SOCK").with_context(|| {
            format!("ssh `{id}`: no socket given and SSH_AUTH_SOCK is not set")
        })?),
    };
    use std::os::unix::fs::FileTypeExt;
    if !std::fs::metadata(&socket).is_ok_and(|m| m.file_type().is_socket()) {
        anyhow::bail!("ssh `{id}`: {} is not a socket", socket.display());
    }
    Ok((id.to_string(), socket))
}

/// The build of a compose service, from its `build:` section: context
/// (the loader made it absolute), dockerfile or dockerfile_inline, args,
/// target, labels, secrets, network, tags, additional_contexts,
/// extra_hosts, no_cache and pull. Secrets from the environment must have
/// been read as content first (`load::contents_from_environment`).
/// `--sbom`'s value (and `build.sbom`'s) as docker takes it: true, false,
/// `generator=…` (only ours).
pub fn sbom_wanted(s: &str) -> Result<bool, String> {
    match s.trim() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!(
            "sbom `{other}`: expected true or false (stack has one scanner, built in)"
        )),
    }
}

/// A build section's args: a name without a value takes the environment's,
/// or is left out.
pub fn build_args(b: &stack_model::Build) -> std::collections::BTreeMap<String, String> {
    b.args
        .0
        .iter()
        .filter_map(|(k, v)| {
            v.clone()
                .or_else(|| std::env::var(k).ok())
                .map(|v| (k.clone(), v))
        })
        .collect()
}

pub fn service_request(project: &stack_model::Project, name: &str) -> anyhow::Result<Request> {
    let Some(s) = project.services.get(name) else {
        anyhow::bail!("no service `{name}` in the project");
    };
    let Some(b) = &s.build else {
        anyhow::bail!("service {name} has no build section");
    };
    let context = PathBuf::from(b.context.as_deref().unwrap_or("."));
    let mut secrets = std::collections::BTreeMap::new();
    for r in &b.secrets {
        let Some(def) = project.secrets.get(&r.source) else {
            anyhow::bail!("service {name}: build secret `{}` is not defined", r.source);
        };
        // `environment` is content by now (`load::contents_from_environment`).
        let content = match (&def.file, &def.content) {
            (Some(f), _) => {
                std::fs::read(f).with_context(|| format!("secret {}: {f}", r.source))?
            }
            (_, Some(c)) => c.clone().into_bytes(),
            _ => anyhow::bail!("secret {}: no file or content", r.source),
        };
        secrets.insert(
            r.target.clone().unwrap_or_else(|| r.source.clone()),
            content,
        );
    }
    let mut tags: Vec<String> = s.image.iter().cloned().collect();
    if tags.is_empty() {
        tags.push(format!("{}-{name}", project.name));
    }
    tags.extend(b.tags.0.iter().cloned());
    Ok(Request {
        dockerfile: PathBuf::from(b.dockerfile.as_deref().unwrap_or("Dockerfile")),
        inline: b.dockerfile_inline.clone(),
        context,
        tags,
        args: build_args(b),
        target: b.target.clone(),
        no_cache: b.no_cache,
        pull: b.pull,
        cache_from: b.cache_from.0.clone(),
        labels: b.labels.0.clone(),
        secrets,
        network: b.network.clone(),
        extra_hosts: b
            .extra_hosts
            .0
            .iter()
            .flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}:{ip}")))
            .collect(),
        platform: b
            .platforms
            .0
            .first()
            .cloned()
            .or_else(|| s.platform.clone()),
        contexts: b.additional_contexts.0.clone(),
        shm_size: b.shm_size.map(|s| s.0.max(0) as u64),
        ulimits: b
            .ulimits
            .iter()
            .map(|(name, u)| match u {
                stack_model::Ulimit::Single(v) => (name.clone(), *v as u64, *v as u64),
                stack_model::Ulimit::Pair { soft, hard } => {
                    (name.clone(), *soft as u64, *hard as u64)
                }
            })
            .collect(),
        ssh: b
            .ssh
            .0
            .iter()
            .map(|(id, p)| ssh_agent((id, p.as_deref())))
            .collect::<anyhow::Result<_>>()?,
        memory: None,
        sbom: match b.sbom.as_ref().and_then(|t| t.0.as_deref()) {
            Some(s) => sbom_wanted(s).map_err(|e| anyhow::anyhow!("service {name}: build.{e}"))?,
            None => false,
        },
        provenance: match b.provenance.as_ref().and_then(|t| t.0.as_deref()) {
            Some(p) => stack_build::provenance::Mode::parse(p).map_err(|e| {
                anyhow::anyhow!("service {name}: build.{}", e.trim_start_matches("--"))
            })?,
            None => None,
        },
    })
}
