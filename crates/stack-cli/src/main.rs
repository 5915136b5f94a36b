//! `stack`: a declarative multi-container orchestrator for one Linux host.
//!
//! This binary parses the command line and wires the crates together; it is
//! the one place that prints.

mod cli;
mod compose;
mod config;
mod container;
mod engine;
mod image;
mod lifecycle;
mod network;
mod reconcile;
mod registry;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use stack_api::Action;

fn main() -> ExitCode {
    // The hidden init mode: this process is becoming a container.
    let mut argv = std::env::args();
    match argv.nth(1).as_deref() {
        Some(stack_runtime::INIT_ARG) => stack_runtime::init_main(&argv.next().unwrap_or_default()),
        Some(stack_runtime::EXEC_ARG) => stack_runtime::exec_main(&argv.next().unwrap_or_default()),
        Some(network::DNS_ARG) => return network::dns_main(),
        _ => {}
    }
    let args = cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match &args.command {
        cli::Command::Config(c) => config::config(&args.global, c, &mut out),
        cli::Command::Graph(g) => config::graph(&args.global, g, &mut out),
        cli::Command::Container { command } => match container::run(command) {
            Ok(code) => {
                let _ = out.flush();
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            Err(e) => Err(e),
        },
        cli::Command::Image { command } => image::run(command),
        cli::Command::Network { command } => network::run(command),
        cli::Command::Pull(p) => config::pull(&args.global, p),
        cli::Command::Up(u) => match compose::up(&args.global, u) {
            Ok(code) => {
                let _ = out.flush();
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            Err(e) => Err(e),
        },
        cli::Command::Down(d) => compose::down(&args.global, d),
        cli::Command::Ps(p) => compose::ps(&args.global, p),
        cli::Command::Top(t) => compose::top(&args.global, &t.services),
        cli::Command::Images(i) => compose::images(&args.global, &i.services),
        cli::Command::Wait(w) => match compose::wait(&args.global, &w.services) {
            Ok(code) => {
                let _ = out.flush();
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            Err(e) => Err(e),
        },
        cli::Command::Ls { quiet } => compose::ls(*quiet),
        cli::Command::Stop(a) => compose::act(
            &args.global,
            Action::Stop,
            &a.services,
            a.timeout,
            None,
            false,
        ),
        cli::Command::Start(a) => {
            compose::act(&args.global, Action::Start, &a.services, None, None, false)
        }
        cli::Command::Restart(a) => compose::act(
            &args.global,
            Action::Restart,
            &a.services,
            a.timeout,
            None,
            false,
        ),
        cli::Command::Kill { signal, services } => compose::act(
            &args.global,
            Action::Kill,
            services,
            None,
            Some(signal.clone()),
            false,
        ),
        cli::Command::Pause(a) => {
            compose::act(&args.global, Action::Pause, &a.services, None, None, false)
        }
        cli::Command::Unpause(a) => compose::act(
            &args.global,
            Action::Unpause,
            &a.services,
            None,
            None,
            false,
        ),
        cli::Command::Rm {
            force,
            stop,
            services,
        } => compose::rm(&args.global, services, *force, *stop),
        cli::Command::Logs(l) => compose::logs(&args.global, l),
        cli::Command::Run(r) => match compose::run(&args.global, r) {
            Ok(code) => {
                let _ = out.flush();
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            Err(e) => Err(e),
        },
        cli::Command::Exec(x) => match compose::exec(&args.global, x) {
            Ok(code) => {
                let _ = out.flush();
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            Err(e) => Err(e),
        },
        cli::Command::Daemon { group } => engine::daemon(group.as_deref()),
        cli::Command::Port {
            service,
            port,
            index,
        } => compose::port(&args.global, service, port, *index),
        cli::Command::Login(l) => registry::login(
            l.server.as_deref(),
            l.username.as_deref(),
            l.password.as_deref(),
            l.password_stdin,
        ),
        cli::Command::Logout { server } => registry::logout(server.as_deref()),
        cli::Command::Version => {
            writeln!(out, "stack version {}", env!("CARGO_PKG_VERSION")).map_err(Into::into)
        }
        cli::Command::Completion { shell } => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "stack", &mut out);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("{}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// The async runtime for the parts that speak HTTP or netlink.
pub fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
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
        return format!("{le}\n{n} {noun} found");
    }
    format!("error: {e:#}")
}
