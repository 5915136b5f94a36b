//! The reconciler, pure: from what the stack file wants (services with their
//! config hashes and replica counts, networks) and what the host has
//! (containers carrying compose labels, networks), the operations that close
//! the gap, each with its cause, in dependency waves. No I/O: the executor
//! runs the plan; this crate only decides it.

use std::collections::BTreeSet;
use std::fmt;

mod hash;
pub use hash::hash_service;

/// The labels a container of a project carries (Docker Compose's names, so
/// tools that read them keep working).
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";

/// A service as the stack file wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub service: String,
    /// The hash of its normalized configuration: a change recreates it.
    pub hash: String,
    pub replicas: u32,
    /// `container_name:` (one replica only).
    pub container_name: Option<String>,
    /// Dependencies whose recreation restarts it (`depends_on: {X: {restart: true}}`).
    pub restart_with: Vec<String>,
}

/// A container of the project that exists.
#[derive(Clone, Debug, PartialEq)]
pub struct Existing {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub hash: String,
    pub running: bool,
}

/// A network of the project: its key in the file, its name on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedNetwork {
    pub key: String,
    pub name: String,
    pub external: bool,
}

#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// Recreate the services named (all, when none is) even if unchanged.
    pub force_recreate: bool,
    /// The services brought up only because named ones depend on them:
    /// recreated if unchanged only with `always_recreate_deps`.
    pub dependencies: Vec<String>,
    pub always_recreate_deps: bool,
    /// Containers named as compose v1 named them (`project_service_1`).
    pub compatibility: bool,
    /// Services whose image was built anew: recreated.
    pub rebuilt: Vec<String>,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    /// Create what is missing or changed, start nothing (`up --no-start`,
    /// `create`).
    pub no_start: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    CreateNetwork {
        key: String,
        name: String,
    },
    /// Create and start replica `number` of `service` as `name`.
    Run {
        service: String,
        number: u32,
        name: String,
        cause: String,
    },
    /// Create replica `number` of `service` as `name`, not started.
    Create {
        service: String,
        number: u32,
        name: String,
        cause: String,
    },
    Start {
        id: String,
        name: String,
        service: String,
        cause: String,
    },
    /// Stop and start again, in place.
    Restart {
        id: String,
        name: String,
        cause: String,
    },
    /// Stop and remove.
    Remove {
        id: String,
        name: String,
        cause: String,
    },
    RemoveNetwork {
        name: String,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateNetwork { name, key } => write!(f, "create network {name} (networks.{key})"),
            Op::Run { name, cause, .. } => write!(f, "create and start container {name} ({cause})"),
            Op::Create { name, cause, .. } => write!(f, "create container {name} ({cause})"),
            Op::Start { name, cause, .. } => write!(f, "start container {name} ({cause})"),
            Op::Restart { name, cause, .. } => write!(f, "restart container {name} ({cause})"),
            Op::Remove { name, cause, .. } => write!(f, "remove container {name} ({cause})"),
            Op::RemoveNetwork { name } => write!(f, "remove network {name}"),
        }
    }
}

/// Operations in waves: the tasks of a wave run in parallel, the operations
/// of a task one after the other.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub waves: Vec<Vec<Vec<Op>>>,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.waves.iter().flatten().flatten()
    }
    pub fn is_empty(&self) -> bool {
        self.ops().next().is_none()
    }
}

#[derive(Debug, PartialEq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// `project-service-N` (compose v1's `project_service_N` with
/// `compatibility`), or the `container_name`.
pub fn container_name(project: &str, w: &Wanted, number: u32, compatibility: bool) -> String {
    let sep = if compatibility { '_' } else { '-' };
    match &w.container_name {
        Some(n) => n.clone(),
        None => format!("{project}{sep}{}{sep}{number}", w.service),
    }
}

