//! The compose commands as a client of the engine: the project is loaded
//! here (files, variables, the working directory are the user's), the
//! engine plans and acts (stack-engine in the daemon), and what it reports is printed
//! as docker compose prints it.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use std::io::{IsTerminal as _, Write as _};

use stack_api::{
    Action, ActionRequest, ContainerSummary, DownRequest, Event, LogsQuery, ProjectSummary,
    UpRequest, WatchRequest,
};
use stack_model::Project;

use crate::cli::{DownArgs, ExecArgs, Global, LogsArgs, PsArgs, RunOneOff, UpArgs};
use crate::progress::Mode;

fn load(g: &Global) -> anyhow::Result<stack_loader::Loaded> {
    let opts = crate::config::options(g, &[], false, false)?;
    crate::config::load(&opts)
}

/// Runs a streamed engine call, showing its events as `--progress` says;
/// returns how many plan lines came.
fn call<B: serde::Serialize>(g: &Global, path: &str, body: &B) -> anyhow::Result<usize> {
    crate::progress::call(path, body, g.progress)
}

/// One plain line per event (streams that go on: watch, the stop of an
/// attached `up`).
fn print_event(e: Event) {
    crate::progress::Display::plain().event(e)
}

fn get<T: serde::de::DeserializeOwned>(path: &str) -> anyhow::Result<T> {
    let (rt, client) = crate::client::client()?;
    Ok(rt.block_on(client.get(path))?)
}

pub fn up(g: &Global, args: &UpArgs) -> anyhow::Result<i32> {
    if args.watch && g.files.iter().any(|f| f.as_os_str() == "-") {
        bail!("cannot watch a stack file read from standard input");
    }
    let dry_run = args.dry_run || g.dry_run;
    if dry_run && args.watch {
        bail!("--dry-run: a watch syncs, rebuilds and restarts for real; it has no dry run");
    }
    let mut watch = loaded_request(g)?;
    let rebuilt = crate::build::for_up(
        &watch.up.project,
        &args.services,
        args.build,
        args.no_build,
        args.quiet_build,
        dry_run,
    )?;
    let base = watch.up.clone();
    if let Some(s) = &args.exit_code_from {
        if !base.project.services.contains_key(s) {
            bail!("--exit-code-from: no such service: `{s}`");
        }
    }
    let scale = parse_scale(&args.scale)?;
    let req = UpRequest {
        services: args.services.clone(),
        no_deps: args.no_deps,
        scale,
        force_recreate: args.force_recreate,
        always_recreate_deps: args.always_recreate_deps,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        no_start: args.no_start,
        timeout: args.timeout,
        dry_run,
        parallel: g.parallel,
        pull: args.pull.clone(),
        quiet_pull: args.quiet_pull,
        wait: args.wait,
        wait_timeout: args.wait_timeout,
        rebuilt,
        ..base
    };
    // What the containers write from now on is what attached `up` shows.
    let since = stack_sys::time::now_rfc3339();
    let planned = call(g, &format!("/v1/projects/{}/up", req.project.name), &req)?;
    if dry_run && planned == 0 {
        println!("nothing to do: the stack is as its file says");
    }
    let detached = args.detach || dry_run || args.wait || args.no_start;
    // The watch of `--watch`, or of the menu's `w`.
    watch.services = req.services.clone();
    watch.up = UpRequest {
        wait: false,
        ..req.clone()
    };
    watch.detach = detached;
    let path = format!("/v1/projects/{}/watch", req.project.name);
    let start_watch = || {
        let (path, watch) = (path.clone(), watch.clone());
        // Beside the output; ends with the process.
        std::thread::spawn(move || {
            if let Err(e) = crate::progress::call(&path, &watch, Mode::Plain) {
                eprintln!("watch: {e:#}");
            }
        });
    };
    if args.watch {
        match detached {
            true => call(g, &path, &watch).map(drop)?,
            false => start_watch(),
        }
    }
    if detached {
        return Ok(0);
    }
    let menu = (args.menu && !args.watch && std::io::stdin().is_terminal())
        .then_some(&start_watch as &dyn Fn());
    attach(&req.project, &req.services, args, since, menu)
}

/// The menu of attached `up`: `w` calls `start_watch` (once), `d` ends
/// the future (detach). Other keys are ignored.
async fn menu_keys(start_watch: &dyn Fn()) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u8>();
    // A thread: reading stdin blocks (the process exits with it waiting).
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut b = [0u8; 1];
        while let Ok(1) = std::io::stdin().read(&mut b) {
            if tx.send(b[0]).is_err() {
                return;
            }
        }
    });
    let mut watching = false;
    while let Some(k) = rx.recv().await {
        match k {
            b'd' | b'D' => return,
            b'w' | b'W' if !watching => {
                watching = true;
                eprintln!("Watch enabled");
                start_watch();
            }
            _ => {}
        }
    }
    std::future::pending::<()>().await
}

