//! What supervision needs from the host: a stack file's health checks and
//! restart policies as the runtime records them on a container, those
//! records as the engine reads them, a container's exit as a future (a
//! pidfd on its monitor), and the probes themselves: a command inside the
//! container, or an HTTP or TCP check the engine makes from the
//! container's network namespace, so the image needs no curl or wget.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use stack_engine::{HealthConfig, Observed, Probe, ProbeResult, RestartPolicy, RestartWhen};
use stack_model::{Service, Value};
use stack_runtime::{Healthcheck, Restart, State};

/// The label compose puts the `depends_on` of a container in.
pub const LABEL_DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";

fn nanos(d: Option<stack_model::Duration>) -> Option<u64> {
    d.map(|d| d.0.max(0) as u64)
}

/// A service's health check as the runtime records it: `healthcheck:`
/// (`disable: true` or `test: [NONE]` turn the image's off too), then
/// `x-stack-probe` over it. `Ok(None)` with `true`: no health check at all.
pub fn health_of(service: &str, s: &Service) -> anyhow::Result<(Option<Healthcheck>, bool)> {
    let mut h = match &s.healthcheck {
        Some(c) if c.disable => return Ok((None, true)),
        Some(c) => Some(Healthcheck {
            test: c.test.clone().map(|t| t.0).unwrap_or_default(),
            interval: nanos(c.interval),
            timeout: nanos(c.timeout),
            start_period: nanos(c.start_period),
            retries: c.retries.map(|r| r as u32),
            start_interval: nanos(c.start_interval),
            probe: None,
        }),
        None => None,
    };
    if h.as_ref()
        .is_some_and(|h| h.test.first().is_some_and(|t| t == "NONE"))
    {
        return Ok((None, true));
    }
    if let Some(v) = s.extensions.get("x-stack-probe") {
        let p: stack_model::StackProbe =
            from_value(v).with_context(|| format!("service {service}: x-stack-probe"))?;
        let base = h.take().unwrap_or_default();
        let (test, probe) = match (p.http, p.tcp, p.exec) {
            (Some(http), None, None) => (
                Vec::new(),
                Some(stack_runtime::Probe::Http {
                    port: http.port,
                    path: http.path,
                    status: http.status,
                }),
            ),
            (None, Some(tcp), None) => (
                Vec::new(),
                Some(stack_runtime::Probe::Tcp { port: tcp.port }),
            ),
            (None, None, Some(exec)) => (exec.0, None),
            _ => bail!("service {service}: x-stack-probe: exactly one of `http`, `tcp` or `exec`"),
        };
        h = Some(Healthcheck {
            test,
            probe,
            interval: nanos(p.interval).or(base.interval),
            timeout: nanos(p.timeout).or(base.timeout),
            start_period: nanos(p.start_period).or(base.start_period),
            retries: p.retries.or(base.retries),
            start_interval: nanos(p.start_interval).or(base.start_interval),
        });
    }
    Ok((h, false))
}

fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(serde_json::to_value(v)?)?)
}

/// A service's restart policy: `restart:`, else `deploy.restart_policy`
/// (`none`, `on-failure`, `any`), as the runtime records it.
pub fn restart_of(service: &str, s: &Service) -> anyhow::Result<Option<Restart>> {
    let deploy = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref());
    if let Some(r) = &s.restart {
        let p = RestartPolicy::parse(r).map_err(|e| anyhow::anyhow!("service {service}: {e}"))?;
        return Ok(Some(Restart {
            name: r.split(':').next().unwrap_or_default().to_string(),
            max_attempts: p.max_attempts,
            delay: None,
            window: None,
        }));
    }
    let Some(d) = deploy else { return Ok(None) };
    let name = match d.condition.as_deref() {
        None | Some("any") => "always",
        Some("on-failure") => "on-failure",
        Some("none") => "no",
        Some(c) => bail!(
            "service {service}: deploy.restart_policy.condition `{c}`: none, on-failure or any"
        ),
    };
    Ok(Some(Restart {
        name: name.into(),
        max_attempts: d.max_attempts.map(|m| m as u32),
        delay: nanos(d.delay),
        window: nanos(d.window),
    }))
}

