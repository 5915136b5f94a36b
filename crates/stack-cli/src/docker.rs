//! The `docker` commands a stack user reaches for (`volume`, `system`,
//! `container diff|export|wait`, `image history`, and compose's `volumes`
//! and `export`), as clients of the engine's Docker API
//! (`$STACK_ROOT/docker.sock`): the same answers docker's clients get,
//! printed as docker prints them.

use std::io::{IsTerminal as _, Write};
use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use crate::cli::docker::{SystemCommand, VolumeCommand};
use crate::table::{self, Listing};

const V: &str = "/v1.47";

/// The engine's Docker API (the engine is started first if needed).
struct Api {
    rt: tokio::runtime::Runtime,
    client: stack_api::Client,
}

impl Api {
    fn new() -> anyhow::Result<Api> {
        let (rt, _) = crate::client::client()?;
        let client = stack_api::Client::new(crate::client::stack_root().join("docker.sock"));
        Ok(Api { rt, client })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        Ok(self.rt.block_on(
            self.client
                .call(method, &format!("{V}{path}"), body.as_ref()),
        )?)
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None)
    }

    /// A container's archive (`export`) to a file or standard output.
    /// A file is written beside, then renamed over `output`: a failed
    /// export leaves what was there.
    fn archive_to(&self, path: &str, output: Option<&Path>) -> anyhow::Result<()> {
        let path = format!("{V}{path}");
        let Some(out) = output else {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal: give -o FILE or redirect the output")
            }
            let mut to = std::io::stdout().lock();
            self.rt
                .block_on(self.client.get_bytes(&path, |b| to.write_all(b)))?;
            return Ok(to.flush()?);
        };
        let name = out.file_name().unwrap_or_default().to_string_lossy();
        let tmp = out.with_file_name(format!(".{name}.{}.part", std::process::id()));
        let written = (|| -> anyhow::Result<()> {
            let mut to = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create `{}`", tmp.display()))?;
            self.rt
                .block_on(self.client.get_bytes(&path, |b| to.write_all(b)))?;
            to.sync_all()?;
            std::fs::rename(&tmp, out).with_context(|| format!("cannot write `{}`", out.display()))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// `KEY=VALUE` flags as a map.
fn pairs(items: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), json!(v))),
            None if what == "label" => Ok((kv.clone(), json!(""))),
            None => bail!("invalid {what} `{kv}`: expected KEY=VALUE"),
        })
        .collect()
}

/// `-f key=value` flags as the API's `filters` query parameter.
fn filters(items: &[String]) -> anyhow::Result<String> {
    let mut m: Map<String, Value> = Map::new();
    for f in items {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid filter `{f}`: expected KEY=VALUE"))?;
        let e = m.entry(k.to_string()).or_insert_with(|| json!({}));
        e[v] = json!(true);
    }
    Ok(if m.is_empty() {
        String::new()
    } else {
        format!("filters={}", encode(&Value::Object(m).to_string()))
    })
}

use stack_image::registry::percent_encode as encode;

/// Asks before removing, as docker does (`-f` does not ask).
pub(crate) fn confirm(warning: &str, force: bool) -> anyhow::Result<bool> {
    if force {
        return Ok(true);
    }
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn object(v: &Value) -> Map<String, Value> {
    table::row(v.clone())
}

/// A value printed with a template, or as indented JSON (a list, as
/// docker's `inspect`).
fn inspect(out: &mut dyn Write, values: &[Value], format: Option<&str>) -> anyhow::Result<()> {
    match format {
        Some(f) if f != "json" => {
            for v in values {
                writeln!(out, "{}", table::render(f, &object(v)))?;
            }
        }
        _ => writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?,
    }
    Ok(())
}

const VOLUME_COLUMNS: &[(&str, &str)] = &[("Name", "VOLUME NAME"), ("Driver", "DRIVER")];

fn volume_rows(volumes: &Value) -> Vec<Map<String, Value>> {
    volumes["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let mut r = object(v);
            let labels = v["Labels"]
                .as_object()
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            r.insert("Labels".into(), json!(labels));
            r
        })
        .collect()
}

