//! Talking to registries: `image pull`, `image push`, `login`, `logout`,
//! and the progress display they share.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use stack_host::images::registry_client;
use stack_host::Host;
use stack_image::auth::{AuthSources, Credentials};
use stack_image::reference::Reference;
use stack_image::registry::Client;
use stack_image::transfer::{self, Event, Progress, State};

/// Progress on standard error: redrawn rows on a terminal, plain lines
/// (one per change of state) otherwise.
struct Display {
    tty: bool,
    rows: Mutex<Rows>,
}

#[derive(Default)]
struct Rows {
    order: Vec<String>,
    text: BTreeMap<String, String>,
    drawn: usize,
    last_draw: Option<Instant>,
}

fn mb(b: u64) -> String {
    format!("{:.1}MB", b as f64 / 1e6)
}

fn describe(s: &State) -> String {
    match s {
        State::Waiting => "Waiting".into(),
        State::Exists => "Already exists".into(),
        State::Downloading { done, total } => format!("Downloading {}/{}", mb(*done), mb(*total)),
        State::Extracting => "Extracting".into(),
        State::PullComplete => "Pull complete".into(),
        State::Pushing { done, total } => format!("Pushing {}/{}", mb(*done), mb(*total)),
        State::Mounted { from } => format!("Mounted from {from}"),
        State::Pushed => "Pushed".into(),
    }
}

impl Display {
    fn progress(quiet: bool) -> Progress {
        let d = Arc::new(Display {
            tty: std::io::stderr().is_terminal(),
            rows: Mutex::new(Rows::default()),
        });
        Arc::new(move |e| {
            if !quiet {
                d.on(e)
            }
        })
    }

    fn on(&self, e: Event) {
        let short = e
            .layer
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        let line = format!("{short}: {}", describe(&e.state));
        let key = format!("{} {}", e.image, e.layer);
        let mut rows = self.rows.lock().unwrap();
        let downloading = matches!(e.state, State::Downloading { .. } | State::Pushing { .. });
        if !self.tty {
            // One line per change of state; byte counts only on a terminal.
            let changed = rows
                .text
                .get(&key)
                .is_none_or(|old| old.split(' ').nth(1) != line.split(' ').nth(1));
            if !downloading || changed {
                eprintln!("{line}");
            }
            rows.text.insert(key, line);
            return;
        }
        if !rows.text.contains_key(&key) {
            rows.order.push(key.clone());
        }
        rows.text.insert(key, line);
        let due = rows
            .last_draw
            .is_none_or(|t| t.elapsed() > Duration::from_millis(100));
        if downloading && !due {
            return;
        }
        let mut out = std::io::stderr().lock();
        if rows.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", rows.drawn);
        }
        for k in &rows.order {
            let _ = writeln!(out, "\x1b[2K{}", rows.text[k]);
        }
        rows.drawn = rows.order.len();
        rows.last_draw = Some(Instant::now());
    }
}

/// `stack image pull REF [--platform P]`.
pub fn pull(
    host: &Host,
    reference: &str,
    platform: Option<&str>,
    quiet: bool,
) -> anyhow::Result<()> {
    let r = Reference::parse(reference)?;
    if !quiet {
        println!("{}: Pulling from {}", r.manifest_ref(), r.repository);
    }
    let pulled = stack_host::images::pull(host, reference, platform, Display::progress(quiet))?;
    if !quiet {
        println!("Digest: {}", pulled.digest);
        if pulled.fetched {
            println!("Status: Downloaded newer image for {r}");
        } else {
            println!("Status: Image is up to date for {r}");
        }
    }
    println!(
        "{}",
        if quiet {
            r.to_string()
        } else {
            pulled.image.id
        }
    );
    Ok(())
}

/// `stack image push REF`: the image named REF goes to REF's registry.
pub fn push(host: &Host, reference: &str, quiet: bool) -> anyhow::Result<()> {
    let dest = Reference::parse(reference)?;
    if !quiet {
        println!(
            "The push refers to repository [{}/{}]",
            dest.registry, dest.repository
        );
    }
    let digest = upload(host, reference, quiet)?;
    let tag = dest.tag.as_deref().unwrap_or("latest");
    println!("{tag}: digest: {digest}");
    Ok(())
}

/// The image named REF to REF's registry, its progress on standard error.
/// Returns the manifest's digest.
pub fn upload(host: &Host, reference: &str, quiet: bool) -> anyhow::Result<String> {
    let store = host.images()?;
    let img = store.lookup(reference)?;
    let dest = Reference::parse(reference)?;
    let digest = host
        .block_on(transfer::push(
            registry_client(),
            &store,
            &img,
            &dest,
            Display::progress(quiet),
        ))?
        .with_context(|| format!("cannot push {dest}"))?;
    Ok(digest)
}

