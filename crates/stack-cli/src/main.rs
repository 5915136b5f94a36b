//! `stack`: a declarative multi-container orchestrator for one Linux host.
//!
//! This binary parses the command line and wires the crates together; it is
//! the one place that prints.

mod build;
mod cli;
mod client;
mod complete;
mod compose;
mod config;
mod container;
mod copy;
mod docker;
mod escape;
mod exec;
mod image;
mod kube;
mod network;
mod progress;
mod registry;
mod stats;
mod table;
mod when;

use std::io::Write as _;
use std::process::ExitCode;

use stack_api::{Action, ActionRequest};

fn main() -> ExitCode {
    // The hidden init mode: this process is becoming a container.
    let mut argv = std::env::args();
    match argv.nth(1).as_deref() {
        Some(stack_runtime::INIT_ARG) => {
            stack_runtime::init_main(&argv.next().unwrap_or_default(), argv.next().as_deref())
        }
        Some(stack_runtime::EXEC_ARG) => stack_runtime::exec_main(&argv.next().unwrap_or_default()),
        Some(stack_host::DNS_ARG) => {
            // Long-lived: nothing of whoever started it is held open.
            stack_runtime::close_inherited_fds(&[]);
            return stack_net::dns::server_main(&client::stack_root());
        }
        _ => {}
    }
    // The engine as the CLI starts it (`stack daemon`, its root and socket
    // in the environment): no command-line parser is built, whose pages it
    // would keep mapped for as long as it runs.
    if std::env::args_os()
        .skip(1)
        .eq([std::ffi::OsStr::new("daemon")])
    {
        // Long-lived, and the parent of what it starts: nothing of the
        // command that started it is held open (a pipe its caller waits
        // on the end of, say).
        stack_runtime::close_inherited_fds(&[]);
        if let Err(code) = enter_rootless() {
            return code;
        }
        return exit(daemon(None, &[]).map(|()| 0));
    }
    // A shell asking for completions (COMPLETE=bash stack -- …) is answered here.
    clap_complete::CompleteEnv::with_factory(complete::command).complete();
    // Parsed on the bare command tree; the examples (a walk that costs a
    // millisecond, more than parsing) are added only for help to show.
    let parsed = cli::parse();
    let args = match parsed {
        Ok(a) => a,
        Err(e) if is_help(&e) => match cli::command().try_get_matches() {
            Err(help) => help.exit(),
            Ok(_) => e.exit(),
        },
        Err(e) => e.exit(),
    };
    if !matches!(args.command, Some(cli::Command::Daemon { .. })) {
        // What the host layer warns of, for a direct command (`container
        // run`): on standard error. The daemon logs its own way.
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .without_time()
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init();
    }
    // Into a rootless store's namespaces before anything else; commands
    // that only read the stack files stay out.
    let reads_files_only = matches!(
        args.command,
        Some(
            cli::Command::Config(_)
                | cli::Command::Graph(_)
                | cli::Command::Kube { .. }
                | cli::Command::Completion { .. }
                | cli::Command::NotHere { .. }
        )
    );
    if !reads_files_only {
        if let Err(code) = enter_rootless() {
            return code;
        }
    }
    let mut out = std::io::stdout().lock();
    let g = &args.global;
    progress::set_ansi(g.ansi);
    // Each command's exit code (most have only success, 0).
    let done = |r: anyhow::Result<()>| r.map(|()| 0);
    let act = |action, req| done(compose::act(g, action, req));
    let Some(command) = &args.command else {
        return exit(compose::overview(g).map(|()| 0));
    };
    if let Some(name) = g
        .dry_run
        .then(|| changes_without_dry_run(command))
        .flatten()
    {
        eprintln!(
            "error: --dry-run: `stack {name}` has no dry run (up, create, scale, down, start, stop, restart, kill, pause, unpause and rm have)"
        );
        return ExitCode::FAILURE;
    }
    let result: anyhow::Result<i32> = match command {
        cli::Command::Config(c) => done(config::config(g, c, &mut out)),
        cli::Command::Graph(gr) => done(config::graph(g, gr, &mut out)),
        cli::Command::Kube {
            command: cli::Deferred(cli::KubeCommand::Generate(a)),
        } => done(kube::generate(g, a, &mut out)),
        cli::Command::Container { command } => container::run(&command.0),
        cli::Command::Image { command } => done(image::run(&command.0, g.progress)),
        cli::Command::Network { command } => done(network::run(&command.0)),
        cli::Command::Pull(p) => done(config::pull(g, p)),
        // (--print and --check build nothing: nothing is pushed either.)
        cli::Command::Build(b) => {
            done(
                build::services(g, b).and_then(|()| match b.push && !b.print && !b.check {
                    true => registry::push_services(
                        g,
                        &cli::PushArgs {
                            services: b.services.clone(),
                            quiet: b.quiet,
                            ..Default::default()
                        },
                    ),
                    false => Ok(()),
                }),
            )
        }
        cli::Command::Push(p) => done(registry::push_services(g, p)),
        cli::Command::Builder { command } => done(build::builder(&command.0)),
        cli::Command::Up(u) => compose::up(g, u),
        cli::Command::Create(c) => compose::up(g, &c.up()),
        cli::Command::Down(d) => done(compose::down(g, d)),
        cli::Command::Ps(p) => done(compose::ps(g, p)),
        cli::Command::Top(t) => done(compose::top(g, &t.services)),
        cli::Command::Images {
            format,
            quiet,
            services,
        } => done(compose::images(g, services, *quiet, format.as_deref())),
        cli::Command::Stats { args, services } => done(compose::stats(g, args, services)),
        cli::Command::Wait {
            down_project,
            services,
        } => compose::wait(g, services).and_then(|code| {
            if *down_project {
                compose::down(g, &cli::DownArgs::default())?;
            }
            Ok(code)
        }),
        cli::Command::Watch(w) => done(compose::watch(g, w)),
        cli::Command::Cp(c) => done(compose::cp(g, c)),
        cli::Command::Scale { no_deps, scale } => done(compose::scale(g, scale, *no_deps)),
        cli::Command::Events {
            json,
            since,
            until,
            services,
        } => done(compose::events(
            g,
            services,
            *json,
            since.as_deref(),
            until.as_deref(),
        )),
        cli::Command::Ls {
            quiet,
            all,
            filters,
            format,
        } => done(compose::ls(*quiet, *all, filters, format.as_deref())),
        cli::Command::Stop(a) => act(Action::Stop, services(&a.services, a.timeout)),
        cli::Command::Start {
            wait,
            wait_timeout,
            services: s,
        } => act(
            Action::Start,
            ActionRequest {
                wait: *wait,
                wait_timeout: *wait_timeout,
                ..services(s, None)
            },
        ),
        cli::Command::Restart { st, no_deps } => act(
            Action::Restart,
            ActionRequest {
                no_deps: *no_deps,
                ..services(&st.services, st.timeout)
            },
        ),
        cli::Command::Kill {
            signal,
            remove_orphans,
            services: s,
        } => act(
            Action::Kill,
            ActionRequest {
                signal: Some(signal.clone()),
                remove_orphans: *remove_orphans,
                ..services(s, None)
            },
        ),
        cli::Command::Pause(a) => act(Action::Pause, services(&a.services, None)),
        cli::Command::Unpause(a) => act(Action::Unpause, services(&a.services, None)),
        cli::Command::Rm {
            force,
            stop,
            volumes: _,
            services: s,
        } => done(compose::rm(g, *force, services(s, None).with_stop(*stop))),
        cli::Command::Logs(l) => done(compose::logs(g, l)),
        cli::Command::Run(r) => compose::run(g, r),
        cli::Command::Exec(x) => compose::exec(g, x),
        cli::Command::Daemon {
            group,
            docker_socket,
        } => {
            stack_runtime::close_inherited_fds(&[]);
            done(daemon(group.as_deref(), docker_socket))
        }
        cli::Command::Port {
            service,
            port,
            protocol,
            index,
        } => done(compose::port(g, service, port, protocol, *index)),
        cli::Command::Login(l) => done(registry::login(
            l.server.as_deref(),
            l.username.as_deref(),
            l.password.as_deref(),
            l.password_stdin,
        )),
        cli::Command::Logout { server } => done(registry::logout(server.as_deref())),
        cli::Command::Version { format, short } => done(version(&mut out, *format, *short)),
        cli::Command::Volume { command } => done(docker::volume(&command.0, &mut out)),
        cli::Command::System { command } => done(docker::system(&command.0, &mut out)),
        cli::Command::Volumes {
            format,
            quiet,
            services,
        } => done(compose::volumes(g, services, *quiet, format.as_deref())),
        cli::Command::Publish(p) => done(registry::publish(g, p)),
        cli::Command::Attach {
            how,
            service,
            index,
        } => compose::attach_replica(g, service, *index, how),
        cli::Command::Commit {
            how,
            service,
            reference,
            index,
        } => done(compose::commit(
            g,
            service,
            *index,
            reference.as_deref(),
            how,
        )),
        cli::Command::Export {
            service,
            index,
            output,
        } => done(compose::export(g, service, *index, output.as_deref())),
        cli::Command::NotHere { .. } => {
            // The word used: `swarm` is the command's name, the rest aliases.
            let word = std::env::args()
                .skip(1)
                .find(|a| cli::NOT_HERE.contains(&a.as_str()))
                .unwrap_or_else(|| "swarm".into());
            Err(anyhow::anyhow!(
                "`stack {word}` is Docker's {} and does not apply here: stack runs one host, its own engine; \
                 to take a stack to a cluster, `stack kube generate` writes it for Kubernetes",
                match word.as_str() {
                    "context" => "way to reach other engines",
                    "plugin" => "plugin system",
                    "trust" => "content trust",
                    "checkpoint" => "checkpointing (experimental)",
                    "manifest" => "manifest list editing (experimental)",
                    _ => "swarm mode (a cluster of hosts)",
                }
            ))
        }
        cli::Command::Completion { shell } => {
            done(complete::registration(*shell, &mut out).map_err(Into::into))
        }
    };
    let _ = out.flush();
    exit(result)
}