/// The plan for `up`: `waves` is the start order of the services (from the
/// dependency graph); `host_networks` the networks the host has.
pub fn up(
    project: &str,
    wanted: &[Wanted],
    waves: &[Vec<String>],
    networks: &[WantedNetwork],
    host_networks: &[String],
    existing: &[Existing],
    opts: &UpOptions,
) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut first = Vec::new();
    for n in networks {
        if host_networks.contains(&n.name) {
            continue;
        }
        if n.external {
            return Err(PlanError(format!(
                "network {} declared as external, but could not be found: create it first",
                n.name
            )));
        }
        first.push(vec![Op::CreateNetwork {
            key: n.key.clone(),
            name: n.name.clone(),
        }]);
    }
    let known: BTreeSet<&str> = wanted.iter().map(|w| w.service.as_str()).collect();
    let orphans: Vec<&Existing> = existing
        .iter()
        .filter(|e| !known.contains(e.service.as_str()))
        .collect();
    if !orphans.is_empty() {
        if opts.remove_orphans {
            for o in &orphans {
                first.push(vec![Op::Remove {
                    id: o.id.clone(),
                    name: o.name.clone(),
                    cause: "orphan: its service is gone from the file".into(),
                }]);
            }
        } else {
            let names: Vec<&str> = orphans.iter().map(|o| o.name.as_str()).collect();
            plan.warnings.push(format!(
                "found orphan containers ({}) for this project: remove them with --remove-orphans",
                names.join(", ")
            ));
        }
    }
    if !first.is_empty() {
        plan.waves.push(first);
    }
    // Services some of whose containers are (re)created by this plan.
    let mut recreated: BTreeSet<&str> = BTreeSet::new();
    for wave in waves {
        let mut tasks = Vec::new();
        for service in wave {
            let Some(w) = wanted.iter().find(|w| &w.service == service) else {
                continue;
            };
            if w.container_name.is_some() && w.replicas > 1 {
                return Err(PlanError(format!(
                    "service {}: container_name `{}` can be used by one container only, but {} replicas are wanted",
                    w.service,
                    w.container_name.as_deref().unwrap_or_default(),
                    w.replicas
                )));
            }
            let mut mine: Vec<&Existing> =
                existing.iter().filter(|e| e.service == w.service).collect();
            mine.sort_by_key(|e| e.number);
            let restarted_by = w
                .restart_with
                .iter()
                .find(|d| recreated.contains(d.as_str()));
            for number in 1..=w.replicas {
                let name = container_name(project, w, number, opts.compatibility);
                let mut task = Vec::new();
                let create = |cause: &str| match opts.no_start {
                    false => Op::Run {
                        service: w.service.clone(),
                        number,
                        name: name.clone(),
                        cause: cause.into(),
                    },
                    true => Op::Create {
                        service: w.service.clone(),
                        number,
                        name: name.clone(),
                        cause: cause.into(),
                    },
                };
                let (forced, flag) = match opts.dependencies.contains(&w.service) {
                    true => (opts.always_recreate_deps, "--always-recreate-deps"),
                    false => (opts.force_recreate, "--force-recreate"),
                };
                match mine.iter().find(|e| e.number == number) {
                    None => task.push(create("not created yet")),
                    Some(e)
                        if (e.hash != w.hash && !opts.no_recreate)
                            || forced
                            || opts.rebuilt.contains(&w.service) =>
                    {
                        let cause = if forced {
                            flag
                        } else if e.hash == w.hash {
                            "its image was built anew"
                        } else {
                            "its configuration changed"
                        };
                        task.push(Op::Remove {
                            id: e.id.clone(),
                            name: e.name.clone(),
                            cause: cause.into(),
                        });
                        task.push(create(cause));
                    }
                    // Nothing is started (or restarted) with no_start.
                    Some(_) if opts.no_start => {}
                    Some(e) if !e.running => task.push(Op::Start {
                        id: e.id.clone(),
                        name: e.name.clone(),
                        service: w.service.clone(),
                        cause: "stopped".into(),
                    }),
                    Some(e) => {
                        if let Some(d) = restarted_by {
                            task.push(Op::Restart {
                                id: e.id.clone(),
                                name: e.name.clone(),
                                cause: format!("{d} was recreated (depends_on.restart)"),
                            });
                        }
                    }
                }
                if task
                    .iter()
                    .any(|op| matches!(op, Op::Run { .. } | Op::Create { .. }))
                {
                    recreated.insert(w.service.as_str());
                }
                if !task.is_empty() {
                    tasks.push(task);
                }
            }
            for e in mine.iter().filter(|e| e.number > w.replicas) {
                tasks.push(vec![Op::Remove {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    cause: format!("scaled down to {}", w.replicas),
                }]);
            }
        }
        if !tasks.is_empty() {
            plan.waves.push(tasks);
        }
    }
    Ok(plan)
}