/// Docker's order of columns: the driver first.
const VOLUME_TABLE: &[(&str, &str)] = &[("Driver", "DRIVER"), ("Name", "VOLUME NAME")];

fn print_volumes(
    out: &mut dyn Write,
    rows: Vec<Map<String, Value>>,
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let columns = if quiet { VOLUME_COLUMNS } else { VOLUME_TABLE };
    table::print(out, format, quiet, &Listing { columns, rows })?;
    Ok(())
}

pub fn volume(cmd: &VolumeCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let api = Api::new()?;
    match cmd {
        VolumeCommand::Create {
            name,
            driver,
            labels,
            opts,
        } => {
            let body = json!({
                "Name": name.clone().unwrap_or_default(),
                "Driver": driver,
                "Labels": pairs(labels, "label")?,
                "DriverOpts": pairs(opts, "option")?,
            });
            let v = api.call("POST", "/volumes/create", Some(body))?;
            writeln!(out, "{}", v["Name"].as_str().unwrap_or_default())?;
        }
        VolumeCommand::Ls {
            quiet,
            format,
            filters: f,
        } => {
            let v = api.get(&format!("/volumes?{}", filters(f)?))?;
            print_volumes(out, volume_rows(&v), *quiet, format.as_deref())?;
        }
        VolumeCommand::Inspect { volumes, format } => {
            let mut found = Vec::new();
            for name in volumes {
                found.push(api.get(&format!("/volumes/{}", encode(name)))?);
            }
            inspect(out, &found, format.as_deref())?;
        }
        VolumeCommand::Rm { volumes, force } => {
            let mut failed = Vec::new();
            for name in volumes {
                match api.call(
                    "DELETE",
                    &format!("/volumes/{}?force={force}", encode(name)),
                    None,
                ) {
                    Ok(_) => writeln!(out, "{name}")?,
                    Err(e) => failed.push(format!("{e:#}")),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
        }
        VolumeCommand::Prune {
            all,
            force,
            filters: f,
        } => {
            let what = if *all {
                "all local volumes"
            } else {
                "anonymous local volumes"
            };
            if !confirm(
                &format!("WARNING! This will remove {what} not used by at least one container."),
                *force,
            )? {
                return Ok(());
            }
            let mut f = f.clone();
            if *all {
                f.push("all=true".into());
            }
            let v = api.call("POST", &format!("/volumes/prune?{}", filters(&f)?), None)?;
            let deleted: Vec<&str> = v["VolumesDeleted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !deleted.is_empty() {
                writeln!(out, "Deleted Volumes:")?;
                for d in deleted {
                    writeln!(out, "{d}")?;
                }
                writeln!(out)?;
            }
            writeln!(
                out,
                "Total reclaimed space: {}",
                table::size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            )?;
        }
    }
    Ok(())
}

/// A size and how much of it could go: `11.6MB (70%)`.
fn reclaimable(size: u64, of: u64) -> String {
    match (size * 100).checked_div(of) {
        Some(pct) if size > 0 => format!("{} ({pct}%)", table::size(size)),
        _ => table::size(size),
    }
}

fn df(api: &Api, verbose: bool, format: Option<&str>, out: &mut dyn Write) -> anyhow::Result<()> {
    let v = api.get("/system/df")?;
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let n = |x: &Value, k: &str| x[k].as_u64().unwrap_or(0);
    let (images, containers, volumes, cache) = (
        list("Images"),
        list("Containers"),
        list("Volumes"),
        list("BuildCache"),
    );
    let image_size: u64 = images.iter().map(|i| n(i, "Size")).sum();
    let active_images = images.iter().filter(|i| n(i, "Containers") > 0).count();
    let unused_images: u64 = images
        .iter()
        .filter(|i| n(i, "Containers") == 0)
        .map(|i| n(i, "Size"))
        .sum();
    let container_size: u64 = containers.iter().map(|c| n(c, "SizeRw")).sum();
    let running = |c: &Value| c["State"] == "running";
    let stopped_size: u64 = containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| n(c, "SizeRw"))
        .sum();
    let vol_size = |x: &Value| x["UsageData"]["Size"].as_u64().unwrap_or(0);
    let vol_used = |x: &Value| x["UsageData"]["RefCount"].as_u64().unwrap_or(0) > 0;
    let volume_size: u64 = volumes.iter().map(vol_size).sum();
    let unused_volumes: u64 = volumes.iter().filter(|x| !vol_used(x)).map(vol_size).sum();
    let cache_size: u64 = cache.iter().map(|c| n(c, "Size")).sum();
    let row = |t: &str, total: usize, active: usize, size: u64, reclaim: String| {
        object(
            &json!({"Type": t, "TotalCount": total.to_string(), "Active": active.to_string(),
            "Size": table::size(size), "Reclaimable": reclaim}),
        )
    };
    let rows = vec![
        row(
            "Images",
            images.len(),
            active_images,
            image_size,
            reclaimable(unused_images, image_size),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| running(c)).count(),
            container_size,
            reclaimable(stopped_size, container_size),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|x| vol_used(x)).count(),
            volume_size,
            reclaimable(unused_volumes, volume_size),
        ),
        row(
            "Build Cache",
            cache.len(),
            0,
            cache_size,
            table::size(cache_size),
        ),
    ];
    if !verbose {
        let columns = &[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ];
        table::print(out, format, false, &Listing { columns, rows })?;
        return Ok(());
    }
    writeln!(out, "Images space usage:\n")?;
    let rows = images
        .iter()
        .map(|i| {
            let tag = i["RepoTags"][0].as_str().unwrap_or("<none>:<none>");
            let (repo, tag) = tag.rsplit_once(':').unwrap_or((tag, "<none>"));
            object(&json!({"Repository": repo, "Tag": tag,
                "ID": i["Id"].as_str().unwrap_or_default().trim_start_matches("sha256:").chars().take(12).collect::<String>(),
                "CreatedSince": table::ago(i["Created"].as_i64().unwrap_or(0)),
                "Size": table::size(n(i, "Size")), "SharedSize": table::size(n(i, "SharedSize")),
                "UniqueSize": table::size(n(i, "Size").saturating_sub(n(i, "SharedSize"))),
                "Containers": n(i, "Containers").to_string()}))
        })
        .collect();
    let columns = &[
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("Size", "SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("Containers", "CONTAINERS"),
    ];
    table::print(out, None, false, &Listing { columns, rows })?;
    writeln!(out, "\nContainers space usage:\n")?;
    let rows = containers
        .iter()
        .map(|c| {
            object(&json!({"ID": c["Id"].as_str().unwrap_or_default().chars().take(12).collect::<String>(),
                "Image": c["Image"], "Command": c["Command"], "LocalVolumes": c["Mounts"].as_array().map_or(0, Vec::len).to_string(),
                "Size": table::size(n(c, "SizeRw")), "CreatedSince": table::ago(c["Created"].as_i64().unwrap_or(0)),
                "Status": c["Status"], "Names": c["Names"][0].as_str().unwrap_or_default().trim_start_matches('/')}))
        })
        .collect();
    let columns = &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Size", "SIZE"),
        ("CreatedSince", "CREATED"),
        ("Status", "STATUS"),
        ("Names", "NAMES"),
    ];
    table::print(out, None, false, &Listing { columns, rows })?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    let rows = volumes
        .iter()
        .map(|x| object(&json!({"Name": x["Name"], "Links": x["UsageData"]["RefCount"].as_u64().unwrap_or(0).to_string(), "Size": table::size(vol_size(x))})))
        .collect();
    table::print(
        out,
        None,
        false,
        &Listing {
            columns: &[
                ("Name", "VOLUME NAME"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ],
            rows,
        },
    )?;
    writeln!(out, "\nBuild cache usage: {}", table::size(cache_size))?;
    Ok(())
}

