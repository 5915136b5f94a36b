//! `stack exec` through the engine. The engine starts the command in the
//! replica (stack-runtime's `exec_piped`: pipes, or a pty whose master it
//! holds) and relays its streams over the request's upgraded connection
//! (stack-api's `session`); the client puts its terminal in raw mode,
//! sends its input, its terminal's size and the signals it gets, prints
//! the output, and exits with the command's code.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use anyhow::bail;
use stack_api::session::{frame, read_frame, size_payload, Kind};
use stack_api::{ApiError, Control, ExecRequest, Session};
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

/// The running replica `index` of a service.
pub fn replica(project: &str, service: &str, index: u32) -> Result<State, ApiError> {
    of_services(project, &[service.to_string()], false)
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
    let mut piped = stack_runtime::exec_piped(&st, &p).map_err(failed)?;
    let mut session = Session {
        stdin: piped.stdin.take().map(|w| Box::new(w) as _),
        stdout: piped.stdout.take().map(|r| Box::new(r) as _),
        stderr: piped.stderr.take().map(|r| Box::new(r) as _),
        control: Box::new(Detached),
    };
    // With a terminal, its master is input and output both.
    if let Some(master) = &piped.pty {
        let file = || {
            master
                .try_clone()
                .map(std::fs::File::from)
                .map_err(|e| ApiError::internal(e.to_string()))
        };
        if p.interactive {
            session.stdin = Some(Box::new(file()?));
        }
        session.stdout = Some(Box::new(file()?));
    }
    session.control = Box::new(Exec {
        pid: piped.child.id() as i32,
        pty: piped.pty.take(),
        child: Mutex::new(piped.child),
    });
    Ok(session)
}

/// A running exec: the exec process forwards signals to the command.
struct Exec {
    pid: i32,
    pty: Option<OwnedFd>,
    child: Mutex<std::process::Child>,
}

impl Control for Exec {
    fn resize(&self, rows: u16, cols: u16) {
        if let Some(master) = &self.pty {
            let _ = stack_runtime::resize(master, rows, cols);
        }
    }

    fn signal(&self, signal: i32) {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(signal) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig);
        }
    }

    fn wait(&self) -> i32 {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        // 125: as Docker says when it could not tell.
        child.wait().map_or(125, stack_runtime::exit_code_of)
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
