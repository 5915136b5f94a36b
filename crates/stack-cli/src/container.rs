//! `stack container ...`: drive one container directly.

use std::path::Path;

use anyhow::bail;
use stack_host::{containers, Host, Launch};

use crate::cli::container::{ContainerCommand, RunArgs};
use crate::client::stack_root;

/// Makes the container `a` describes, started as `how` says; the exit
/// code (a foreground run's), the id printed otherwise.
fn launch(host: &Host, a: &RunArgs, how: Launch) -> anyhow::Result<i32> {
    let launched = stack_host::create::launch(host, &a.config(), how, a.cidfile.as_deref())?;
    match launched.exit {
        Some(exit) => {
            if exit.oom_killed {
                let name = a.name.as_deref().unwrap_or(&launched.id[..12]);
                eprintln!("stack: container `{name}` was killed: out of memory");
            }
            Ok(exit.code)
        }
        None => {
            println!("{}", launched.id);
            Ok(0)
        }
    }
}

pub fn run(cmd: &ContainerCommand) -> anyhow::Result<i32> {
    let host = Host::new(stack_root());
    let root = host.root();
    match cmd {
        ContainerCommand::Run(a) if a.detach => launch(&host, a, Launch::Detached),
        ContainerCommand::Run(a) => launch(&host, a, Launch::Foreground),
        ContainerCommand::Create(a) => launch(&host, a, Launch::CreateOnly),
        ContainerCommand::Ls { all, quiet } => ls(root, *all, *quiet).map(|()| 0),
        ContainerCommand::Attach { how, container } => crate::docker::attach(
            container,
            !how.no_stdin,
            how.sig_proxy,
            how.detach_keys.as_deref(),
        ),
        ContainerCommand::Commit {
            how,
            container,
            reference,
        } => crate::docker::commit(container, reference.as_deref(), how).map(|()| 0),
        ContainerCommand::Diff { container } => crate::docker::diff(container).map(|()| 0),
        ContainerCommand::Export { container, output } => {
            crate::docker::export(container, output.as_deref()).map(|()| 0)
        }
        ContainerCommand::Rename {
            container,
            new_name,
        } => stack_host::containers::rename(&host, container, new_name).map(|_| 0),
        ContainerCommand::Wait { containers } => crate::docker::wait(containers),
        ContainerCommand::Update { limits, containers } => {
            let bytes =
                |v: &Option<String>| v.as_deref().map(stack_host::create::bytes).transpose();
            let new = stack_runtime::cgroup::Limits {
                memory: bytes(&limits.memory)?,
                memory_reservation: bytes(&limits.memory_reservation)?,
                memory_swap: match limits.memory_swap.as_deref() {
                    Some("-1") => Some(-1),
                    other => other.map(stack_host::create::bytes).transpose()?,
                },
                cpus: limits.cpus,
                cpu_shares: limits.cpu_shares,
                cpuset: limits.cpuset_cpus.clone(),
                // 0 is unlimited, as Docker takes it.
                pids: limits.pids_limit.map(|p| if p == 0 { -1 } else { p }),
                io_weight: limits.blkio_weight,
                ..Default::default()
            };
            let mut failed = Vec::new();
            for c in containers {
                match stack_host::containers::update(&host, c, &new) {
                    Ok(name) => println!("{name}"),
                    Err(e) => failed.push(format!("{e:#}")),
                }
            }
            if !failed.is_empty() {
                anyhow::bail!("{}", failed.join("\n"));
            }
            Ok(0)
        }
        ContainerCommand::Exec {
            tty,
            interactive,
            detach,
            env,
            user,
            workdir,
            container,
            command,
            privileged,
        } => containers::exec(
            root,
            container,
            &stack_runtime::Process {
                args: command.clone(),
                env: env.clone(),
                cwd: workdir.clone(),
                user: user.clone(),
                tty: *tty,
                interactive: *interactive,
                console_size: None,
                privileged: *privileged,
            },
            *detach,
        ),
        ContainerCommand::Top { container } => top(root, container).map(|()| 0),
        ContainerCommand::Port { container, port } => {
            self::port(&host, container, port.as_deref()).map(|()| 0)
        }
        ContainerCommand::Stats { args, containers } => crate::stats::show(args, || {
            let states: Vec<stack_runtime::State> = if containers.is_empty() {
                stack_host::containers::every(root)
                    .into_iter()
                    .filter(|(_, running)| args.all || *running)
                    .map(|(st, _)| st)
                    .collect()
            } else {
                containers
                    .iter()
                    .map(|c| stack_host::containers::find(root, c).map(|(_, st)| st))
                    .collect::<anyhow::Result<_>>()?
            };
            Ok(states.iter().map(stack_host::stats::read).collect())
        })
        .map(|()| 0),
        ContainerCommand::Pause { container } => pause(root, container, true).map(|()| 0),
        ContainerCommand::Unpause { container } => pause(root, container, false).map(|()| 0),
        ContainerCommand::Cp {
            archive,
            follow_link,
            src,
            dest,
        } => {
            let (src, dest) = (
                crate::copy::Side::parse(src),
                crate::copy::Side::parse(dest),
            );
            let how = crate::copy::How {
                archive: *archive,
                follow: *follow_link,
            };
            let done = crate::copy::copy(&src, &dest, &crate::copy::Here(root), how)?;
            eprintln!("{done}");
            Ok(0)
        }
        ContainerCommand::Inspect { container } => inspect(root, container).map(|()| 0),
        ContainerCommand::Logs {
            container,
            follow,
            timestamps,
            tail,
        } => {
            let tail = crate::cli::parse_tail(tail)?;
            logs(root, container, *follow, *timestamps, tail).map(|()| 0)
        }
        ContainerCommand::Start { containers } => {
            for c in containers {
                println!("{}", stack_host::containers::start_again(root, c)?);
            }
            Ok(0)
        }
        ContainerCommand::Stop { container, time } => stop(root, container, *time).map(|()| 0),
        ContainerCommand::Kill { container, signal } => kill(root, container, signal).map(|()| 0),
        ContainerCommand::Rm { containers, force } => rm(&host, containers, *force).map(|()| 0),
    }
}