pub fn system(cmd: &SystemCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let api = Api::new()?;
    match cmd {
        SystemCommand::Df { verbose, format } => df(&api, *verbose, format.as_deref(), out)?,
        SystemCommand::Info { format } => {
            let v = api.get("/info")?;
            match format.as_deref() {
                Some("json") => writeln!(out, "{v}")?,
                Some(f) => writeln!(out, "{}", table::render(f, &object(&v)))?,
                None => {
                    let s = |k: &str| match &v[k] {
                        Value::String(s) => s.clone(),
                        x => x.to_string(),
                    };
                    writeln!(out, "Server:")?;
                    for (label, key) in [
                        ("Containers", "Containers"),
                        (" Running", "ContainersRunning"),
                        (" Paused", "ContainersPaused"),
                        (" Stopped", "ContainersStopped"),
                        ("Images", "Images"),
                        ("Server Version", "ServerVersion"),
                        ("Storage Driver", "Driver"),
                        ("Cgroup Driver", "CgroupDriver"),
                        ("Cgroup Version", "CgroupVersion"),
                        ("Kernel Version", "KernelVersion"),
                        ("Operating System", "OperatingSystem"),
                        ("OSType", "OSType"),
                        ("Architecture", "Architecture"),
                        ("CPUs", "NCPU"),
                        ("Total Memory", "MemTotal"),
                        ("Name", "Name"),
                        ("ID", "ID"),
                        ("Docker Root Dir", "DockerRootDir"),
                    ] {
                        if !v[key].is_null() {
                            let value = if key == "MemTotal" {
                                table::size(v[key].as_u64().unwrap_or(0))
                            } else {
                                s(key)
                            };
                            writeln!(out, " {label}: {value}")?;
                        }
                    }
                    if let Some(opts) = v["SecurityOptions"].as_array() {
                        writeln!(out, " Security Options:")?;
                        for o in opts {
                            writeln!(out, "  {}", o.as_str().unwrap_or_default())?;
                        }
                    }
                }
            }
        }
        SystemCommand::Prune {
            all,
            volumes,
            force,
            filters: f,
        } => {
            let mut warning = "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n".to_string();
            if *volumes {
                warning.push_str("  - all anonymous volumes not used by at least one container\n");
            }
            warning.push_str(if *all {
                "  - all images without at least one container associated to them\n  - all build cache\n"
            } else {
                "  - all dangling images\n  - unused build cache\n"
            });
            // (What the engine's prunes read: labels. Others are refused
            // rather than ignored: an ignored `until` would prune it all.)
            if let Some(bad) = f
                .iter()
                .find(|x| !x.starts_with("label=") && !x.starts_with("label!="))
            {
                bail!("the filter `{bad}` is not supported (label=KEY[=VALUE], label!=KEY)");
            }
            if !confirm(warning.trim_end(), *force)? {
                return Ok(());
            }
            let q = filters(f)?;
            let mut reclaimed = 0;
            let mut section = |title: &str, items: Vec<String>, space: u64| -> anyhow::Result<()> {
                reclaimed += space;
                if !items.is_empty() {
                    writeln!(out, "{title}:")?;
                    for i in items {
                        writeln!(out, "{i}")?;
                    }
                    writeln!(out)?;
                }
                Ok(())
            };
            let strings = |v: &Value, k: &str| -> Vec<String> {
                v[k].as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        o => o
                            .as_object()
                            .and_then(|o| o.values().next())
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    })
                    .collect()
            };
            let c = api.call("POST", &format!("/containers/prune?{q}"), None)?;
            section(
                "Deleted Containers",
                strings(&c, "ContainersDeleted"),
                c["SpaceReclaimed"].as_u64().unwrap_or(0),
            )?;
            let n = api.call("POST", &format!("/networks/prune?{q}"), None)?;
            section("Deleted Networks", strings(&n, "NetworksDeleted"), 0)?;
            if *volumes {
                let v = api.call("POST", &format!("/volumes/prune?{q}"), None)?;
                section(
                    "Deleted Volumes",
                    strings(&v, "VolumesDeleted"),
                    v["SpaceReclaimed"].as_u64().unwrap_or(0),
                )?;
            }
            let mut image_filters = f.clone();
            image_filters.push(format!("dangling={}", !all));
            let i = api.call(
                "POST",
                &format!("/images/prune?{}", filters(&image_filters)?),
                None,
            )?;
            section(
                "Deleted Images",
                strings(&i, "ImagesDeleted"),
                i["SpaceReclaimed"].as_u64().unwrap_or(0),
            )?;
            let (steps, collected) = stack_host::images::prune_build_cache(
                &stack_host::Host::new(crate::client::stack_root()),
            )?;
            section(
                &format!("Deleted build cache objects ({steps} steps)"),
                Vec::new(),
                collected.bytes,
            )?;
            writeln!(out, "Total reclaimed space: {}", table::size(reclaimed))?;
        }
        SystemCommand::Events {
            since,
            until,
            filters: f,
            format,
        } => {
            let mut q = vec![filters(f)?];
            for (k, t) in [("since", since), ("until", until)] {
                if let Some(t) = t {
                    let at = crate::when::parse(t, std::time::SystemTime::now())?;
                    let nanos = stack_sys::time::parse_rfc3339(&at).unwrap_or_default();
                    q.push(format!("{k}={}", nanos / 1_000_000_000));
                }
            }
            let path = format!("{V}/events?{}", q.join("&"));
            let mut failed = None;
            api.rt.block_on(api.client.get_lines(&path, |e| {
                if let Some(m) = e["message"].as_str().filter(|_| e.get("Type").is_none()) {
                    failed = Some(m.to_string());
                    return false;
                }
                let line = match format.as_deref() {
                    Some("json") => e.to_string(),
                    Some(t) => table::render(t, &object(&e)),
                    None => event_line(&e),
                };
                writeln!(out, "{line}").is_ok() && out.flush().is_ok()
            }))?;
            if let Some(m) = failed {
                bail!("{m}");
            }
        }
    }
    Ok(())
}