/// Attached `up`: the containers' output since `since` until they have
/// all stopped, one stops (`--abort-on-container-exit`,
/// `--exit-code-from`), or Ctrl-C: then the stack stops gracefully; a
/// second Ctrl-C kills it.
fn attach(
    project: &Project,
    services: &[String],
    args: &UpArgs,
    since: String,
    menu: Option<&dyn Fn()>,
) -> anyhow::Result<i32> {
    for s in args.attach.iter().chain(&args.no_attach) {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    // Whose output is shown: --attach, else the services up brought up
    // (all when none are named) without --no-attach and without
    // `attach: false`. (An empty list asks the logs of all.)
    let detached = |s: &String| project.services.get(s).and_then(|s| s.attach) == Some(false);
    let shown: Vec<String> = if !args.attach.is_empty() {
        args.attach.clone()
    } else if services.is_empty() {
        project
            .services
            .keys()
            .filter(|s| !args.no_attach.contains(s) && !detached(s))
            .cloned()
            .collect()
    } else {
        // With --attach-dependencies, the services' dependencies too.
        let named = match args.attach_dependencies {
            true => stack_graph::Graph::from_project(project).with_dependencies(services),
            false => services.to_vec(),
        };
        named
            .into_iter()
            .filter(|s| !args.no_attach.contains(s) && !detached(s))
            .collect()
    };
    let none_shown = shown.is_empty();
    let (rt, client) = crate::client::client()?;
    let mut printer = LogPrinter::new(project, args.no_color, args.no_log_prefix, args.timestamps);
    printer.exits = true;
    let logs = format!(
        "/v1/projects/{}/logs?{}",
        project.name,
        LogsQuery {
            services: shown.clone(),
            follow: true,
            since: Some(since),
            ..Default::default()
        }
        .to_query()
    );
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    let failed = |c: &&&ContainerSummary| c.exit_code.is_some_and(|x| x != 0);
    let containers = format!("/v1/projects/{}/containers?all=1", project.name);
    // The containers whose output has ended with their last run (told by
    // the log stream after that run's last record).
    let drained = std::cell::RefCell::new(std::collections::HashSet::<String>::new());
    let watch = async {
        // Until every container has stopped, or one has when that ends it
        // all, and the output of those stopped has all been shown.
        let mut ended_at = None;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let Ok(now) = client.get::<Vec<ContainerSummary>>(&containers).await else {
                continue;
            };
            let now: Vec<_> = now
                .into_iter()
                .filter(|c| services.is_empty() || services.contains(&c.service))
                .collect();
            let exited: Vec<&ContainerSummary> =
                now.iter().filter(|c| c.state == "exited").collect();
            let ended = match &args.exit_code_from {
                Some(s) => exited.iter().find(|c| &c.service == s).map(|c| c.exit_code),
                None if abort => exited.first().map(|c| c.exit_code),
                None if args.abort_on_container_failure => match exited.iter().find(failed) {
                    Some(c) => Some(c.exit_code),
                    None if exited.len() == now.len() => Some(Some(0)),
                    None => None,
                },
                None if exited.len() == now.len() => Some(Some(0)),
                None => None,
            };
            let Some(code) = ended else {
                ended_at = None;
                continue;
            };
            let shown_all = exited.iter().all(|c| {
                none_shown
                    || !(shown.is_empty() || shown.contains(&c.service))
                    || drained.borrow().contains(&c.name)
            });
            // (Not for ever: a log the engine cannot read has no end.)
            let waited = ended_at
                .get_or_insert_with(std::time::Instant::now)
                .elapsed();
            if shown_all || waited > std::time::Duration::from_secs(5) {
                return code.unwrap_or(0);
            }
        }
    };
    let _keys = menu.map(|_| {
        eprintln!("\x1b[2m  w Enable Watch   d Detach\x1b[0m");
        stack_runtime::RawMode::keys()
    });
    let detach = async {
        match menu {
            Some(start_watch) => menu_keys(start_watch).await,
            None => std::future::pending().await,
        }
    };
    let ended = rt.block_on(async {
        tokio::select! {
            () = detach => Err(Detached),
            r = async {
                if none_shown {
                    // Every service's output left out: only wait.
                    std::future::pending::<()>().await;
                }
                client.get_stream(&logs, |e| {
                    match &e {
                        Event::Log { container, .. } => {
                            drained.borrow_mut().remove(container);
                        }
                        Event::Exited { container, .. } => {
                            drained.borrow_mut().insert(container.clone());
                        }
                        _ => {}
                    }
                    printer.print(e)
                }).await
            } => Ok(r.map(|()| None)),
            code = watch => Ok(Ok(Some(code))),
            _ = tokio::signal::ctrl_c() => Ok(Ok(None)),
        }
    });
    let ended = match ended {
        Err(Detached) => {
            eprintln!("Detached: the stack runs on (`stack down` stops it)");
            return Ok(0);
        }
        Ok(r) => r?,
    };
    if ended.is_none() {
        eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
    }
    let mut req = ActionRequest {
        project: project.clone(),
        services: services.to_vec(),
        timeout: args.timeout,
        ..Default::default()
    };
    let stop = format!("/v1/projects/{}/stop", project.name);
    let stopped = rt.block_on(async {
        tokio::select! {
            r = client.post_stream(&stop, &req, print_event) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match stopped {
        Some(r) => r?,
        None => {
            req.signal = Some("KILL".into());
            let kill = format!("/v1/projects/{}/kill", project.name);
            rt.block_on(client.post_stream(&kill, &req, print_event))?;
        }
    }
    Ok(match (&args.exit_code_from, ended) {
        (Some(_), Some(code)) => code,
        _ => 0,
    })
}

/// The menu's `d`: attached `up` returns, the stack runs on.
struct Detached;

/// `service-N | line`, as docker compose prints the containers' output:
/// prefixes padded to one width and coloured on a terminal (not with
/// `--no-color` or `NO_COLOR`).
struct LogPrinter {
    width: usize,
    color: bool,
    prefix: bool,
    timestamps: bool,
    /// Say when a container has exited (attached `up`).
    exits: bool,
    colors: Vec<String>,
}

impl LogPrinter {
    fn new(project: &Project, no_color: bool, no_prefix: bool, timestamps: bool) -> LogPrinter {
        LogPrinter {
            width: project
                .services
                .keys()
                .map(|s| s.len() + 2)
                .max()
                .unwrap_or(0),
            color: !no_color && crate::progress::colour(std::io::stdout().is_terminal()),
            prefix: !no_prefix,
            timestamps,
            exits: false,
            colors: Vec::new(),
        }
    }

    fn print(&mut self, e: Event) {
        let (service, time, log) = match e {
            Event::Log {
                service, time, log, ..
            } => (service, time, log),
            // As docker compose's attached `up` says it (`logs` does not).
            Event::Exited {
                service, exit_code, ..
            } if self.exits => {
                let line = format!(
                    "{} exited with code {exit_code}\n",
                    crate::escape::name(&service)
                );
                let line = self.paint(&service, &line);
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
                return;
            }
            Event::Exited { .. } => return,
            e => return print_event(e),
        };
        let mut out = std::io::stdout().lock();
        let mut line = String::new();
        if self.prefix {
            // The name is escaped; the output after it is data, as is.
            let pad = format!("{:<w$} | ", crate::escape::name(&service), w = self.width);
            line.push_str(&self.paint(&service, &pad));
        }
        if self.timestamps {
            line.push_str(&time);
            line.push(' ');
        }
        line.push_str(&log);
        if !line.ends_with('\n') {
            line.push('\n');
        }
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// `text` in the service's colour, when colours are on.
    fn paint(&mut self, service: &str, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        const PALETTE: [u8; 6] = [36, 33, 32, 35, 34, 31];
        let i = match self.colors.iter().position(|c| c == service) {
            Some(i) => i,
            None => {
                self.colors.push(service.to_string());
                self.colors.len() - 1
            }
        };
        format!("\x1b[{}m{text}\x1b[0m", PALETTE[i % PALETTE.len()])
    }
}

/// `stack logs`.
pub fn logs(g: &Global, args: &LogsArgs) -> anyhow::Result<()> {
    let project = load(g)?.project;
    check_services(&project, &args.services)?;
    let tail = crate::cli::parse_tail(&args.tail)?;
    let now = std::time::SystemTime::now();
    let when = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| crate::when::parse(v, now).with_context(|| format!("--{flag}")))
            .transpose()
    };
    let q = LogsQuery {
        services: args.services.clone(),
        follow: args.follow,
        tail,
        since: when("since", &args.since)?,
        until: when("until", &args.until)?,
    };
    let mut printer = LogPrinter::new(&project, args.no_color, args.no_log_prefix, args.timestamps);
    // `--index N`: the containers that are replica N.
    let only: Option<Vec<String>> = match args.index {
        Some(n) => Some(
            existing(&project, true, &args.services)?
                .into_iter()
                .filter(|c| c.number == n && !one_off(c))
                .map(|c| c.name)
                .collect(),
        ),
        None => None,
    };
    let mut print = |e: Event| match (&only, &e) {
        (Some(names), Event::Log { container, .. }) if !names.contains(container) => {}
        _ => printer.print(e),
    };
    let (rt, client) = crate::client::client()?;
    let path = format!("/v1/projects/{}/logs?{}", project.name, q.to_query());
    rt.block_on(async {
        tokio::select! {
            r = client.get_stream(&path, &mut print) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(())
}

fn check_services(project: &Project, services: &[String]) -> anyhow::Result<()> {
    for s in services {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    Ok(())
}

/// stop, start, restart, kill, pause, unpause, rm.
pub fn act(g: &Global, action: Action, mut req: ActionRequest) -> anyhow::Result<()> {
    req.project = load(g)?.project;
    req.parallel = g.parallel;
    req.dry_run = g.dry_run;
    check_services(&req.project, &req.services)?;
    call(
        g,
        &format!("/v1/projects/{}/{}", req.project.name, action.name()),
        &req,
    )?;
    Ok(())
}

/// `stack rm`: asks first on a terminal, unless `-f`.
pub fn rm(g: &Global, force: bool, req: ActionRequest) -> anyhow::Result<()> {
    if !force && std::io::stdin().is_terminal() {
        let project = load(g)?.project;
        let going: Vec<String> = existing(&project, true, &req.services)?
            .into_iter()
            .filter(|c| req.stop || c.state == "exited")
            .map(|c| c.name)
            .collect();
        if going.is_empty() {
            println!("No stopped containers");
            return Ok(());
        }
        print!("Going to remove {}\nAre you sure? [yN] ", going.join(", "));
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    act(g, Action::Rm, req)
}

/// The running container of replica `index` of a service of the user's
/// project.
fn replica(g: &Global, service: &str, index: u32) -> anyhow::Result<ContainerSummary> {
    let project = load(g)?.project;
    existing(&project, false, &[service.to_string()])?
        .into_iter()
        .find(|c| c.number == index && !one_off(c))
        .ok_or_else(|| anyhow::anyhow!("service `{service}` is not running (replica {index})"))
}

/// `stack cp`: SERVICE:PATH is replica `--index` of the service (or every
/// replica with `--all`, to copy into); the engine reads and writes the
/// container's side.
pub fn cp(g: &Global, args: &crate::cli::CpArgs) -> anyhow::Result<()> {
    use crate::copy::Side;
    let project = load(g)?.project;
    let (src, dest) = (Side::parse(&args.src), Side::parse(&args.dest));
    if args.all && matches!(src, Side::Container { .. }) {
        bail!("--all copies into every replica: the destination must be SERVICE:PATH");
    }
    for side in [&src, &dest] {
        if let Side::Container { name, .. } = side {
            check_services(&project, std::slice::from_ref(name))?;
        }
    }
    let (rt, client) = crate::client::client()?;
    let via = ViaEngine {
        project: project.name.clone(),
        index: args.index,
        all: args.all,
        rt,
        client,
    };
    let how = crate::copy::How {
        archive: args.archive,
        follow: args.follow_link,
    };
    eprintln!("{}", crate::copy::copy(&src, &dest, &via, how)?);
    Ok(())
}

/// `stack cp`'s container side: the engine's archive endpoint.
struct ViaEngine {
    project: String,
    index: u32,
    all: bool,
    rt: tokio::runtime::Runtime,
    client: stack_api::Client,
}

impl ViaEngine {
    fn path(&self, service: &str, path: &str, q: stack_api::ArchiveQuery) -> String {
        let q = stack_api::ArchiveQuery {
            service: service.into(),
            index: self.index,
            path: path.into(),
            all: self.all,
            ..q
        };
        format!("/v1/projects/{}/archive?{}", self.project, q.to_query())
    }
}

impl crate::copy::Files for ViaEngine {
    /// The answer goes to `sink` (on a thread) as it comes.
    fn archive(
        &self,
        service: &str,
        path: &str,
        follow: bool,
        sink: crate::copy::TarSink<'_>,
    ) -> anyhow::Result<usize> {
        let q = stack_api::ArchiveQuery {
            follow,
            ..Default::default()
        };
        let url = self.path(service, path, q);
        let (tx, chunks) = tokio::sync::mpsc::channel(8);
        let (answer, read) = std::thread::scope(|s| {
            let reader = s.spawn(move || sink(&mut stack_api::pipe::Reader::new(chunks)));
            let answer = self.rt.block_on(self.client.get_to(&url, tx));
            let read = reader
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (answer, read)
        });
        // The engine's refusal says why; else what the reader saw.
        match (answer, read) {
            (Err(e @ stack_api::ClientError::Api { .. }), _) => Err(e.into()),
            (_, Err(e)) => Err(e),
            (Err(e), _) => Err(e.into()),
            (Ok(()), Ok(n)) => Ok(n),
        }
    }

    /// What `source` writes (on a thread) is sent as it comes.
    fn extract(
        &self,
        service: &str,
        path: &str,
        contents: bool,
        archive: bool,
        source: crate::copy::TarSource<'_>,
    ) -> anyhow::Result<usize> {
        let q = stack_api::ArchiveQuery {
            contents,
            archive,
            ..Default::default()
        };
        let url = self.path(service, path, q);
        crate::copy::through_chunks(
            |out| source(out),
            |chunks| {
                let answer = self
                    .rt
                    .block_on(self.client.put_from::<stack_api::Copied>(&url, chunks))?;
                Ok(answer.files)
            },
        )
    }
}

/// The engine's path for `op` on the project, with `?service=` for each
/// of `services` (and `extra` query parts).
fn query_path(project: &str, op: &str, services: &[String], extra: &[&str]) -> String {
    let parts: Vec<String> = services
        .iter()
        .map(|s| format!("service={s}"))
        .chain(extra.iter().map(|e| e.to_string()))
        .collect();
    format!("/v1/projects/{project}/{op}?{}", parts.join("&"))
}

/// `stack stats`: the project's containers (followed as they come and go),
/// read by the engine at each refresh.
pub fn stats(g: &Global, args: &crate::cli::StatsArgs, services: &[String]) -> anyhow::Result<()> {
    let project = load(g)?.project;
    check_services(&project, services)?;
    let path = query_path(
        &project.name,
        "stats",
        services,
        if args.all { &["all=1"] } else { &[] },
    );
    let (rt, client) = crate::client::client()?;
    crate::stats::show(args, || Ok(rt.block_on(client.get(&path))?))
}

/// `-e KEY=VALUE` as given; `-e KEY` takes ours (and is left out if we
/// have none), as `docker compose` does.
fn resolve_env(given: &[String]) -> Vec<String> {
    given
        .iter()
        .filter_map(|e| match e.contains('=') {
            true => Some(e.clone()),
            false => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect()
}

/// `stack exec SERVICE COMMAND…`: run by the engine in the replica; our
/// terminal (or pipes), its size and our signals relayed to it.
pub fn exec(g: &Global, args: &ExecArgs) -> anyhow::Result<i32> {
    let project = load(g)?.project;
    check_services(&project, std::slice::from_ref(&args.service))?;
    let p = &args.process;
    let tty = !args.detach && !p.no_tty && std::io::stdin().is_terminal();
    let req = stack_api::ExecRequest {
        service: args.service.clone(),
        index: args.index,
        command: args.command.clone(),
        env: resolve_env(&p.env),
        user: p.user.clone(),
        workdir: p.workdir.clone(),
        tty,
        console_size: tty.then(stack_runtime::terminal_size).flatten(),
        interactive: !args.detach,
        detach: args.detach,
        privileged: args.privileged,
    };
    let (rt, client) = crate::client::client()?;
    rt.block_on(async {
        let io = client
            .session(&format!("/v1/projects/{}/exec", project.name), &req)
            .await?;
        crate::exec::attach(io, tty, !args.detach).await
    })
}

pub fn down(g: &Global, args: &DownArgs) -> anyhow::Result<()> {
    let req = DownRequest {
        project: load(g)?.project,
        remove_orphans: args.remove_orphans,
        volumes: args.volumes,
        rmi: args.rmi.clone(),
        timeout: args.timeout,
        parallel: g.parallel,
        dry_run: g.dry_run,
    };
    call(g, &format!("/v1/projects/{}/down", req.project.name), &req)?;
    Ok(())
}

/// The project's containers (all, or running), of some services.
fn containers(
    project: &Project,
    all: bool,
    services: &[String],
) -> anyhow::Result<Vec<ContainerSummary>> {
    check_services(project, services)?;
    let rows: Vec<ContainerSummary> = get(&format!(
        "/v1/projects/{}/containers{}",
        project.name,
        if all { "?all=1" } else { "" }
    ))?;
    Ok(rows
        .into_iter()
        .filter(|c| services.is_empty() || services.contains(&c.service))
        .collect())
}

fn one_off(c: &ContainerSummary) -> bool {
    c.labels
        .get(stack_host::supervision::LABEL_ONEOFF)
        .map(String::as_str)
        == Some("True")
}

/// The project's containers, without the rows of services still waiting
/// for their first one.
fn existing(
    project: &Project,
    all: bool,
    services: &[String],
) -> anyhow::Result<Vec<ContainerSummary>> {
    let mut rows = containers(project, all, services)?;
    rows.retain(|c| !c.id.is_empty());
    Ok(rows)
}

pub fn ps(g: &Global, args: &PsArgs) -> anyhow::Result<()> {
    let project = load(g)?.project;
    let all = args.all || !args.status.is_empty();
    let mut states = args.status.clone();
    for f in &args.filters {
        match f.split_once('=') {
            Some(("status", v)) => states.push(v.to_string()),
            _ => bail!("invalid filter `{f}`: only status=STATE"),
        }
    }
    let all = all || !states.is_empty();
    let mut rows = containers(&project, all, &args.only)?;
    if !args.orphans {
        rows.retain(|c| project.services.contains_key(&c.service));
    }
    // One-off containers (`stack run`) with -a only, as with compose.
    rows.retain(|c| args.all || !one_off(c));
    if args.quiet {
        rows.retain(|c| !c.id.is_empty());
    }
    rows.retain(|c| states.is_empty() || states.contains(&c.state));
    if args.services {
        let mut names: Vec<&str> = rows.iter().map(|c| c.service.as_str()).collect();
        names.dedup();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    match (args.quiet, args.format.as_str()) {
        (true, _) => rows.iter().for_each(|c| println!("{}", c.id)),
        (false, "table") => {
            println!("{:<28}{:<14}{:<22}PORTS", "NAME", "SERVICE", "STATUS");
            for c in &rows {
                println!(
                    "{:<28}{:<14}{:<22}{}",
                    if c.name.is_empty() { "-" } else { &c.name },
                    c.service,
                    c.status,
                    c.ports.join(", ")
                );
            }
        }
        // `json` (docker compose's fields, a line each) or a template.
        (false, format) => {
            let rows = rows
                .iter()
                .map(|c| {
                    crate::table::row(serde_json::json!({
                        "ID": c.id, "Name": c.name, "Image": c.image, "Command": c.command,
                        "Project": project.name, "Service": c.service, "State": c.state,
                        "Status": c.status, "ExitCode": c.exit_code.unwrap_or(0),
                        "Health": c.health, "RestartCount": c.restarts,
                        "Ports": c.ports.join(", "), "Labels": c.labels,
                    }))
                })
                .collect();
            let columns = &[
                ("Name", "NAME"),
                ("Service", "SERVICE"),
                ("Status", "STATUS"),
                ("Ports", "PORTS"),
            ];
            crate::table::print_out(Some(format), false, columns, rows)?;
        }
    }
    Ok(())
}

/// `stack top`: each running container's processes, as the engine reads them.
pub fn top(g: &Global, services: &[String]) -> anyhow::Result<()> {
    let project = load(g)?.project;
    check_services(&project, services)?;
    let tops: Vec<stack_api::Top> = get(&query_path(&project.name, "top", services, &[]))?;
    for t in tops {
        println!("{}", t.name);
        crate::container::print_top(&t.processes);
        println!();
    }
    Ok(())
}

/// `stack images`: the image each container runs.
pub fn images(
    g: &Global,
    services: &[String],
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let project = load(g)?.project;
    check_services(&project, services)?;
    let found: Vec<stack_api::ImageSummary> =
        get(&query_path(&project.name, "images", services, &[]))?;
    if quiet {
        // The images' ids, each once (as compose prints them).
        let mut ids: Vec<&str> = found
            .iter()
            .filter_map(|c| c.id.strip_prefix("sha256:"))
            .collect();
        ids.sort();
        ids.dedup();
        ids.iter().for_each(|id| println!("{id}"));
        return Ok(());
    }
    let split = |image: &str| match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((r, t)) => (r.to_string(), t.to_string()),
        None => (image.to_string(), "latest".to_string()),
    };
    if format == Some("json") {
        // One array, sizes in bytes, as compose prints it.
        let all: Vec<serde_json::Value> = found
            .iter()
            .map(|c| {
                let (repo, tag) = split(&c.image);
                serde_json::json!({"ID": c.id, "ContainerName": c.container,
                    "Repository": repo, "Tag": tag, "Size": c.size})
            })
            .collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    let rows = found
        .into_iter()
        .map(|c| {
            let (repo, tag) = split(&c.image);
            let (id, size) = match c.id.strip_prefix("sha256:") {
                Some(id) => (id.chars().take(12).collect(), crate::table::size(c.size)),
                None => ("<gone>".to_string(), String::new()),
            };
            crate::table::row(serde_json::json!({"ContainerName": c.container,
                "Repository": repo, "Tag": tag, "ID": id, "Size": size}))
        })
        .collect();
    let columns = &[
        ("ID", "IMAGE ID"),
        ("ContainerName", "CONTAINER"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Size", "SIZE"),
    ];
    let format = format.or(Some(
        "table {{.ContainerName}}\\t{{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}",
    ));
    crate::table::print_out(format, false, columns, rows)?;
    Ok(())
}

/// `stack wait`: until every container of the services has stopped; the
/// first one's exit code is ours.
pub fn wait(g: &Global, services: &[String]) -> anyhow::Result<i32> {
    let project = load(g)?.project;
    let mut first = None;
    let mut reported = std::collections::BTreeSet::new();
    loop {
        let rows = existing(&project, true, services)?;
        if rows.is_empty() {
            bail!("no containers to wait for");
        }
        for c in rows.iter().filter(|c| c.state == "exited") {
            if reported.insert(c.id.clone()) {
                let code = c.exit_code.unwrap_or(0);
                println!("{} exited with code {code}", c.name);
                first.get_or_insert(code);
            }
        }
        if rows.iter().all(|c| c.state == "exited") {
            return Ok(first.unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// An `up` of the user's project as the engine takes it: where it comes
/// from, secrets and configs from the environment read here.
fn up_request(g: &Global) -> anyhow::Result<UpRequest> {
    Ok(loaded_request(g)?.up)
}

/// An `up` of the user's project, and how it was loaded: what a watch
/// needs to load it again.
fn loaded_request(g: &Global) -> anyhow::Result<WatchRequest> {
    let opts = crate::config::options(g, &[], false, false)?;
    let (up, files) = stack_host::load::up_request(crate::config::load(&opts)?, &opts)?;
    Ok(WatchRequest {
        up: UpRequest {
            parallel: g.parallel,
            compatibility: g.compatibility,
            ..up
        },
        load: stack_host::load::spec(&opts),
        files,
        // As compose: the image a rebuild replaced goes (`watch --prune=false` keeps it).
        prune: true,
        ..WatchRequest::default()
    })
}

/// `stack watch`: `up` (unless `--no-up`), then the engine watches until
/// Ctrl-C (or, detached, until `--stop` or `down`).
pub fn watch(g: &Global, args: &crate::cli::WatchArgs) -> anyhow::Result<()> {
    if args.stop {
        let name = load(g)?.project.name;
        return call(g, &format!("/v1/projects/{name}/unwatch"), &()).map(drop);
    }
    if g.files.iter().any(|f| f.as_os_str() == "-") {
        bail!("cannot watch a stack file read from standard input");
    }
    let mut req = loaded_request(g)?;
    check_services(&req.up.project, &args.services)?;
    req.up.services = args.services.clone();
    req.services = args.services.clone();
    req.detach = args.detach;
    req.prune = args.prune;
    if !args.no_up {
        call(
            g,
            &format!("/v1/projects/{}/up", req.up.project.name),
            &req.up,
        )?;
    }
    let mode = match () {
        _ if args.quiet => Mode::Quiet,
        _ if args.detach => g.progress,
        _ => Mode::Plain,
    };
    crate::progress::call(
        &format!("/v1/projects/{}/watch", req.up.project.name),
        &req,
        mode,
    )
    .map(drop)
}

/// `SERVICE=N` entries (`--scale`, `stack scale`).
fn parse_scale(entries: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    entries
        .iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid scale `{s}`: expected SERVICE=N"))?;
            let n = v
                .parse()
                .with_context(|| format!("invalid scale `{s}`: N is a number"))?;
            Ok((k.to_string(), n))
        })
        .collect()
}

/// `stack scale SERVICE=N ...`: `up` of those services with that many
/// replicas; the others are left as they are.
pub fn scale(g: &Global, entries: &[String], no_deps: bool) -> anyhow::Result<()> {
    let scale = parse_scale(entries)?;
    let req = UpRequest {
        services: scale.keys().cloned().collect(),
        no_deps,
        scale,
        dry_run: g.dry_run,
        ..up_request(g)?
    };
    call(g, &format!("/v1/projects/{}/up", req.project.name), &req).map(drop)
}

/// `stack events`: what happens to the project's containers, as it
/// happens, as `docker compose events` prints it (or one JSON object per
/// line), until interrupted.
pub fn events(
    g: &Global,
    services: &[String],
    json: bool,
    since: Option<&str>,
    until: Option<&str>,
) -> anyhow::Result<()> {
    let project = load(g)?.project;
    for s in services {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    let now = std::time::SystemTime::now();
    let time = |flag: &str, t: Option<&str>| {
        t.map(|t| crate::when::nanos(t, now))
            .transpose()
            .with_context(|| format!("--{flag}"))
    };
    let q = stack_api::EventsQuery {
        since: time("since", since)?,
        until: time("until", until)?,
    };
    let (rt, client) = crate::client::client()?;
    let path = format!("/v1/projects/{}/events?{}", project.name, q.to_query());
    let mut out = std::io::stdout();
    rt.block_on(client.get_stream(&path, |e| {
        let Event::Container(e) = e else { return };
        if !services.is_empty() && !services.contains(&e.service) {
            return;
        }
        let time = stack_sys::time::rfc3339(
            e.time_nano.div_euclid(1_000_000_000),
            e.time_nano.rem_euclid(1_000_000_000) as u32,
        );
        let line = if json {
            serde_json::json!({
                "time": time, "type": "container", "action": e.action, "id": e.id,
                "service": e.service, "attributes": e.attributes,
            })
            .to_string()
        } else {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "{time} container {} {} ({})",
                e.action,
                e.id,
                attrs.join(", ")
            )
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }))?;
    Ok(())
}

/// `stack ls`: every project on this host.
pub fn ls(quiet: bool, all: bool, filters: &[String], format: Option<&str>) -> anyhow::Result<()> {
    let projects: Vec<ProjectSummary> = get("/v1/projects")?;
    let mut names = Vec::new();
    for f in filters {
        match f.split_once('=') {
            Some(("name", n)) => names.push(n.to_string()),
            _ => bail!("invalid filter `{f}`: only name=NAME"),
        }
    }
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = projects
        .into_iter()
        .filter(|p| all || p.status.contains("running"))
        .filter(|p| names.is_empty() || names.iter().any(|n| p.name.contains(n.as_str())))
        .map(|p| {
            crate::table::row(serde_json::json!({"Name": p.name, "Status": p.status,
                "ConfigFiles": p.config_files}))
        })
        .collect();
    if format == Some("json") {
        // One array, as compose prints it.
        let all: Vec<serde_json::Value> = rows.into_iter().map(serde_json::Value::Object).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    let columns = &[
        ("Name", "NAME"),
        ("Status", "STATUS"),
        ("ConfigFiles", "CONFIG FILES"),
    ];
    crate::table::print_out(format, quiet, columns, rows)?;
    Ok(())
}

/// `stack port SERVICE PORT [--index N]`: the host side of a published port.
pub fn port(
    g: &Global,
    service: &str,
    port: &str,
    protocol: &str,
    index: u32,
) -> anyhow::Result<()> {
    let c = replica(g, service, index)?;
    let wanted = match port.contains('/') {
        true => port.to_string(),
        false => format!("{port}/{}", protocol.to_ascii_lowercase()),
    };
    let shown = host_ports(&c.ports, &wanted);
    if shown.is_empty() {
        bail!("no public port `{wanted}` published for `{}`", c.name);
    }
    for p in shown {
        println!("{p}");
    }
    Ok(())
}

/// Where `ps`'s ports (`0.0.0.0:8080->80/tcp`) publish `PORT/PROTO`.
fn host_ports<'a>(ports: &'a [String], wanted: &str) -> Vec<&'a str> {
    ports
        .iter()
        .filter_map(|p| p.split_once("->"))
        .filter(|(_, inside)| *inside == wanted)
        .map(|(host, _)| host)
        .collect()
}

/// `stack run SERVICE [COMMAND…]`: its dependencies up, then a one-off
/// container of the service, both by the engine, which relays the
/// container to our terminal (or pipes) as for `exec`; its exit code is
/// ours.
pub fn run(g: &Global, args: &RunOneOff) -> anyhow::Result<i32> {
    let mut loaded = load(g)?;
    stack_host::load::contents_from_environment(&mut loaded)?;
    let mut project = loaded.project;
    check_services(&project, std::slice::from_ref(&args.service))?;
    let quiet = Global {
        progress: Mode::Quiet,
        ..g.clone()
    };
    let g = if args.quiet || args.quiet_pull {
        &quiet
    } else {
        g
    };
    // The flags that change the service for this container.
    // Variables from the files, a later file over an earlier one, then
    // the command line's own -e over them all.
    let mut env = Vec::new();
    for f in &args.env_from_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--env-from-file `{}`", f.display()))?;
        let vars = stack_loader::dotenv::parse_format(&text, false, &loaded.env.lookup())
            .map_err(|e| anyhow::anyhow!("--env-from-file `{}`: {e}", f.display()))?;
        env.extend(vars.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    env.extend(args.process.env.iter().cloned());
    {
        let s = project
            .services
            .get_mut(&args.service)
            .expect("checked above");
        s.cap_add.extend(args.cap_add.iter().cloned());
        s.cap_drop.extend(args.cap_drop.iter().cloned());
        for l in &args.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            s.labels.0.insert(k.to_string(), v.to_string());
        }
        for v in &args.volumes {
            s.volumes.push(
                stack_loader::volume_mount(v, &loaded.project_dir)
                    .map_err(|e| anyhow::anyhow!("--volume: {e}"))?,
            );
        }
        if let Some(p) = &args.pull {
            s.pull_policy = Some(p.clone());
        }
    }
    if args.build {
        crate::build::for_up(
            &project,
            std::slice::from_ref(&args.service),
            true,
            false,
            args.quiet || args.quiet_build,
            false,
        )?;
    }
    let graph = stack_graph::Graph::from_project(&project);
    let deps: Vec<String> = graph
        .with_dependencies(std::slice::from_ref(&args.service))
        .into_iter()
        .filter(|s| s != &args.service)
        .collect();
    let mut started = Vec::new();
    if !args.no_deps && !deps.is_empty() {
        let running: Vec<String> = existing(&project, false, &deps)?
            .into_iter()
            .map(|c| c.service)
            .collect();
        started = deps
            .iter()
            .filter(|d| !running.contains(d))
            .cloned()
            .collect();
        let req = UpRequest {
            services: deps.clone(),
            no_recreate: true,
            remove_orphans: args.remove_orphans,
            project: project.clone(),
            ..Default::default()
        };
        call(g, &format!("/v1/projects/{}/up", project.name), &req)?;
    }
    let p = &args.process;
    let entrypoint = args
        .entrypoint
        .as_ref()
        .map(|e| {
            stack_model::shell_split(e).map_err(|why| anyhow::anyhow!("--entrypoint `{e}`: {why}"))
        })
        .transpose()?;
    let tty = !p.no_tty && !args.detach && std::io::stdin().is_terminal();
    let req = stack_api::RunRequest {
        project: project.clone(),
        service: args.service.clone(),
        name: args.name.clone(),
        command: args.command.clone(),
        entrypoint,
        env: resolve_env(&env),
        user: p.user.clone(),
        workdir: p.workdir.clone(),
        publish: args.publish.clone(),
        service_ports: args.service_ports,
        use_aliases: args.use_aliases,
        compatibility: g.compatibility,
        tty,
        console_size: tty.then(stack_runtime::terminal_size).flatten(),
        interactive: !args.detach,
        detach: args.detach,
        rm: args.rm,
    };
    let (rt, client) = crate::client::client()?;
    let code = rt.block_on(async {
        let io = client
            .session(&format!("/v1/projects/{}/run", project.name), &req)
            .await?;
        crate::exec::attach(io, tty, !args.detach).await
    });
    if args.rm_deps && !started.is_empty() {
        let req = ActionRequest {
            project: project.clone(),
            services: started,
            stop: true,
            ..Default::default()
        };
        call(g, &format!("/v1/projects/{}/rm", project.name), &req)?;
    }
    code
}

/// `stack volumes [SERVICE…]`.
pub fn volumes(
    g: &Global,
    services: &[String],
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let project = load(g)?.project;
    check_services(&project, services)?;
    crate::docker::project_volumes(&project, services, quiet, format)
}

/// `stack export SERVICE [-o FILE]`: replica `--index`'s filesystem.
pub fn export(
    g: &Global,
    service: &str,
    index: u32,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let c = replica(g, service, index)?;
    crate::docker::export(&c.id, output)
}

/// `stack attach SERVICE`: to replica `--index`.
pub fn attach_replica(
    g: &Global,
    service: &str,
    index: u32,
    how: &crate::cli::container::AttachArgs,
) -> anyhow::Result<i32> {
    let c = replica(g, service, index)?;
    crate::docker::attach(
        &c.id,
        !how.no_stdin,
        how.sig_proxy,
        how.detach_keys.as_deref(),
    )
}

/// `stack commit SERVICE [REPOSITORY[:TAG]]`: replica `--index` as an image.
pub fn commit(
    g: &Global,
    service: &str,
    index: u32,
    reference: Option<&str>,
    how: &crate::cli::container::CommitArgs,
) -> anyhow::Result<()> {
    let c = replica(g, service, index)?;
    crate::docker::commit(&c.id, reference, how)
}

/// `stack` alone: in a project, its state and the commands to try;
/// elsewhere, the help.
pub fn overview(g: &Global) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    if g.files.is_empty() && stack_loader::discover(&cwd).is_none() {
        crate::cli::command().print_help()?;
        return Ok(());
    }
    let loaded = load(g)?;
    let project = &loaded.project;
    let files: Vec<String> = loaded
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    println!("Project {} ({})", project.name, files.join(", "));
    let names: Vec<&str> = project.service_names().collect();
    println!("  services: {}", names.join(", "));
    // Asked of an engine that runs; none is started for this.
    let found: Option<Vec<ContainerSummary>> =
        crate::client::running_client().and_then(|(rt, c)| {
            rt.block_on(c.get(&format!("/v1/projects/{}/containers?all=1", project.name)))
                .ok()
        });
    let running = match &found {
        Some(cs) if !cs.is_empty() => {
            let up = cs.iter().filter(|c| c.state == "running").count();
            println!("  containers: {up} running of {}", cs.len());
            for c in cs {
                println!("    {:<28} {}", c.name, c.status);
            }
            up > 0
        }
        _ => {
            println!("  containers: none");
            false
        }
    };
    println!("\nTry:");
    let tries: &[(&str, &str)] = if running {
        &[
            ("stack ps", "its containers"),
            ("stack logs -f", "follow their output"),
            ("stack exec SERVICE sh", "a shell in one"),
            ("stack down", "stop and remove it all"),
        ]
    } else {
        &[
            ("stack up -d", "create and start it"),
            ("stack config", "the file as stack reads it"),
            ("stack graph", "the start order"),
        ]
    };
    for (cmd, what) in tries {
        println!("  {cmd:<24} {what}");
    }
    println!("  {:<24} every command", "stack --help");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_finds_where_ps_says_a_port_is_published() {
        let ports = [
            "0.0.0.0:8080->80/tcp".to_string(),
            "[::]:8080->80/tcp".to_string(),
            "127.0.0.1:5353->53/udp".to_string(),
        ];
        assert_eq!(host_ports(&ports, "80/tcp"), ["0.0.0.0:8080", "[::]:8080"]);
        assert_eq!(host_ports(&ports, "53/udp"), ["127.0.0.1:5353"]);
        assert!(host_ports(&ports, "53/tcp").is_empty());
        assert!(host_ports(&ports, "8080/tcp").is_empty());
    }
}