pub fn ls(root: &Path, all_: bool, quiet: bool) -> anyhow::Result<()> {
    if !quiet {
        println!(
            "{:<14}{:<20}{:<30}STATUS",
            "CONTAINER ID", "NAME", "COMMAND"
        );
    }
    for (dir, st) in containers::all(root) {
        match st {
            Ok(st) => {
                if !all_ && !containers::running(&st) {
                    continue;
                }
                if quiet {
                    println!("{}", &st.id[..12]);
                    continue;
                }
                let mut cmd = format!("\"{}\"", st.spec.args.join(" "));
                if cmd.len() > 28 {
                    cmd = format!(
                        "{}…\"",
                        &cmd[..cmd
                            .char_indices()
                            .nth(25)
                            .map(|(i, _)| i)
                            .unwrap_or(cmd.len())]
                    );
                }
                println!(
                    "{:<14}{:<20}{:<30}{}",
                    &st.id[..12],
                    st.name,
                    cmd,
                    containers::status_text(&st)
                );
            }
            Err(e) => eprintln!("warning: {}: {e:#}", dir.display()),
        }
    }
    Ok(())
}

pub fn inspect(root: &Path, key: &str) -> anyhow::Result<()> {
    let (_, st) = containers::find(root, key)?;
    let mut v = serde_json::to_value(&st)?;
    v["running"] = serde_json::Value::Bool(containers::running(&st));
    // What the engine saw of a project's container: health and restarts
    // (when an engine runs: inspecting starts none).
    let project = st.spec.labels.get(stack_plan::LABEL_PROJECT);
    if let (Some(project), Some((rt, client))) = (project, crate::client::running_client()) {
        let path = format!("/v1/projects/{project}/containers?all=1");
        let rows: Vec<stack_api::ContainerSummary> =
            rt.block_on(client.get(&path)).unwrap_or_default();
        if let Some(c) = rows.iter().find(|c| c.id == st.id) {
            v["restarts"] = c.restarts.into();
            if !c.health.is_empty() {
                v["health"] = serde_json::json!({"status": c.health, "log": c.health_log});
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `container logs`: with `tail`, the last N records (read from the
/// log's end), then with `follow` on from there.
pub fn logs(
    root: &Path,
    key: &str,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
) -> anyhow::Result<()> {
    use std::io::Write;
    containers::read_log(root, key, follow, tail, |records| {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for r in records {
            let prefix = if timestamps {
                format!("{} ", r.time)
            } else {
                String::new()
            };
            let w: &mut dyn Write = if r.stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            write!(w, "{prefix}{}", r.log)?;
        }
        out.flush()?;
        Ok(())
    })
}

pub fn stop(root: &Path, key: &str, grace: Option<u64>) -> anyhow::Result<()> {
    println!("{}", containers::stop_one(root, key, grace)?);
    Ok(())
}

pub fn kill(root: &Path, key: &str, sig: &str) -> anyhow::Result<()> {
    println!("{}", containers::kill_one(root, key, sig)?);
    Ok(())
}

pub fn rm(host: &Host, keys: &[String], force: bool) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for key in keys {
        match containers::remove_one(host, key, force) {
            Ok(name) => println!("{name}"),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// `container port NAME [PORT[/PROTO]]`, as `docker port` prints it.
pub fn port(host: &Host, key: &str, which: Option<&str>) -> anyhow::Result<()> {
    let (_, st) = containers::find(host.root(), key)?;
    let all = stack_host::network::ports_of(host, &st.id)?;
    let wanted = which.map(|w| {
        if w.contains('/') {
            w.to_string()
        } else {
            format!("{w}/tcp")
        }
    });
    let shown: Vec<&String> = all
        .iter()
        .filter(|l| {
            wanted
                .as_ref()
                .is_none_or(|w| l.starts_with(&format!("{w} ")))
        })
        .collect();
    if shown.is_empty() && wanted.is_some() {
        bail!(
            "no public port `{}` published for `{}`",
            wanted.unwrap_or_default(),
            st.name
        );
    }
    for l in shown {
        match &wanted {
            Some(_) => println!("{}", l.split(" -> ").nth(1).unwrap_or_default()),
            None => println!("{l}"),
        }
    }
    Ok(())
}

/// `container top NAME`.
pub fn top(root: &Path, key: &str) -> anyhow::Result<()> {
    print_top(&containers::top_of(&containers::running_state(root, key)?).processes);
    Ok(())
}

/// A container's processes as `docker top` prints them.
pub fn print_top(processes: &[stack_api::TopProcess]) {
    println!(
        "{:<10} {:<8} {:<8} {:<3} {:<6} {:<7} {:<9} CMD",
        "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME"
    );
    for p in processes {
        println!(
            "{:<10} {:<8} {:<8} {:<3} {:<6} {:<7} {:<9} {}",
            p.uid, p.pid, p.ppid, p.c, p.stime, p.tty, p.time, p.cmd
        );
    }
}

pub fn pause(root: &Path, key: &str, frozen: bool) -> anyhow::Result<()> {
    println!("{}", containers::freeze(root, key, frozen)?);
    Ok(())
}
