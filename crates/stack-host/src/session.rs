//! The engine's side of `stack exec` and `stack run`: the command started
//! in the replica (stack-runtime's `exec_piped`), or the one-off container
//! (`run_piped`), with pipes or a pty whose master it holds, as a session
//! whose streams the server relays over the request's upgraded connection
//! (stack-api's `session`); and a project's replicas, found by service.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use stack_api::{ApiError, Control, ExecRequest, RunRequest, Session};
use stack_runtime::State;

use crate::api_error;
use crate::containers::label;
use crate::{Host, Launch};

/// The project's containers of `services` (all when empty), the running
/// ones unless `all`, by name.
pub fn of_services(root: &Path, project: &str, services: &[String], all: bool) -> Vec<State> {
    let mut out: Vec<State> = crate::containers::project_containers(root, Some(project))
        .into_iter()
        .filter(|(st, running)| {
            (all || *running)
                && (services.is_empty() || services.contains(&label(st, stack_plan::LABEL_SERVICE)))
        })
        .map(|(st, _)| st)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The running replicas of a service (not its one-off containers).
pub fn replicas(root: &Path, project: &str, service: &str) -> Vec<State> {
    of_services(root, project, &[service.to_string()], false)
        .into_iter()
        .filter(|st| label(st, crate::supervision::LABEL_ONEOFF) != "True")
        .collect()
}

/// The running replica `index` of a service.
pub fn replica(root: &Path, project: &str, service: &str, index: u32) -> Result<State, ApiError> {
    replicas(root, project, service)
        .into_iter()
        .find(|st| label(st, stack_plan::LABEL_NUMBER) == index.to_string())
        .ok_or_else(|| ApiError {
            status: 409,
            message: format!(
                "service `{service}` is not running (replica {index} of project `{project}`)"
            ),
        })
}

/// Starts `req` in its replica.
pub fn exec(host: &Host, project: &str, req: &ExecRequest) -> Result<Session, ApiError> {
    let st = replica(host.root(), project, &req.service, req.index)?;
    let p = stack_runtime::Process {
        args: req.command.clone(),
        env: req.env.clone(),
        cwd: req.workdir.clone(),
        user: req.user.clone(),
        tty: req.tty && !req.detach,
        interactive: req.interactive && !req.detach,
        console_size: req.console_size,
        privileged: req.privileged,
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

/// `stack run`: the one-off container `req` asks for, started with its
/// streams for the server to relay (or, detached, its id as the session's
/// output), removed after it with `rm`.
pub fn run(host: &Host, req: &RunRequest) -> Result<Session, ApiError> {
    let service = req
        .project
        .services
        .get(&req.service)
        .ok_or_else(|| ApiError::bad_request(format!("no such service: {}", req.service)))?;
    crate::keys::check(&req.project, std::slice::from_ref(&req.service))
        .into_result()
        .map_err(api_error)?;
    crate::driver::run_networks(host, &req.project, service).map_err(api_error)?;
    let a = crate::service::one_off(host, req, service).map_err(api_error)?;
    let root = host.root();
    if req.detach {
        let id = crate::create::launch(host, &a, Launch::Detached, None)
            .map_err(api_error)?
            .id;
        return Ok(Session {
            stdin: None,
            stdout: Some(Box::new(std::io::Cursor::new(format!("{id}\n")))),
            stderr: None,
            control: Box::new(Detached),
        });
    }
    let (id, piped) = crate::create::launch_relayed(host, &a).map_err(api_error)?;
    // Signals go to its PID 1 (which hands them to the app), as `kill` sends them.
    let dir = stack_runtime::container_dir(root, &id);
    let pid = move || {
        let st = stack_runtime::state::read(&dir).ok()?;
        stack_runtime::state::alive(&st).then_some(st.pid)
    };
    // `--rm`: removed as `container rm` removes one (cgroups, network,
    // directory), unless something (`down --remove-orphans`) was first.
    let host = host.clone();
    let after = move || {
        if !stack_runtime::container_dir(host.root(), &id).exists() {
            return;
        }
        if let Err(e) = crate::containers::remove_one(&host, &id, true) {
            tracing::warn!(container = %id, "one-off container: {e:#}");
        }
    };
    let after: Option<Box<dyn FnOnce() + Send>> = a.rm.then(|| Box::new(after) as _);
    relayed(piped, a.interactive, pid, after)
}

/// The session of a process whose streams the runtime gave us: with a
/// terminal, its master is input and output both. Signals go to the
/// process `signal_to` names; `after` runs once it has ended.
pub(crate) fn relayed(
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
pub(crate) struct Detached;

impl Control for Detached {
    fn resize(&self, _: u16, _: u16) {}
    fn signal(&self, _: i32) {}
    fn wait(&self) -> i32 {
        0
    }
}