/// The `depends_on` label of a service: `SERVICE:CONDITION:RESTART[:false]`.
pub fn depends_label(s: &Service) -> String {
    s.depends_on
        .iter()
        .map(|(name, d)| {
            let mut e = format!("{name}:{}:{}", d.condition, d.restart);
            if !d.required {
                e.push_str(":false");
            }
            e
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A container as the engine sees it.
pub fn observed(root: &Path, st: &State, running: bool) -> Observed {
    let label = |k: &str| st.spec.labels.get(k).cloned().unwrap_or_default();
    let dir = stack_runtime::container_dir(root, &st.id);
    Observed {
        id: st.id.clone(),
        name: st.name.clone(),
        project: label(stack_plan::LABEL_PROJECT),
        service: label(stack_plan::LABEL_SERVICE),
        number: label(stack_plan::LABEL_NUMBER).parse().unwrap_or(0),
        hash: match &st.spec.network {
            // Stopped with its network namespace gone (a `down` cut short
            // after it unwired the container, a reboot): it cannot start
            // again as it is, so it no longer matches its service and is
            // made anew.
            stack_runtime::NetworkMode::Path(netns)
                if !running && !stack_net::netns_alive(netns) =>
            {
                format!("{}:network-lost", label(stack_plan::LABEL_HASH))
            }
            // Its monitor died while PID 1 was being set up: nobody will
            // say it runs, log it or record its end; it is made anew.
            _ if st.status == stack_runtime::Status::Created
                && running
                && !stack_runtime::state::process_running(st.monitor_pid) =>
            {
                format!("{}:setup-cut-short", label(stack_plan::LABEL_HASH))
            }
            _ => label(stack_plan::LABEL_HASH),
        },
        image: st.spec.image.clone(),
        running,
        exit_code: st.exit_code,
        finished_at: st.finished_at.clone(),
        stopped_by_user: crate::containers::stopped_by_user(&dir),
        one_off: label(LABEL_ONEOFF) == "True",
        auto_remove: st.spec.auto_remove,
        restart: st.spec.restart.as_ref().map(policy).unwrap_or_default(),
        health: st.spec.healthcheck.as_ref().and_then(health_config),
        depends_on: stack_engine::parse_depends_label(&label(LABEL_DEPENDS_ON)),
    }
}

fn policy(r: &Restart) -> RestartPolicy {
    RestartPolicy {
        when: match r.name.as_str() {
            "always" => RestartWhen::Always,
            "on-failure" => RestartWhen::OnFailure,
            "unless-stopped" => RestartWhen::UnlessStopped,
            _ => RestartWhen::No,
        },
        max_attempts: r.max_attempts,
        delay: r.delay.map(Duration::from_nanos),
        window: r.window.map(Duration::from_nanos),
    }
}

/// The runtime's record of a health check as the engine runs it (Docker's
/// defaults for what it leaves out); None when it checks nothing.
fn health_config(h: &Healthcheck) -> Option<HealthConfig> {
    let probe = match (&h.probe, h.test.first().map(String::as_str)) {
        (Some(stack_runtime::Probe::Http { port, path, status }), _) => Probe::Http {
            port: *port,
            path: path.clone(),
            status: *status,
        },
        (Some(stack_runtime::Probe::Tcp { port }), _) => Probe::Tcp { port: *port },
        (None, Some("CMD")) => Probe::Exec(h.test[1..].to_vec()),
        (None, Some("CMD-SHELL")) => {
            Probe::Exec(vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")])
        }
        _ => return None,
    };
    let mut c = HealthConfig::new(probe);
    let d = |n: Option<u64>, default: Duration| {
        n.filter(|n| *n > 0).map_or(default, Duration::from_nanos)
    };
    c.interval = d(h.interval, c.interval);
    c.timeout = d(h.timeout, c.timeout);
    c.start_period = d(h.start_period, c.start_period);
    c.start_interval = d(h.start_interval, c.start_interval);
    c.retries = h.retries.filter(|r| *r > 0).unwrap_or(c.retries);
    Some(c)
}

/// How long a monitor may take to record an exit after its PID 1 is gone.
const MONITOR_GRACE: Duration = Duration::from_secs(10);

/// Resolves when the container's monitor has recorded its exit (or is
/// gone without doing so: killed).
pub async fn wait_exit(root: &Path, id: &str) -> anyhow::Result<stack_engine::Exit> {
    let dir = stack_runtime::container_dir(root, id);
    let read = || stack_runtime::state::read(&dir).with_context(|| format!("container {id}"));
    let st = read()?;
    // Created (set up, or never started) and running both end in exited.
    if st.status != stack_runtime::Status::Exited {
        if stack_runtime::state::alive(&st) {
            if let Ok(fd) = stack_sys::pidfd::open(st.monitor_pid) {
                // Readable once the process has exited.
                // SAFETY: an OwnedFd is valid, open and the same until dropped.
                #[allow(unsafe_code)]
                let fd = unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        fd,
                        tokio::io::Interest::READABLE,
                    )
                }
                .map_err(|e| anyhow::anyhow!("cannot watch container {id}: {e}"))?;
                let _ = fd.readable().await?;
            }
        }
        // PID 1 gone is not the end: the monitor drains the output and
        // records the exit after it (a short while). What no monitor
        // records (it was killed) ends when it is gone, or after a bound
        // (its pid may be another process's by now).
        let mut waited = Duration::ZERO;
        loop {
            let st = read()?;
            let recorded = st.status == stack_runtime::Status::Exited;
            let pid1 = stack_runtime::state::alive(&st);
            let monitor =
                st.monitor_pid > 0 && stack_runtime::state::process_running(st.monitor_pid);
            if recorded || (!pid1 && (!monitor || waited >= MONITOR_GRACE)) {
                break;
            }
            let step = Duration::from_millis(if pid1 { 50 } else { 5 });
            tokio::time::sleep(step).await;
            if !pid1 {
                waited += step;
            }
        }
    }
    let st = stack_runtime::state::read(&dir).with_context(|| format!("container {id}"))?;
    Ok(stack_engine::Exit {
        code: st.exit_code.unwrap_or(137),
        oom_killed: st.oom_killed,
    })
}

/// Runs one probe (blocking: on a thread of its own).
pub fn probe(root: &Path, id: &str, h: &HealthConfig) -> ProbeResult {
    let failed = |output: String| ProbeResult { code: 1, output };
    let st = match stack_runtime::state::read(&stack_runtime::container_dir(root, id)) {
        Ok(st) if stack_runtime::state::alive(&st) => st,
        _ => return failed("the container is not running".into()),
    };
    match &h.probe {
        Probe::Exec(args) => match stack_runtime::exec_output(&st, args.clone(), h.timeout) {
            Ok((Some(code), output)) => ProbeResult { code, output },
            Ok((None, _)) => ProbeResult {
                code: -1,
                output: format!("Health check exceeded timeout ({:?})", h.timeout),
            },
            Err(e) => failed(format!("{e}")),
        },
        Probe::Tcp { port } => match in_netns(st.pid, *port, h.timeout, |_| Ok(String::new())) {
            Ok(_) => ProbeResult {
                code: 0,
                output: format!("connected to port {port}"),
            },
            Err(e) => failed(format!("port {port}: {e}")),
        },
        Probe::Http { port, path, status } => {
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: stack-probe\r\nConnection: close\r\n\r\n"
            );
            let get = move |s: &mut std::net::TcpStream| {
                s.write_all(request.as_bytes())?;
                let mut head = vec![0u8; 512];
                let n = s.read(&mut head)?;
                Ok(String::from_utf8_lossy(&head[..n])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string())
            };
            match in_netns(st.pid, *port, h.timeout, get) {
                Ok(line) => {
                    let code: Option<u16> =
                        line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
                    let ok = match (code, status) {
                        (Some(c), Some(want)) => c == *want,
                        (Some(c), None) => (200..400).contains(&c),
                        (None, _) => false,
                    };
                    ProbeResult {
                        code: if ok { 0 } else { 1 },
                        output: format!("GET {path}: {line}"),
                    }
                }
                Err(e) => failed(format!("GET {path} on port {port}: {e}")),
            }
        }
    }
}

/// Connects to `127.0.0.1:port` inside the network namespace of the
/// process `pid` (from a thread that enters it, so the engine's own
/// threads stay where they are), then runs `talk` on the connection.
fn in_netns(
    pid: i32,
    port: u16,
    timeout: Duration,
    talk: impl FnOnce(&mut std::net::TcpStream) -> std::io::Result<String> + Send + 'static,
) -> std::io::Result<String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        talk(&mut s)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the probe thread panicked")))
}