/// `stack publish REPOSITORY[:TAG]`: the stack files (and with
/// `--with-env` the env files, with `--resolve-image-digests` the images
/// pinned) as compose publishes them: an OCI artifact of type
/// `application/vnd.docker.compose.project`, one layer a file.
pub fn publish(g: &crate::cli::Global, a: &crate::cli::PublishArgs) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    if g.files.iter().any(|f| f.as_os_str() == "-") {
        bail!("publish: a stack file read from standard input cannot be published");
    }
    let dest = Reference::parse(&a.reference)?;
    if dest.digest.is_some() {
        bail!(
            "publish: `{}` names a digest: publish to a tag",
            a.reference
        );
    }
    let opts = crate::config::options(g, &[], false, false)?;
    let loaded = crate::config::load(&opts)?;
    let project = &loaded.project;
    let names = |files: &[std::path::PathBuf]| -> Vec<std::path::PathBuf> {
        files.iter().map(|f| opts.working_dir.join(f)).collect()
    };
    // The stack files the loader read; one that includes or extends
    // another file would be published without it.
    let main = loaded.files.clone();
    for f in &main {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
        let extends_file = doc["services"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, s)| s["extends"].get("file").is_some());
        if doc.get("include").is_some() || extends_file {
            bail!(
                "publish: `{}` includes or extends other files; only stack files that stand alone are published",
                f.display()
            );
        }
    }
    // What could leak: environment values and env files only when asked,
    // bind mounts' host paths after a yes.
    let with_env: Vec<&String> = project
        .services
        .iter()
        .filter(|(_, s)| !s.env_file.is_empty() || !s.environment.is_empty())
        .map(|(n, _)| n)
        .collect();
    if !a.with_env && !with_env.is_empty() {
        bail!(
            "publish: services {} set environment variables or read env files: publishing them could leak secrets; give --with-env to publish them",
            with_env.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let binds: Vec<String> = project
        .services
        .iter()
        .flat_map(|(n, s)| {
            s.volumes
                .iter()
                .filter(|v| v.kind == "bind")
                .map(move |v| format!("{n}: {}", v.source.as_deref().unwrap_or_default()))
        })
        .collect();
    if !binds.is_empty() && !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "publish: the stack bind-mounts host paths ({}): give -y to publish them",
                binds.join("; ")
            );
        }
        let ok = crate::docker::confirm(
            &format!(
                "You are about to publish bind mounts' host paths:\n  {}",
                binds.join("\n  ")
            ),
            false,
        )?;
        if !ok {
            bail!("publish: not confirmed");
        }
    }
    if a.app {
        push_services(
            g,
            &crate::cli::PushArgs {
                quiet: true,
                ..Default::default()
            },
        )?;
    }
    let host = Host::new(crate::client::stack_root());
    let store = host.images()?;
    // The blobs written here are no image's: no collection until pushed.
    let _held = store.lock_shared()?;
    let version = env!("CARGO_PKG_VERSION").to_string();
    let blob = |media: &str, bytes: &[u8]| -> anyhow::Result<stack_image::Blob> {
        let (digest, size) = store.write_blob(None, bytes)?;
        Ok(stack_image::Blob {
            media_type: media.into(),
            digest,
            size,
        })
    };
    let note = |key: &str, name: String| {
        BTreeMap::from([
            (key.to_string(), name),
            ("com.docker.compose.version".to_string(), version.clone()),
        ])
    };
    let mut layers = Vec::new();
    let mut taken = Vec::new();
    let mut add = |media: &str, key: &str, name: String, bytes: &[u8]| -> anyhow::Result<()> {
        if taken.contains(&name) {
            bail!("publish: two files are named `{name}`: one layer each must have its own name");
        }
        layers.push((blob(media, bytes)?, note(key, name.clone())));
        taken.push(name);
        Ok(())
    };
    let file_name = |p: &std::path::Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    for f in &main {
        let text = std::fs::read(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        add(COMPOSE_FILE, "com.docker.compose.file", file_name(f), &text)?;
    }
    if a.resolve_image_digests {
        let pinned = crate::config::pinned_images(project)?;
        let services: serde_json::Map<String, serde_json::Value> = pinned
            .into_iter()
            .map(|(k, v)| (k, serde_json::json!({"image": v})))
            .collect();
        let text = stack_loader::render::to_yaml(&serde_json::json!({"services": services}))?;
        add(
            COMPOSE_FILE,
            "com.docker.compose.file",
            "image-digests.yaml".into(),
            text.as_bytes(),
        )?;
    }
    if a.with_env {
        let env_files = match opts.env_files.is_empty() {
            true => vec![loaded.project_dir.join(".env")],
            false => names(&opts.env_files),
        };
        let used = project
            .services
            .values()
            .flat_map(|s| &s.env_file)
            .map(|e| std::path::PathBuf::from(&e.path));
        let mut seen = Vec::new();
        for f in env_files.into_iter().chain(used).filter(|f| f.is_file()) {
            // One layer a file, however many services read it.
            let real = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if seen.contains(&real) {
                continue;
            }
            seen.push(real);
            let text =
                std::fs::read(&f).with_context(|| format!("cannot read `{}`", f.display()))?;
            add(
                "application/vnd.docker.compose.envfile",
                "com.docker.compose.envfile",
                file_name(&f),
                &text,
            )?;
        }
    }
    let (artifact_type, config) = match a.oci_version.as_str() {
        "1.0" => (
            None,
            blob("application/vnd.docker.compose.config.empty.v1+json", b"{}")?,
        ),
        _ => (
            Some("application/vnd.docker.compose.project".to_string()),
            blob("application/vnd.oci.empty.v1+json", b"{}")?,
        ),
    };
    let artifact = transfer::Artifact {
        artifact_type,
        config,
        layers,
        annotations: BTreeMap::from([
            ("com.docker.compose.version".to_string(), version.clone()),
            (
                "org.opencontainers.image.created".to_string(),
                stack_sys::time::now_rfc3339(),
            ),
        ]),
    };
    let quiet: Progress = Arc::new(|_| {});
    let digest = host
        .block_on(transfer::push_artifact(
            registry_client(),
            &store,
            &dest,
            &artifact,
            quiet,
        ))?
        .with_context(|| format!("cannot publish to {dest}"))?;
    println!("{}@{digest}", dest.familiar_name());
    Ok(())
}

