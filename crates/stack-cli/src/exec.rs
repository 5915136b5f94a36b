//! `stack exec` and `stack run` through the engine. The engine starts the
//! command in the replica (stack-runtime's `exec_piped`), or the one-off
//! container (`run_piped`): pipes, or a pty whose master it holds; and
//! relays its streams over the request's upgraded connection (stack-api's
//! `session`). The client puts its terminal in raw mode, sends its input,
//! its terminal's size and the signals it gets, prints the output, and
//! exits with the command's code.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use anyhow::bail;
use stack_api::session::{frame, read_frame, size_payload, Kind};
use stack_api::{ApiError, Control, ExecRequest, RunRequest, Session};
use stack_runtime::State;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use crate::container::stack_root;

/// The project's containers of `services` (all when empty), the running
/// ones unless `all`, by name.
pub fn of_services(project: &str, services: &[String], all: bool) -> Vec<State> {
    let mut out: Vec<State> = crate::lifecycle::project_containers(&stack_root(), Some(project))
        .into_iter()
        .filter(|(st, running)| {
            (all || *running)
                && (services.is_empty()
                    || services.contains(&crate::reconcile::label(st, stack_plan::LABEL_SERVICE)))
        })
        .map(|(st, _)| st)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The running replicas of a service (not its one-off containers).
pub fn replicas(project: &str, service: &str) -> Vec<State> {
    of_services(project, &[service.to_string()], false)
        .into_iter()
        .filter(|st| crate::reconcile::label(st, crate::supervision::LABEL_ONEOFF) != "True")
        .collect()
}

/// The running replica `index` of a service.
pub fn replica(project: &str, service: &str, index: u32) -> Result<State, ApiError> {
    replicas(project, service)
        .into_iter()
        .find(|st| crate::reconcile::label(st, stack_plan::LABEL_NUMBER) == index.to_string())
        .ok_or_else(|| ApiError {
            status: 409,
            message: format!(
                "service `{service}` is not running (replica {index} of project `{project}`)"
            ),
        })
}

/// Engine side: starts `req` in its replica.
pub fn start(project: &str, req: &ExecRequest) -> Result<Session, ApiError> {
    let st = replica(project, &req.service, req.index)?;
    let p = stack_runtime::Process {
        args: req.command.clone(),
        env: req.env.clone(),
        cwd: req.workdir.clone(),
        user: req.user.clone(),
        tty: req.tty && !req.detach,
        interactive: req.interactive && !req.detach,
        console_size: req.console_size,
    };
    let failed = |e: stack_runtime::RuntimeError| ApiError::internal(e.to_string());
    if req.detach {
        stack_runtime::exec_detached(&st, &p).map_err(failed)?;
        return Ok(Session {
            stdin: None,
            stdout: None,
            stderr: None,
            control: Box::new(Detached),
        });
    }
    let piped = stack_runtime::exec_piped(&st, &p).map_err(failed)?;
    // The exec process forwards what it gets to the command.
    let pid = piped.child.id() as i32;
    relayed(piped, p.interactive, move || Some(pid), None)
}

/// Engine side of `stack run`: the one-off container `req` asks for,
/// started with its streams for the server to relay (or, detached, its id
/// as the session's output), removed after it with `rm`.
pub fn run(req: &RunRequest) -> Result<Session, ApiError> {
    let internal = |e: anyhow::Error| ApiError::internal(format!("{e:#}"));
    let service = req
        .project
        .services
        .get(&req.service)
        .ok_or_else(|| ApiError::bad_request(format!("no such service: {}", req.service)))?;
    crate::reconcile::run_networks(&req.project, service).map_err(internal)?;
    let a = crate::reconcile::one_off_args(req, service).map_err(internal)?;
    let root = stack_root();
    if a.detach {
        crate::container::run_container(&root, &a).map_err(internal)?;
        let name = a.name.clone().unwrap_or_default();
        let (_, st) = crate::lifecycle::find(&root, &name).map_err(internal)?;
        return Ok(Session {
            stdin: None,
            stdout: Some(Box::new(std::io::Cursor::new(format!("{}\n", st.id)))),
            stderr: None,
            control: Box::new(Detached),
        });
    }
    let (id, piped) = crate::container::run_relayed(&root, &a).map_err(internal)?;
    // Signals go to its PID 1 (which hands them to the app), as `kill` sends them.
    let dir = stack_runtime::container_dir(&root, &id);
    let pid = move || {
        let st = stack_runtime::state::read(&dir).ok()?;
        stack_runtime::state::alive(&st).then_some(st.pid)
    };
    // `--rm`: removed as `container rm` removes one (cgroups, network,
    // directory), unless something (`down --remove-orphans`) was first.
    let after = move || {
        let root = stack_root();
        if !stack_runtime::container_dir(&root, &id).exists() {
            return;
        }
        if let Err(e) = crate::lifecycle::remove_one(&root, &id, true) {
            tracing::warn!(container = %id, "one-off container: {e:#}");
        }
    };
    let after: Option<Box<dyn FnOnce() + Send>> = a.rm.then(|| Box::new(after) as _);
    relayed(piped, a.interactive, pid, after)
}

/// The session of a process whose streams the runtime gave us: with a
/// terminal, its master is input and output both. Signals go to the
/// process `signal_to` names; `after` runs once it has ended.
fn relayed(
    mut piped: stack_runtime::Piped,
    interactive: bool,
    signal_to: impl Fn() -> Option<i32> + Send + Sync + 'static,
    after: Option<Box<dyn FnOnce() + Send>>,
) -> Result<Session, ApiError> {
    let mut session = Session {
        stdin: piped.stdin.take().map(|w| Box::new(w) as _),
        stdout: piped.stdout.take().map(|r| Box::new(r) as _),
        stderr: piped.stderr.take().map(|r| Box::new(r) as _),
        control: Box::new(Detached),
    };
    if let Some(master) = &piped.pty {
        let file = || {
            master
                .try_clone()
                .map(std::fs::File::from)
                .map_err(|e| ApiError::internal(e.to_string()))
        };
        if interactive {
            session.stdin = Some(Box::new(file()?));
        }
        session.stdout = Some(Box::new(file()?));
    }
    session.control = Box::new(Relayed {
        signal_to: Box::new(signal_to),
        pty: piped.pty.take(),
        child: Mutex::new(piped.child),
        after: Mutex::new(after),
    });
    Ok(session)
}

/// A relayed process: an exec process, or a one-off container's monitor.
struct Relayed {
    signal_to: Box<dyn Fn() -> Option<i32> + Send + Sync>,
    pty: Option<OwnedFd>,
    child: Mutex<std::process::Child>,
    after: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Control for Relayed {
    fn resize(&self, rows: u16, cols: u16) {
        if let Some(master) = &self.pty {
            let _ = stack_runtime::resize(master, rows, cols);
        }
    }

    fn signal(&self, signal: i32) {
        if let (Ok(sig), Some(pid)) = (
            nix::sys::signal::Signal::try_from(signal),
            (self.signal_to)().filter(|p| *p > 0),
        ) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    fn wait(&self) -> i32 {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        // 125: as Docker says when it could not tell.
        let code = child.wait().map_or(125, stack_runtime::exit_code_of);
        if let Some(after) = self.after.lock().unwrap_or_else(|e| e.into_inner()).take() {
            after();
        }
        code
    }
}

/// `exec -d`: nothing to relay, nothing to wait for.
struct Detached;

impl Control for Detached {
    fn resize(&self, _: u16, _: u16) {}
    fn signal(&self, _: i32) {}
    fn wait(&self) -> i32 {
        0
    }
}

/// Client side: relays our terminal (or pipes) to the session on `io`
/// until the command ends; its exit code.
pub async fn attach(
    io: impl AsyncRead + AsyncWrite + Send + 'static,
    tty: bool,
    interactive: bool,
) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                break;
            }
        }
    });
    let _raw = tty.then(stack_runtime::RawMode::enable);
    let forward = |kind: SignalKind, what: Box<dyn Fn() -> Vec<u8> + Send>| -> anyhow::Result<()> {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(what()).is_err() {
                    break;
                }
            }
        });
        Ok(())
    };
    if tty {
        // Its size now and whenever ours changes; keys (Ctrl-C too) go as input.
        let size = || {
            let (rows, cols) = stack_runtime::terminal_size().unwrap_or((24, 80));
            frame(Kind::Resize, &size_payload(rows, cols))
        };
        let _ = tx.send(size());
        forward(SignalKind::window_change(), Box::new(size))?;
    } else {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            forward(
                SignalKind::from_raw(sig),
                Box::new(move || frame(Kind::Signal, &sig.to_be_bytes())),
            )?;
        }
    }
    if interactive {
        let tx = tx.clone();
        // A thread: reading stdin blocks, and may go on after the command
        // ended (the process exits then).
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut buf = vec![0u8; 32 * 1024];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if tx.send(frame(Kind::Stdin, &buf[..n])).is_err() {
                    return;
                }
            }
            let _ = tx.send(frame(Kind::StdinEnd, &[]));
        });
    } else {
        let _ = tx.send(frame(Kind::StdinEnd, &[]));
    }
    loop {
        match read_frame(&mut rd).await {
            Ok(Some((Kind::Stdout, data))) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&data)?;
                out.flush()?;
            }
            Ok(Some((Kind::Stderr, data))) => std::io::stderr().write_all(&data)?,
            Ok(Some((Kind::Exit, data))) => {
                return stack_api::session::parse_i32(&data)
                    .ok_or_else(|| anyhow::anyhow!("the engine sent a malformed exit code"));
            }
            Ok(Some(_)) => bail!("the engine sent a frame a client does not expect"),
            Ok(None) => bail!("the engine ended the session before the command did (see its log)"),
            Err(e) => bail!("the session with the engine broke: {e}"),
        }
    }
}