/// The plan for `down`: containers in reverse start order (unknown services
/// first), then the project's own networks.
pub fn down(
    stop_waves: &[Vec<String>],
    networks: &[WantedNetwork],
    host_networks: &[String],
    existing: &[Existing],
) -> Plan {
    let mut plan = Plan::default();
    let listed: BTreeSet<&str> = stop_waves.iter().flatten().map(String::as_str).collect();
    let remove = |e: &Existing| {
        vec![Op::Remove {
            id: e.id.clone(),
            name: e.name.clone(),
            cause: "down".into(),
        }]
    };
    let strays: Vec<Vec<Op>> = existing
        .iter()
        .filter(|e| !listed.contains(e.service.as_str()))
        .map(remove)
        .collect();
    if !strays.is_empty() {
        plan.waves.push(strays);
    }
    for wave in stop_waves {
        let tasks: Vec<Vec<Op>> = existing
            .iter()
            .filter(|e| wave.contains(&e.service))
            .map(remove)
            .collect();
        if !tasks.is_empty() {
            plan.waves.push(tasks);
        }
    }
    let nets: Vec<Vec<Op>> = networks
        .iter()
        .filter(|n| !n.external && host_networks.contains(&n.name))
        .map(|n| {
            vec![Op::RemoveNetwork {
                name: n.name.clone(),
            }]
        })
        .collect();
    if !nets.is_empty() {
        plan.waves.push(nets);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(service: &str, hash: &str, replicas: u32) -> Wanted {
        Wanted {
            service: service.into(),
            hash: hash.into(),
            replicas,
            container_name: None,
            restart_with: vec![],
        }
    }

    fn e(service: &str, number: u32, hash: &str, running: bool) -> Existing {
        Existing {
            id: format!("id-{service}-{number}"),
            name: format!("p-{service}-{number}"),
            service: service.into(),
            number,
            hash: hash.into(),
            running,
        }
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.waves
            .iter()
            .enumerate()
            .flat_map(|(i, wave)| wave.iter().flatten().map(move |op| format!("{i}: {op}")))
            .collect()
    }

    fn waves(w: &[&[&str]]) -> Vec<Vec<String>> {
        w.iter()
            .map(|x| x.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_fresh_up_creates_networks_then_services_in_waves() {
        let nets = [WantedNetwork {
            key: "default".into(),
            name: "p_default".into(),
            external: false,
        }];
        let p = up(
            "p",
            &[w("db", "h1", 1), w("web", "h2", 2)],
            &waves(&[&["db"], &["web"]]),
            &nets,
            &[],
            &[],
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&p),
            [
                "0: create network p_default (networks.default)",
                "1: create and start container p-db-1 (not created yet)",
                "2: create and start container p-web-1 (not created yet)",
                "2: create and start container p-web-2 (not created yet)",
            ]
        );
    }

    #[test]
    fn a_recreated_dependency_restarts_the_dependents_that_ask_for_it() {
        let have = [
            e("db", 1, "h1", true),
            e("api", 1, "h2", true),
            e("worker", 1, "h3", true),
        ];
        let order = waves(&[&["db"], &["api", "worker"]]);
        let api = Wanted {
            restart_with: vec!["db".into()],
            ..w("api", "h2", 1)
        };
        let wanted = |db_hash: &str| [w("db", db_hash, 1), api.clone(), w("worker", "h3", 1)];
        let p = up(
            "p",
            &wanted("h9"),
            &order,
            &[],
            &[],
            &have,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&p),
            [
                "0: remove container p-db-1 (its configuration changed)",
                "0: create and start container p-db-1 (its configuration changed)",
                "1: restart container p-api-1 (db was recreated (depends_on.restart))",
            ]
        );
        // db unchanged: nothing restarts.
        let p = up(
            "p",
            &wanted("h1"),
            &order,
            &[],
            &[],
            &have,
            &Default::default(),
        )
        .unwrap();
        assert!(p.is_empty(), "{:?}", lines(&p));
    }

    #[test]
    fn a_second_up_changes_nothing_and_a_changed_service_is_recreated_alone() {
        let nets = [WantedNetwork {
            key: "default".into(),
            name: "p_default".into(),
            external: false,
        }];
        let have = [e("db", 1, "h1", true), e("web", 1, "h2", true)];
        let order = waves(&[&["db"], &["web"]]);
        let same = up(
            "p",
            &[w("db", "h1", 1), w("web", "h2", 1)],
            &order,
            &nets,
            &["p_default".into()],
            &have,
            &Default::default(),
        )
        .unwrap();
        assert!(same.is_empty(), "{:?}", lines(&same));
        let changed = up(
            "p",
            &[w("db", "h1", 1), w("web", "h3", 1)],
            &order,
            &nets,
            &["p_default".into()],
            &have,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&changed),
            [
                "0: remove container p-web-1 (its configuration changed)",
                "0: create and start container p-web-1 (its configuration changed)",
            ]
        );
        let kept = up(
            "p",
            &[w("db", "h1", 1), w("web", "h3", 1)],
            &order,
            &nets,
            &["p_default".into()],
            &have,
            &UpOptions {
                no_recreate: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(kept.is_empty());
        let forced = up(
            "p",
            &[w("db", "h1", 1), w("web", "h2", 1)],
            &order,
            &nets,
            &["p_default".into()],
            &have,
            &UpOptions {
                force_recreate: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            forced.ops().filter(|o| matches!(o, Op::Run { .. })).count(),
            2
        );
        // `up --force-recreate web`: db, only its dependency, stays unless
        // --always-recreate-deps.
        let recreated = |always_recreate_deps| {
            let p = up(
                "p",
                &[w("db", "h1", 1), w("web", "h2", 1)],
                &order,
                &nets,
                &["p_default".into()],
                &have,
                &UpOptions {
                    force_recreate: true,
                    dependencies: vec!["db".into()],
                    always_recreate_deps,
                    ..Default::default()
                },
            )
            .unwrap();
            p.ops()
                .filter_map(|o| match o {
                    Op::Run { service, cause, .. } => Some(format!("{service}: {cause}")),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(recreated(false), ["web: --force-recreate"]);
        assert_eq!(
            recreated(true),
            ["db: --always-recreate-deps", "web: --force-recreate"]
        );
    }

    #[test]
    fn no_start_creates_what_is_missing_or_changed_and_starts_nothing() {
        let mut api = w("api", "a1", 2);
        api.restart_with = vec!["db".into()];
        let have = [
            e("db", 1, "h1", true),
            e("api", 1, "a1", false),
            e("web", 1, "w1", true),
        ];
        let p = up(
            "p",
            &[w("db", "h2", 1), api, w("web", "w1", 1), w("new", "n1", 1)],
            &waves(&[&["db", "new"], &["api", "web"]]),
            &[],
            &[],
            &have,
            &UpOptions {
                no_start: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            lines(&p),
            [
                "0: remove container p-db-1 (its configuration changed)",
                "0: create container p-db-1 (its configuration changed)",
                "0: create container p-new-1 (not created yet)",
                "1: create container p-api-2 (not created yet)",
            ]
        );
    }

    #[test]
    fn scale_stopped_containers_and_orphans() {
        let have = [
            e("web", 1, "h", false),
            e("web", 2, "h", true),
            e("web", 3, "h", true),
            e("old", 1, "x", true),
        ];
        let p = up(
            "p",
            &[w("web", "h", 2)],
            &waves(&[&["web"]]),
            &[],
            &[],
            &have,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&p),
            [
                "0: start container p-web-1 (stopped)",
                "0: remove container p-web-3 (scaled down to 2)"
            ]
        );
        assert!(
            p.warnings[0].contains("orphan containers (p-old-1)"),
            "{:?}",
            p.warnings
        );
        let p = up(
            "p",
            &[w("web", "h", 2)],
            &waves(&[&["web"]]),
            &[],
            &[],
            &have,
            &UpOptions {
                remove_orphans: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            lines(&p)[0],
            "0: remove container p-old-1 (orphan: its service is gone from the file)"
        );
    }

    #[test]
    fn impossible_wishes_are_errors() {
        let nets = [WantedNetwork {
            key: "shared".into(),
            name: "shared".into(),
            external: true,
        }];
        let err = up("p", &[], &[], &nets, &[], &[], &Default::default()).unwrap_err();
        assert!(err.0.contains("external, but could not be found"), "{err}");
        let mut one = w("web", "h", 2);
        one.container_name = Some("fixed".into());
        let err = up(
            "p",
            &[one],
            &waves(&[&["web"]]),
            &[],
            &[],
            &[],
            &Default::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("container_name `fixed`"), "{err}");
    }

    #[test]
    fn down_goes_in_reverse_order_then_takes_the_networks() {
        let nets = [
            WantedNetwork {
                key: "default".into(),
                name: "p_default".into(),
                external: false,
            },
            WantedNetwork {
                key: "shared".into(),
                name: "shared".into(),
                external: true,
            },
        ];
        let have = [
            e("db", 1, "h", true),
            e("web", 1, "h", true),
            e("gone", 1, "h", false),
        ];
        let p = down(
            &waves(&[&["web"], &["db"]]),
            &nets,
            &["p_default".into(), "shared".into()],
            &have,
        );
        assert_eq!(
            lines(&p),
            [
                "0: remove container p-gone-1 (down)",
                "1: remove container p-web-1 (down)",
                "2: remove container p-db-1 (down)",
                "3: remove network p_default",
            ]
        );
    }
}