/// An event as `docker events` prints it:
/// `2026-12-04T10:00:00.000000000Z container start 3f2a… (image=x, name=y)`.
fn event_line(e: &Value) -> String {
    let nanos = e["timeNano"].as_i64().unwrap_or(0);
    let when = stack_sys::time::rfc3339(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32);
    let attrs = e["Actor"]["Attributes"]
        .as_object()
        .map(|a| {
            a.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "{when} {} {} {} ({attrs})",
        e["Type"].as_str().unwrap_or_default(),
        e["Action"].as_str().unwrap_or_default(),
        e["Actor"]["ID"].as_str().unwrap_or_default()
    )
}

/// `stack container diff`: `C /etc`, `A /new`, `D /gone`.
pub fn diff(container: &str) -> anyhow::Result<()> {
    let api = Api::new()?;
    let v = api.get(&format!("/containers/{}/changes", encode(container)))?;
    for c in v.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_u64() {
            Some(0) => 'C',
            Some(1) => 'A',
            _ => 'D',
        };
        println!("{kind} {}", c["Path"].as_str().unwrap_or_default());
    }
    Ok(())
}

/// `stack container commit`: the new image's id.
pub fn commit(
    container: &str,
    reference: Option<&str>,
    how: &crate::cli::container::CommitArgs,
) -> anyhow::Result<()> {
    let mut query = vec![
        ("container", container.to_string()),
        ("author", how.author.clone()),
        ("comment", how.message.clone()),
        ("pause", how.pause.to_string()),
    ];
    if let Some(r) = reference {
        let parsed = stack_image::reference::Reference::parse(r)?;
        if parsed.digest.is_some() {
            bail!("`{r}`: an image made by commit is named by a tag, not a digest");
        }
        let (repo, tag) = match &parsed.tag {
            Some(t) => (r.strip_suffix(&format!(":{t}")).unwrap_or(r), t.as_str()),
            None => (r, "latest"),
        };
        query.push(("repo", repo.to_string()));
        query.push(("tag", tag.to_string()));
    }
    query.extend(how.change.iter().map(|c| ("changes", c.clone())));
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let v = Api::new()?.call("POST", &format!("/commit?{}", q.join("&")), None)?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(())
}

