//! Talking to registries: `image pull`, `image push`, `pull` (a stack's
//! images), `login`, `logout`, and the progress display they share.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use stack_image::auth::{AuthSources, Credentials};
use stack_image::manifest::Platform;
use stack_image::reference::Reference;
use stack_image::registry::Client;
use stack_image::transfer::{self, Event, Progress, State};

pub fn client() -> Arc<Client> {
    Arc::new(Client::new(AuthSources::from_env()))
}

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

fn parse_platform(p: Option<&str>) -> anyhow::Result<Platform> {
    match p {
        Some(p) => Platform::parse(p).map_err(anyhow::Error::msg),
        None => Ok(Platform::host()),
    }
}

/// `stack image pull REF [--platform P]`.
pub fn pull(reference: &str, platform: Option<&str>, quiet: bool) -> anyhow::Result<()> {
    let r = Reference::parse(reference)?;
    let platform = parse_platform(platform)?;
    let store = crate::image::store()?;
    let progress = Display::progress(quiet);
    if !quiet {
        println!("{}: Pulling from {}", r.manifest_ref(), r.repository);
    }
    let pulled = crate::async_runtime()?
        .block_on(transfer::pull(client(), &store, &r, &platform, progress))
        .with_context(|| format!("cannot pull {r}"))?;
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
pub fn push(reference: &str, quiet: bool) -> anyhow::Result<()> {
    let store = crate::image::store()?;
    let img = store.lookup(reference)?;
    let dest = Reference::parse(reference)?;
    let progress = Display::progress(quiet);
    if !quiet {
        println!(
            "The push refers to repository [{}/{}]",
            dest.registry, dest.repository
        );
    }
    let digest = crate::async_runtime()?
        .block_on(transfer::push(client(), &store, &img, &dest, progress))
        .with_context(|| format!("cannot push {dest}"))?;
    let tag = dest.tag.as_deref().unwrap_or("latest");
    println!("{tag}: digest: {digest}");
    Ok(())
}

/// `stack pull`, in the engine: every image at once, each reported as an
/// `Image` event (`Pulling`, then `Pulled`); a failure is a warning for
/// an image its service builds, or with `ignore_failures`, else an error
/// naming every one that failed.
pub fn pull_all(req: &stack_api::PullRequest, events: &stack_api::Events) -> anyhow::Result<()> {
    let store = crate::image::store()?;
    let client = client();
    let mut wanted: Vec<(Reference, Platform, bool)> = Vec::new();
    for i in &req.images {
        let r = Reference::parse(&i.reference)?;
        let p = parse_platform(i.platform.as_deref())?;
        if !wanted.iter().any(|(w, q, _)| *w == r && *q == p) {
            wanted.push((r, p, i.buildable));
        }
    }
    let report = |events: &stack_api::Events, r: &Reference, action: &str| {
        events.send(stack_api::Event::Progress {
            object: "Image".into(),
            name: r.to_string(),
            action: action.into(),
        })
    };
    let results = crate::async_runtime()?.block_on(async {
        let tasks: Vec<_> = wanted
            .iter()
            .map(|(r, p, _)| {
                let (client, store, r, p, events) = (
                    client.clone(),
                    store.clone(),
                    r.clone(),
                    p.clone(),
                    events.clone(),
                );
                tokio::spawn(async move {
                    report(&events, &r, "Pulling");
                    let pulled = transfer::pull(client, &store, &r, &p, Arc::new(|_| {})).await;
                    if pulled.is_ok() {
                        report(&events, &r, "Pulled");
                    }
                    pulled
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            );
        }
        out
    });
    let mut failed = Vec::new();
    for ((r, _, buildable), res) in wanted.iter().zip(results) {
        match res {
            Ok(_) => {}
            Err(e) if *buildable || req.ignore_failures => events.send(stack_api::Event::Warning {
                message: format!("cannot pull {r}: {e}"),
            }),
            Err(e) => failed.push(format!("cannot pull {r}: {e}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
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
    crate::async_runtime()?
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