/// A stack file's layer in a published project.
const COMPOSE_FILE: &str = "application/vnd.docker.compose.file+yaml";

/// `stack push [SERVICE...]`: the image of each service that builds, to
/// the registry its name points at (as `docker compose push`).
pub fn push_services(g: &crate::cli::Global, a: &crate::cli::PushArgs) -> anyhow::Result<()> {
    let opts = crate::config::options(g, &a.services, false, false)?;
    let mut project = crate::config::load(&opts)?.project;
    stack_host::load::name_built_images(&mut project);
    let host = Host::new(crate::client::stack_root());
    let mut failed = Vec::new();
    let keep = match a.include_deps {
        true => stack_graph::Graph::from_project(&project).with_dependencies(&a.services),
        false => a.services.clone(),
    };
    for (name, s) in &project.services {
        if (!a.services.is_empty() && !keep.contains(name)) || s.build.is_none() {
            continue;
        }
        let Some(image) = &s.image else { continue };
        if let Err(e) = push(&host, image, a.quiet) {
            match a.ignore_push_failures {
                true => eprintln!("warning: service {name}: {e:#}"),
                false => failed.push(format!("service {name}: {e:#}")),
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// `registry.example.com`, `https://index.docker.io/v1/` → the registry's host.
fn server_host(server: Option<&str>) -> String {
    let s = server.unwrap_or(stack_image::reference::DOCKER_HUB);
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            stack_image::reference::DOCKER_HUB.into()
        }
        h => h.to_string(),
    }
}

fn prompt(what: &str, echo: bool) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    eprint!("{what}: ");
    let stdin = std::io::stdin();
    let saved = if echo { None } else { tcgetattr(&stdin).ok() };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        eprintln!();
    }
    read.context("cannot read standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `stack login [SERVER]`: checks the credentials with the registry, then stores them.
pub fn login(
    server: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let registry = server_host(server);
    let tty = std::io::stdin().is_terminal();
    let username = match username {
        Some(u) => u.to_string(),
        None if tty && !password_stdin => prompt("Username", true)?,
        None => bail!("give the user name with -u (standard input is not a terminal)"),
    };
    let secret = match (password, password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password on the command line is insecure: it shows in the process list. Use --password-stdin.");
            p.to_string()
        }
        (None, true) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read the password from standard input")?;
            s.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) if tty => prompt("Password", false)?,
        (None, false) => {
            bail!("give the password with --password-stdin (standard input is not a terminal)")
        }
    };
    if username.is_empty() || secret.is_empty() {
        bail!("the user name and password must not be empty");
    }
    let creds = Credentials { username, secret };
    let sources = AuthSources::from_env();
    let client = Client::new(sources.clone()).with_credentials(creds.clone());
    stack_host::async_runtime()?
        .block_on(client.check_login(&registry))
        .with_context(|| format!("cannot log in to {registry}"))?;
    sources.store(&registry, &creds)?;
    println!("Login Succeeded");
    Ok(())
}

/// `stack logout [SERVER]`.
pub fn logout(server: Option<&str>) -> anyhow::Result<()> {
    let registry = server_host(server);
    if AuthSources::from_env().remove(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers() {
        assert_eq!(server_host(None), "docker.io");
        assert_eq!(
            server_host(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(server_host(Some("localhost:5000")), "localhost:5000");
        assert_eq!(server_host(Some("https://ghcr.io/v2/")), "ghcr.io");
    }
}