/// `stack container attach`, compose's `attach`: the container's output
/// from now on, our input if it takes input (and `stdin`), our terminal's
/// size or (with `sig_proxy`) the signals we get relayed to it, until it
/// ends (its exit code) or we detach (`detach_keys`, 0).
pub fn attach(
    container: &str,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: Option<&str>,
) -> anyhow::Result<i32> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::signal::unix::{signal, SignalKind};
    let api = Api::new()?;
    let info = api.get(&format!("/containers/{}/json", encode(container)))?;
    if info["State"]["Running"] != json!(true) {
        bail!("container {container} is not running: start it first");
    }
    let id = info["Id"].as_str().unwrap_or(container).to_string();
    let tty = info["Config"]["Tty"] == json!(true);
    let mut input = stdin && info["Config"]["OpenStdin"] == json!(true);
    let path = |input: bool| {
        let mut p = format!(
            "{V}/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
            u8::from(input)
        );
        if let Some(k) = detach_keys {
            p.push_str(&format!("&detachKeys={}", encode(k)));
        }
        p
    };
    let socket = api.client.socket().to_path_buf();
    // A call to the API from a signal's task.
    let post = move |path: String| {
        let client = stack_api::Client::new(socket.clone());
        tokio::spawn(async move {
            let _ = client.call("POST", &format!("{V}{path}"), None).await;
        });
    };
    // Its exit code, asked for before the output is (as docker's CLI does):
    // the output can end before the exit is recorded.
    let waited = {
        let client = stack_api::Client::new(api.client.socket());
        let wait = format!("{V}/containers/{id}/wait");
        api.rt
            .spawn(async move { client.call("POST", &wait, None).await })
    };
    api.rt.block_on(async {
        let io = match api.client.hijack(&path(input)).await {
            // A service container's input is not the engine's to give: its
            // output then, and the user told.
            Err(stack_api::ClientError::Api { message, .. })
                if input && message.contains(stack_host::docker::NO_CONSOLE) =>
            {
                eprintln!("warning: {message}; attached to its output only");
                input = false;
                api.client.hijack(&path(false)).await?
            }
            r => r?,
        };
        let (mut rd, mut wr) = tokio::io::split(io);
        let _raw = (tty && input).then(stack_runtime::RawMode::enable);
        let relay =
            |kind: SignalKind, path: Box<dyn Fn() -> String + Send>| -> anyhow::Result<()> {
                let mut s = signal(kind)?;
                let post = post.clone();
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        post(path());
                    }
                });
                Ok(())
            };
        if tty {
            let id = id.clone();
            let size = move || {
                let (h, w) = stack_runtime::terminal_size().unwrap_or((24, 80));
                format!("/containers/{id}/resize?h={h}&w={w}")
            };
            post(size());
            relay(SignalKind::window_change(), Box::new(size))?;
        } else if sig_proxy {
            for sig in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGUSR2,
            ] {
                let id = id.clone();
                relay(
                    SignalKind::from_raw(sig),
                    Box::new(move || format!("/containers/{id}/kill?signal={sig}")),
                )?;
            }
        }
        if input {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            // A thread: reading stdin blocks, and may go on after the
            // container ended (the process exits then).
            std::thread::spawn(move || {
                use std::io::Read as _;
                let mut buf = vec![0u8; 32 * 1024];
                let mut stdin = std::io::stdin().lock();
                while let Ok(n @ 1..) = stdin.read(&mut buf) {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                // Our input ended: so does the container's.
                let _ = wr.shutdown().await;
            });
        }
        let mut buf = vec![0u8; 32 * 1024];
        let mut framed = Vec::new();
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if tty {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf[..n])?;
                out.flush()?;
                continue;
            }
            // Docker's frames: the stream, three zeros, the length.
            framed.extend_from_slice(&buf[..n]);
            while framed.len() >= 8 {
                let len = u32::from_be_bytes([framed[4], framed[5], framed[6], framed[7]]) as usize;
                if framed.len() < 8 + len {
                    break;
                }
                let chunk = &framed[8..8 + len];
                if framed[0] == 2 {
                    std::io::stderr().write_all(chunk)?;
                } else {
                    let mut out = std::io::stdout().lock();
                    out.write_all(chunk)?;
                    out.flush()?;
                }
                framed.drain(..8 + len);
            }
        }
        anyhow::Ok(())
    })?;
    // Ended (its code), or detached from (0).
    let after = api.get(&format!("/containers/{id}/json"))?;
    if after["State"]["Running"] == json!(true) {
        waited.abort();
        return Ok(0);
    }
    let code = api
        .rt
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(30), waited).await });
    match code {
        Ok(Ok(Ok(v))) => Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32),
        _ => Ok(after["State"]["ExitCode"].as_i64().unwrap_or(0) as i32),
    }
}