/// A command's exit code, or its error said on standard error.
fn exit(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("{}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// A parse that ends in help (`-h`, `help`, a command without its
/// subcommand), not in a mistake.
fn is_help(e: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// The engine: serves the API until stopped.
fn daemon(group: Option<&str>, docker_sockets: &[std::path::PathBuf]) -> anyhow::Result<()> {
    client::prepare_socket_dir(&client::socket_path())?;
    stack_host::daemon::serve(
        &client::stack_root(),
        &client::socket_path(),
        group,
        docker_sockets,
    )
}

/// A user who is not root has a rootless store: this process joins its
/// user, mount and network namespaces (made first if need be), so that
/// what it starts, the engine and containers, is in them.
fn enter_rootless() -> Result<(), ExitCode> {
    if !client::rootless() {
        return Ok(());
    }
    let root = client::stack_root();
    match stack_runtime::userns::enter(&root) {
        Ok(false) => Ok(()),
        // A new link to the host: the published ports go through it again.
        Ok(true) => {
            if let Err(e) =
                stack_net::Store::open(&root).and_then(|s| stack_net::forward::resync(&s))
            {
                eprintln!("warning: published ports: {e}");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// An action on some services (all when empty); the project is the
/// client's to fill in.
fn services(services: &[String], timeout: Option<u64>) -> ActionRequest {
    ActionRequest {
        services: services.to_vec(),
        timeout,
        ..Default::default()
    }
}

/// The commands that change something and cannot only say what they would
/// do: their name.
fn changes_without_dry_run(c: &cli::Command) -> Option<&'static str> {
    use cli::Command as C;
    Some(match c {
        C::Container { .. } => "container",
        C::Image { .. } => "image",
        C::Network { .. } => "network",
        C::Volume { .. } => "volume",
        C::System { .. } => "system",
        C::Builder { .. } => "builder",
        C::Cp(_) => "cp",
        C::Watch(_) => "watch",
        C::Exec(_) => "exec",
        C::Run(_) => "run",
        C::Daemon { .. } => "daemon",
        C::Pull(_) => "pull",
        C::Build(b) if !b.print && !b.check => "build",
        C::Push(_) => "push",
        C::Publish(_) => "publish",
        C::Login(_) => "login",
        C::Logout { .. } => "logout",
        C::Kube { .. } => "kube",
        C::Attach { .. } => "attach",
        C::Commit { .. } => "commit",
        C::Export { .. } => "export",
        _ => return None,
    })
}

/// Errors as users read them: a load error lists every problem.
fn render_error(e: &anyhow::Error) -> String {
    if let Some(le) = e.downcast_ref::<stack_loader::LoadError>() {
        let n = le
            .diagnostics
            .iter()
            .filter(|d| d.severity == stack_loader::Severity::Error)
            .count();
        let noun = if n == 1 { "problem" } else { "problems" };
        return escape::controls(&format!("{le}\n{n} {noun} found")).into_owned();
    }
    // Names and messages from users and containers: no escape sequence
    // reaches the terminal.
    escape::controls(&format!("error: {}", chain(e))).into_owned()
}

/// The error and its causes, `: `-joined as anyhow's `{:#}` does, without
/// a cause that its parent already ends with (an error that prints its
/// source and names it as its source too would read twice: "No space
/// left on device: No space left on device").
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if out == cause || out.ends_with(&format!(": {cause}")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
}

/// `stack version [--format json] [--short]`.
fn version(
    out: &mut dyn std::io::Write,
    format: cli::VersionFormat,
    short: bool,
) -> anyhow::Result<()> {
    let v = env!("CARGO_PKG_VERSION");
    match (short, format) {
        (true, _) => writeln!(out, "{v}")?,
        (false, cli::VersionFormat::Json) => {
            writeln!(out, "{}", serde_json::json!({"version": v}))?
        }
        (false, cli::VersionFormat::Pretty) => writeln!(out, "stack version {v}")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(28);
        let e = anyhow::Error::new(std::io::Error::other(format!("writing layer: {io}")))
            .context("image import");
        let plain = anyhow::anyhow!("cannot start");
        assert_eq!(
            super::chain(&e),
            "image import: writing layer: No space left on device (os error 28)"
        );
        assert_eq!(super::chain(&plain.context("up")), "up: cannot start");
        let found = anyhow::anyhow!("found").context("x not found");
        assert_eq!(super::chain(&found), "x not found: found");
    }
}