pub fn export(container: &str, output: Option<&Path>) -> anyhow::Result<()> {
    Api::new()?.archive_to(&format!("/containers/{}/export", encode(container)), output)
}

/// `stack container wait`: each one's exit code, once it has stopped.
pub fn wait(containers: &[String]) -> anyhow::Result<i32> {
    let api = Api::new()?;
    let mut failed = Vec::new();
    for c in containers {
        match api.call("POST", &format!("/containers/{}/wait", encode(c)), None) {
            Ok(v) => println!("{}", v["StatusCode"].as_i64().unwrap_or(-1)),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(0)
}

/// `stack image history`.
pub fn history(
    image: &str,
    quiet: bool,
    no_trunc: bool,
    human: bool,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let api = Api::new()?;
    let v = api.get(&format!("/images/{}/history", encode(image)))?;
    let rows = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or("<missing>");
            let id = if no_trunc || id == "<missing>" {
                id.to_string()
            } else {
                id.trim_start_matches("sha256:").chars().take(12).collect()
            };
            let created = h["Created"].as_i64().unwrap_or(0);
            let mut by = h["CreatedBy"].as_str().unwrap_or_default().to_string();
            if !no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            let size = h["Size"].as_u64().unwrap_or(0);
            object(&json!({
                "ID": id,
                "CreatedSince": if human { table::ago(created) } else { stack_sys::time::rfc3339(created, 0) },
                "CreatedBy": by,
                "Size": if human { table::size(size) } else { size.to_string() },
                "Comment": h["Comment"],
            }))
        })
        .collect();
    let columns = &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    table::print(
        &mut std::io::stdout().lock(),
        format,
        quiet,
        &Listing { columns, rows },
    )?;
    Ok(())
}

/// `stack volumes [SERVICE…]`: the named volumes the services mount, as
/// `volume ls` lists them.
pub fn project_volumes(
    project: &stack_model::Project,
    services: &[String],
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for (name, s) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        for m in &s.volumes {
            if let Some(key) = m
                .source
                .as_ref()
                .filter(|k| m.kind == "volume" && project.volumes.contains_key(*k))
            {
                names.insert(stack_host::volume_name(project, key));
            }
        }
    }
    let api = Api::new()?;
    let all = api.get("/volumes")?;
    let rows = volume_rows(&all)
        .into_iter()
        .filter(|r| r["Name"].as_str().is_some_and(|n| names.contains(n)))
        .collect();
    print_volumes(&mut std::io::stdout().lock(), rows, quiet, format)
}
