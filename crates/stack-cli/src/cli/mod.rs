//! The command line, as docker compose users know it.

pub mod container;
pub mod docker;
mod examples;
pub mod image;
pub mod network;
#[cfg(test)]
mod parity;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The command line with an example in each command's help.
pub fn command() -> clap::Command {
    each(
        <Cli as clap::CommandFactory>::command(),
        &|c, path| match examples::EXAMPLES.iter().find(|(p, _)| *p == path) {
            Some((_, e)) if c.get_after_help().is_none() => {
                c.after_help(format!("Examples:\n  {e}"))
            }
            _ => c,
        },
    )
}

/// `f` on a command and each of its subcommands, with their paths
/// (`""`, `"container run"`).
pub fn each(c: clap::Command, f: &dyn Fn(clap::Command, &str) -> clap::Command) -> clap::Command {
    fn walk(
        c: clap::Command,
        path: &str,
        f: &dyn Fn(clap::Command, &str) -> clap::Command,
    ) -> clap::Command {
        let c = f(c, path);
        let names: Vec<String> = c
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        names.into_iter().fold(c, |c, n| {
            let sub = format!("{path} {n}").trim().to_string();
            c.mut_subcommand(&n, |s| walk(s, &sub, f))
        })
    }
    walk(c, "", f)
}

/// A group of subcommands (`container`, `image`…) that clap builds only
/// when the command line enters it, in [`parse`]: building the whole tree
/// took most of a millisecond of every run, and a run uses one branch.
/// (Help, completions and the tests get the whole tree, as built before.)
#[derive(Debug)]
pub struct Deferred<T>(pub T);

/// Whether [`Deferred`] groups are built only when entered.
static DEFER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The command line parsed, each subcommand group built only if entered.
pub fn parse() -> Result<Cli, clap::Error> {
    use std::sync::atomic::Ordering;
    DEFER.store(true, Ordering::Relaxed);
    let parsed = <Cli as Parser>::try_parse();
    DEFER.store(false, Ordering::Relaxed);
    parsed
}

impl<T: clap::FromArgMatches> clap::FromArgMatches for Deferred<T> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Deferred)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

/// A top-level command's options, built only when the command line names
/// it, as [`Deferred`] groups are.
impl<T: clap::Args> clap::Args for Deferred<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_args)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_args_for_update)
    }
}

/// `build` applied to `cmd` when it is entered, in [`parse`]; at once
/// otherwise.
fn lazily(cmd: clap::Command, build: fn(clap::Command) -> clap::Command) -> clap::Command {
    match DEFER.load(std::sync::atomic::Ordering::Relaxed) {
        true => cmd.defer(build),
        false => build(cmd),
    }
}

impl<T> std::ops::Deref for Deferred<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Subcommand> Subcommand for Deferred<T> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_subcommands)
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        lazily(cmd, T::augment_subcommands_for_update)
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "stack",
    version,
    about = "Run multi-container stacks from compose files, with no Docker needed"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    /// (None: the project's state and what to try)
    pub command: Option<Command>,
}

/// Options every project command takes (the same as docker compose's).
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Stack file(s); `-` reads standard input. Default: compose.yaml and friends, searched upward
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Directory that relative paths are resolved against (default: the first file's)
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Env file(s) to read instead of `.env`
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile
    #[arg(long = "profile", id = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// How to show what an operation does: a redrawn block on a terminal (auto, tty), plain lines, or quiet
    #[arg(long, value_enum, default_value_t, global = true)]
    pub progress: crate::progress::Mode,
    /// When to colour the output: auto (on a terminal, unless NO_COLOR), never, always
    #[arg(long, value_enum, default_value_t, global = true)]
    pub ansi: crate::progress::Ansi,
    /// Operations the engine runs at once for up and down (default 16)
    #[arg(long, value_name = "N", env = "COMPOSE_PARALLEL_LIMIT")]
    pub parallel: Option<usize>,
    /// Keep the networks, volumes, secrets and configs no service uses (they are dropped otherwise)
    #[arg(long)]
    pub all_resources: bool,
    /// Say what up, create, scale, down, start, stop, restart, kill, pause, unpause and rm would do, and do nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Name new containers as compose v1 did: project_service_1
    #[arg(long, env = "COMPOSE_COMPATIBILITY")]
    pub compatibility: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse, resolve and render the stack file in canonical form
    #[command(alias = "convert")]
    Config(Deferred<Box<ConfigArgs>>),
    /// Print the dependency graph of services and their start order
    Graph(Deferred<GraphArgs>),
    /// Manage single containers directly
    Container {
        #[command(subcommand)]
        command: Deferred<container::ContainerCommand>,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: Deferred<image::ImageCommand>,
    },
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: Deferred<network::NetworkCommand>,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: Deferred<docker::VolumeCommand>,
    },
    /// The engine as a whole: disk use, facts, pruning, events
    System {
        #[command(subcommand)]
        command: Deferred<docker::SystemCommand>,
    },
    /// Manage the build cache
    Builder {
        #[command(subcommand)]
        command: Deferred<BuilderCommand>,
    },
    /// Create and start the stack's containers (and networks) as the file says
    Up(Deferred<UpArgs>),
    /// Create the stack's containers (and networks) as the file says, and start none
    Create(Deferred<CreateArgs>),
    /// Stop and remove the stack's containers and networks
    Down(Deferred<DownArgs>),
    /// List the stack's containers
    Ps(Deferred<PsArgs>),
    /// The processes of the stack's running containers
    Top(Services),
    /// The images the stack's containers use
    Images {
        /// table, json, or a Go template
        #[arg(long)]
        format: Option<String>,
        /// Only image ids
        #[arg(short, long)]
        quiet: bool,
        /// Services (default: all)
        services: Vec<String>,
    },
    /// The resource use of the stack's containers (CPU, memory, network, block I/O, processes), every second
    Stats {
        #[command(flatten)]
        args: StatsArgs,
        /// Services (default: all)
        services: Vec<String>,
    },
    /// Wait until the services' containers stop; exit with the first one's code
    Wait {
        /// Then take the whole project down
        #[arg(long)]
        down_project: bool,
        /// Services (default: all)
        services: Vec<String>,
    },
    /// Set the number of replicas of services: SERVICE=N ... (lowest numbers are kept)
    Scale {
        /// Do not start the services' dependencies
        #[arg(long)]
        no_deps: bool,
        #[arg(required = true, value_name = "SERVICE=N")]
        scale: Vec<String>,
    },
    /// Copy files between a service's container and the host: SERVICE:SRC DEST or SRC SERVICE:DEST (`dir/.` copies a directory's contents)
    Cp(Deferred<CpArgs>),
    /// Watch the files: sync them into the containers, restart or exec as `develop.watch` says; `up` again when a stack file or `.env` changes
    Watch(Deferred<WatchArgs>),
    /// Stream the containers' events (create, start, die, health_status, restart, destroy) as they happen
    Events {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// The events since then first, of the last thousand the engine keeps (RFC 3339, a Unix time, or a duration ago: 10m)
        #[arg(long)]
        since: Option<String>,
        /// Stop at this time
        #[arg(long)]
        until: Option<String>,
        /// Services (default: all)
        services: Vec<String>,
    },
    /// Stop the stack's containers (reverse dependency order)
    Stop(ServicesTimeout),
    /// Start the stack's stopped containers, in place
    Start {
        /// Then wait until they are running and healthy (one-shots: done)
        #[arg(long)]
        wait: bool,
        /// At most this many seconds (with --wait)
        #[arg(long, value_name = "SECONDS", requires = "wait")]
        wait_timeout: Option<u64>,
        /// Services (default: all)
        services: Vec<String>,
    },
    /// Restart the stack's containers, in place
    Restart {
        #[command(flatten)]
        st: ServicesTimeout,
        /// Not the services that depend on these with `restart: true`
        #[arg(long)]
        no_deps: bool,
    },
    /// Send a signal to the stack's running containers
    Kill {
        /// The signal
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// Kill the containers of services no longer in the stack file too
        #[arg(long)]
        remove_orphans: bool,
        services: Vec<String>,
    },
    /// Freeze the stack's containers
    Pause(Services),
    /// Thaw them
    Unpause(Services),
    /// Remove the stack's stopped containers
    Rm {
        /// Do not ask
        #[arg(short, long)]
        force: bool,
        /// Stop running containers first
        #[arg(short, long)]
        stop: bool,
        /// Remove their anonymous volumes (stack always does: they live with the container)
        #[arg(short, long)]
        volumes: bool,
        services: Vec<String>,
    },
    /// Show the output of the stack's containers
    Logs(Deferred<LogsArgs>),
    /// Run a command in a running service container
    Exec(Deferred<ExecArgs>),
    /// Run a one-off command in a new container of a service
    Run(Deferred<RunOneOff>),
    /// List the projects on this host
    Ls {
        /// Only names
        #[arg(short, long)]
        quiet: bool,
        /// Also projects with no running container
        #[arg(short, long)]
        all: bool,
        /// Filter: name=NAME
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        /// table, json, or a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Run the engine (started by the CLI when it is not running)
    Daemon {
        /// Members of this group may use the engine's socket too
        #[arg(long)]
        group: Option<String>,
        /// Also serve the Docker Engine API here (it is always served on
        /// `$STACK_ROOT/docker.sock`), e.g. /var/run/docker.sock on a host
        /// without Docker
        #[arg(long, value_name = "PATH")]
        docker_socket: Vec<std::path::PathBuf>,
    },
    /// Print the host address of a service's published port
    Port {
        service: String,
        /// PORT[/PROTO]
        port: String,
        /// tcp or udp (when PORT does not say)
        #[arg(long, default_value = "tcp")]
        protocol: String,
        /// Which replica
        #[arg(long, default_value_t = 1)]
        index: u32,
    },
    /// Pull the images of the stack's services, in parallel
    Pull(Deferred<PullArgs>),
    /// Build the images of the services that have a build section
    Build(Deferred<ComposeBuildArgs>),
    /// Push the images of the services that have a build section to their registries
    Push(Deferred<PushArgs>),
    /// Publish the stack file(s) to a registry as an OCI artifact, as compose does
    #[command(
        after_help = "Example:\n  stack publish --with-env --resolve-image-digests registry.example.com/team/shop:1.0"
    )]
    Publish(Deferred<PublishArgs>),
    /// Log in to a registry (Docker Hub by default)
    Login(Deferred<LoginArgs>),
    /// Forget the credentials for a registry
    Logout { server: Option<String> },
    /// Hand the stack to Kubernetes
    Kube {
        #[command(subcommand)]
        command: Deferred<KubeCommand>,
    },
    /// Show the version
    Version {
        /// pretty or json
        #[arg(short, long, default_value = "pretty")]
        format: VersionFormat,
        /// Only the number
        #[arg(long)]
        short: bool,
    },
    /// List the volumes of the stack's services
    #[command(after_help = "Example:\n  stack volumes --format json db")]
    Volumes {
        /// table, json, or a Go template
        #[arg(long)]
        format: Option<String>,
        /// Only print names
        #[arg(short, long)]
        quiet: bool,
        /// Services (default: all)
        services: Vec<String>,
    },
    /// Attach to a service container's output (and input, with stdin_open)
    #[command(after_help = "Example:\n  stack attach --index 2 worker")]
    Attach {
        #[command(flatten)]
        how: container::AttachArgs,
        service: String,
        /// Which replica
        #[arg(long, default_value_t = 1)]
        index: u32,
    },
    /// Make an image from a service container's changes
    #[command(after_help = "Example:\n  stack commit -m 'debugging' web shop/web:debug")]
    Commit {
        #[command(flatten)]
        how: container::CommitArgs,
        service: String,
        /// REPOSITORY[:TAG] to name the image (default: no name)
        reference: Option<String>,
        /// Which replica
        #[arg(long, default_value_t = 1)]
        index: u32,
    },
    /// Export a service container's filesystem as a tar archive
    #[command(after_help = "Example:\n  stack export -o web.tar web")]
    Export {
        service: String,
        /// Which replica
        #[arg(long, default_value_t = 1)]
        index: u32,
        /// Write to a file (default: standard output, which must not be a terminal)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Docker's commands for swarm mode, contexts and plugins: they answer
    /// that they do not apply to one host.
    #[command(
        hide = true,
        name = "swarm",
        aliases = NOT_HERE.iter().skip(1).copied().collect::<Vec<_>>(),
        disable_help_flag = true
    )]
    NotHere {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Docker's commands that have no meaning for stack: swarm mode (several
/// hosts), contexts (other engines), plugins, content trust, checkpoints.
pub const NOT_HERE: &[&str] = &[
    "swarm",
    "node",
    "service",
    "secret",
    "stack",
    "context",
    "plugin",
    "trust",
    "checkpoint",
    "manifest",
];

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum VersionFormat {
    Pretty,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, Default, PartialEq)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Args, Debug, Default)]
pub struct ConfigArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Only validate the configuration, print nothing
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Print the config hash of the named services (`*` for all)
    #[arg(long, value_name = "SERVICE")]
    pub hash: Option<String>,
    /// Print the variables the files use, their values and where each came from
    #[arg(long)]
    pub variables: bool,
    /// Don't interpolate variables
    #[arg(long)]
    pub no_interpolate: bool,
    /// Don't normalize (no defaults, implicit networks or dependencies)
    #[arg(long)]
    pub no_normalize: bool,
    /// Keep relative paths as written
    #[arg(long)]
    pub no_path_resolution: bool,
    /// Don't check that what services refer to is defined
    #[arg(long)]
    pub no_consistency: bool,
    /// Don't resolve env files and bare variables into `environment`
    #[arg(long)]
    pub no_env_resolution: bool,
    /// Print the variables interpolation uses (the shell's and `.env`'s), KEY=VALUE
    #[arg(long)]
    pub environment: bool,
    /// Print the model names, one per line
    #[arg(long)]
    pub models: bool,
    /// Pin image tags to the digests they were pulled by
    #[arg(long)]
    pub resolve_image_digests: bool,
    /// Print an override file that pins each service's image to its digest
    #[arg(long)]
    pub lock_image_digests: bool,
    /// Write the output to a file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Services to render (default: all); naming a service enables its profiles
    pub service_names: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, Default, PartialEq)]
pub enum GraphFormat {
    /// The start order in parallel waves
    #[default]
    Waves,
    Dot,
    Mermaid,
}

#[derive(Args, Debug, Default)]
pub struct GraphArgs {
    #[arg(long, value_enum, default_value_t)]
    pub format: GraphFormat,
}

#[derive(clap::Subcommand, Debug)]
pub enum BuilderCommand {
    /// Show the build cache: its steps and the bytes of their layers
    Du,
    /// Remove the build cache: its steps' layers (those no image uses) and its cache mounts
    Prune {
        /// Accepted as docker's (the whole cache goes either way)
        #[arg(short, long)]
        all: bool,
        /// Accepted as docker's (stack asks nothing)
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KubeCommand {
    /// Write the stack as Kubernetes manifests (apps/v1, v1, batch/v1,
    /// networking.k8s.io/v1), or as a Helm chart; warnings name what
    /// Kubernetes cannot express
    #[command(
        after_help = "Examples:\n  stack kube generate > stack.yaml && kubectl apply -f stack.yaml\n  stack kube generate -o k8s/ --namespace shop --network-policies\n  stack kube generate --push registry.example.com:5000 --chart chart/"
    )]
    Generate(KubeGenerateArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, Default, PartialEq)]
pub enum PublishAs {
    /// A LoadBalancer Service on the published port
    #[default]
    Loadbalancer,
    /// A NodePort Service (the published port, when in 30000-32767)
    Nodeport,
}

#[derive(Args, Debug)]
pub struct KubeGenerateArgs {
    /// Write one file per object into DIR (default: all to standard output)
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The namespace of every object (a Namespace object is made too)
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format (JSON: a v1 List, or a file per object)
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write a Helm chart into DIR instead (images, replicas and resources as values)
    #[arg(long, value_name = "DIR")]
    pub chart: Option<PathBuf>,
    /// How published ports are reached from outside the cluster
    #[arg(long, value_enum, default_value_t)]
    pub publish_as: PublishAs,
    /// NetworkPolicies that let in only the services sharing a network (and published ports)
    #[arg(long)]
    pub network_policies: bool,
    /// Tag the images that services build for REGISTRY, push them, and name them by digest
    #[arg(long, value_name = "REGISTRY")]
    pub push: Option<String>,
    /// The image of the init containers that wait for a dependency's port
    #[arg(long, value_name = "IMAGE", default_value = stack_kube::WAIT_IMAGE)]
    pub wait_image: String,
    /// The image (with kubectl) of the init containers that wait for a Job
    #[arg(long, value_name = "IMAGE", default_value = stack_kube::KUBECTL_IMAGE)]
    pub kubectl_image: String,
    /// Services (default: all); their dependencies come with them
    pub services: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct PublishArgs {
    /// The manifest's shape: 1.1 (an artifactType) or 1.0 (the type as the config's media type)
    #[arg(long, value_parser = ["1.0", "1.1"], default_value = "1.1")]
    pub oci_version: String,
    /// Publish the env files too (.env, or --env-file's)
    #[arg(long)]
    pub with_env: bool,
    /// Pin the services' images to their digests (an image-digests.yaml layer)
    #[arg(long)]
    pub resolve_image_digests: bool,
    /// Do not ask before publishing bind mounts' paths
    #[arg(short, long)]
    pub yes: bool,
    /// Push the images the stack builds first
    #[arg(long)]
    pub app: bool,
    /// REPOSITORY[:TAG] to publish to
    pub reference: String,
}

#[derive(Args, Debug, Default)]
pub struct PushArgs {
    /// Report failures as warnings and go on
    #[arg(long)]
    pub ignore_push_failures: bool,
    /// Push the images of the services' dependencies too
    #[arg(long)]
    pub include_deps: bool,
    /// Print no progress
    #[arg(short, long)]
    pub quiet: bool,
    /// Services whose images to push (default: all that build)
    pub services: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct ComposeBuildArgs {
    /// Run every step, reusing nothing from the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the base images even when they are here
    #[arg(long)]
    pub pull: bool,
    /// A build argument for every service (over the file's)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Print only the image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Also build the services these depend on
    #[arg(long)]
    pub with_dependencies: bool,
    /// Push the images once built (as `stack push`)
    #[arg(long)]
    pub push: bool,
    /// Memory limit of the RUN steps' containers (`512m`)
    #[arg(short, long)]
    pub memory: Option<String>,
    /// SSH agent sockets or keys for `RUN --mount=type=ssh` (`default` or ID=PATH), over the file's
    #[arg(long)]
    pub ssh: Vec<String>,
    /// The builder: stack has one, built in (`default`)
    #[arg(long)]
    pub builder: Option<String>,
    /// Keep a provenance attestation with the images, pushed beside them (true, mode=min, mode=max, false)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// Keep an SBOM attestation (SPDX: dpkg, apk and Python packages) with the images, pushed beside them
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Print the build definition (docker buildx bake's JSON) and build nothing
    #[arg(long)]
    pub print: bool,
    /// Check the Dockerfiles (lint) and build nothing
    #[arg(long, conflicts_with = "print")]
    pub check: bool,
    /// Services to build (default: all that have a build section)
    pub services: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct PullArgs {
    /// Report failures as warnings and go on
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Skip services that have a build section
    #[arg(long)]
    pub ignore_buildable: bool,
    /// Pull the images of the services' dependencies too
    #[arg(long)]
    pub include_deps: bool,
    /// missing: only images not here; always: every one (the default)
    #[arg(long, value_parser = ["missing", "always"])]
    pub policy: Option<String>,
    /// Print no progress
    #[arg(short, long)]
    pub quiet: bool,
    /// Services whose images to pull (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub)
    pub server: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (prefer --password-stdin: this one shows in `ps`)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password (or token) from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug, Default)]
pub struct UpArgs {
    /// Run in the background (otherwise follow the output; Ctrl-C stops the stack)
    #[arg(short, long)]
    pub detach: bool,
    /// Print the plan, one line per operation with its cause, and do nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub force_recreate: bool,
    #[arg(long, conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// Recreated containers get new anonymous volumes (stack always does: they live with the container)
    #[arg(short = 'V', long)]
    pub renew_anon_volumes: bool,
    /// Recreate the services the named ones depend on too, even if unchanged
    #[arg(long, conflicts_with = "no_recreate")]
    pub always_recreate_deps: bool,
    /// Do not start the services the named ones depend on
    #[arg(long)]
    pub no_deps: bool,
    /// SERVICE=N replicas
    #[arg(long, value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    #[arg(long)]
    pub remove_orphans: bool,
    /// Attached: stop the stack when any container stops
    #[arg(long, conflicts_with = "detach")]
    pub abort_on_container_exit: bool,
    /// Stop the stack when a container exits with a failure (not 0)
    #[arg(long, conflicts_with_all = ["detach", "abort_on_container_exit"])]
    pub abort_on_container_failure: bool,
    /// Show the output of the services' dependencies too
    #[arg(long, conflicts_with = "detach")]
    pub attach_dependencies: bool,
    /// No `service-N | ` prefix on the output
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Print no build progress (with --build)
    #[arg(long)]
    pub quiet_build: bool,
    /// Attached: stop the stack when this service's container stops, and exit with its code
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub exit_code_from: Option<String>,
    /// Attached: plain prefixes, no colours
    #[arg(long)]
    pub no_color: bool,
    /// Attached: show timestamps
    #[arg(long)]
    pub timestamps: bool,
    /// Seconds to wait for the stops of containers it replaces, or (attached) of the stack on Ctrl-C, before SIGKILL
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Create the containers, start none
    #[arg(long, conflicts_with_all = ["wait", "watch", "abort_on_container_exit", "exit_code_from"])]
    pub no_start: bool,
    /// Build images first (those that have a build section)
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Build no image, not even a missing one
    #[arg(long)]
    pub no_build: bool,
    /// Attached: show only these services' output
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub attach: Vec<String>,
    /// Attached: do not show these services' output
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub no_attach: Vec<String>,
    /// Pull images: always, missing (the default, or each service's pull_policy) or never
    #[arg(long, value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Do not report pulled images
    #[arg(long)]
    pub quiet_pull: bool,
    /// Assume yes to every question (up asks none; accepted as compose's)
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Return once every service is running (healthy, if it has a health check) or, for one-shots, completed successfully; implies -d
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait may take
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub wait_timeout: Option<u64>,
    /// Then watch the files: sync, restart or exec as `develop.watch` says, and `up` again when a stack file or `.env` changes (with -d, the engine keeps watching after the command returns, until `stack watch --stop` or `down`)
    #[arg(short, long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// Attached, on a terminal: keys to press (w: start watching, d: detach); also COMPOSE_MENU=true
    #[arg(long, env = "COMPOSE_MENU", conflicts_with = "detach")]
    pub menu: bool,
    /// Services to bring up (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct CreateArgs {
    #[arg(long)]
    pub force_recreate: bool,
    #[arg(long, conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// SERVICE=N replicas
    #[arg(long, value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    #[arg(long)]
    pub remove_orphans: bool,
    /// Pull images: always, missing (the default, or each service's pull_policy) or never
    #[arg(long, value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Do not report pulled images
    #[arg(long)]
    pub quiet_pull: bool,
    /// Build images first (those that have a build section)
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Build no image, not even a missing one
    #[arg(long)]
    pub no_build: bool,
    /// Assume yes to every question (accepted as compose's)
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Services to create (default: all)
    pub services: Vec<String>,
}

impl CreateArgs {
    /// `create` is `up --no-start`.
    pub fn up(&self) -> UpArgs {
        UpArgs {
            detach: true,
            no_start: true,
            force_recreate: self.force_recreate,
            no_recreate: self.no_recreate,
            scale: self.scale.clone(),
            remove_orphans: self.remove_orphans,
            pull: self.pull.clone(),
            quiet_pull: self.quiet_pull,
            build: self.build,
            no_build: self.no_build,
            yes: self.yes,
            services: self.services.clone(),
            ..UpArgs::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Copy to every replica of the service
    #[arg(long)]
    pub all: bool,
    /// Which replica
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Keep the owners (uid and gid) the source has
    #[arg(short, long)]
    pub archive: bool,
    /// Copy what a symlink SRC points to, under its name
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    pub src: String,
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Do not bring the services up first
    #[arg(long)]
    pub no_up: bool,
    /// Return at once: the engine keeps watching until `stack watch --stop` or `down`
    #[arg(short, long)]
    pub detach: bool,
    /// Stop watching the project
    #[arg(long, conflicts_with_all = ["no_up", "detach"])]
    pub stop: bool,
    /// Remove the image a rebuild replaced once it has no name and no container left
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prune: bool,
    /// Print nothing of what the watch does (errors excepted)
    #[arg(long)]
    pub quiet: bool,
    /// Services whose rules apply (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Services {
    /// Services (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServicesTimeout {
    /// Seconds to wait for a stop before SIGKILL (default: the service's own, or 10)
    #[arg(short, long)]
    pub timeout: Option<u64>,
    /// Services (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct LogsArgs {
    /// Keep following new output
    #[arg(short, long)]
    pub follow: bool,
    /// The last N lines of each container, or `all`
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Plain prefixes, no colours
    #[arg(long)]
    pub no_color: bool,
    /// No `service-N | ` prefix
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Only output since this time: a duration back (42m), a Unix time or an RFC 3339 time
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only output before this time (the same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this replica of each service
    #[arg(long)]
    pub index: Option<u32>,
    /// Services (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Which replica
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Run in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Every capability for the command (the container's seccomp filter and device rules still hold)
    #[arg(long)]
    pub privileged: bool,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct DownArgs {
    /// Also remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Also remove the named volumes the file declares (not external ones)
    #[arg(short, long)]
    pub volumes: bool,
    /// Also remove the services' images: `all`, or `local` (those of services with no `image:`)
    #[arg(long, value_parser = ["all", "local"])]
    pub rmi: Option<String>,
    /// Seconds to wait for a stop before SIGKILL
    #[arg(short, long)]
    pub timeout: Option<u64>,
}

#[derive(Args, Debug, Default)]
pub struct PsArgs {
    /// Also stopped containers
    #[arg(short, long)]
    pub all: bool,
    /// Only ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Only service names
    #[arg(long)]
    pub services: bool,
    /// Only containers in this state (running, exited, paused, created)
    #[arg(long, value_name = "STATE")]
    pub status: Vec<String>,
    /// `table`, `json` (one object per line), or a Go template
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter: status=STATE
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not cut the command short
    #[arg(long)]
    pub no_trunc: bool,
    /// Include containers of services the file no longer has (the default; --orphans=false leaves them out)
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub orphans: bool,
    /// Only these services
    #[arg(value_name = "SERVICE")]
    pub only: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunOneOff {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background, print the container's name
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Replace the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Do not start the services it depends on
    #[arg(long)]
    pub no_deps: bool,
    /// When the command ends, stop and remove the dependencies this run started (for CI)
    #[arg(long, conflicts_with = "detach")]
    pub rm_deps: bool,
    /// Publish a port (HOST:CONTAINER)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish the service's own ports too
    #[arg(short = 'P', long)]
    pub service_ports: bool,
    /// Answer to the service's network aliases (its name included) too
    #[arg(long)]
    pub use_aliases: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// Add a capability
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Add or override a label: KEY=VALUE
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Mount a volume or bind: SRC:DST[:ro]
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:MODE]")]
    pub volumes: Vec<String>,
    /// Read environment variables from a file (the env_file format)
    #[arg(long = "env-from-file", value_name = "FILE")]
    pub env_from_file: Vec<PathBuf>,
    /// Keep standard input open (always, as compose's default; the flag is for its scripts)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Build the service's image first
    #[arg(long)]
    pub build: bool,
    /// Pull the image: always, missing, never
    #[arg(long, value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Print no progress of the pull
    #[arg(long)]
    pub quiet_pull: bool,
    /// Print no progress of the build
    #[arg(long)]
    pub quiet_build: bool,
    /// Print no progress at all
    #[arg(short, long)]
    pub quiet: bool,
    /// Remove the containers of services the file no longer has
    #[arg(long)]
    pub remove_orphans: bool,
    pub service: String,
    /// The command (default: the service's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// How `exec` and `run` start their process.
#[derive(Args, Debug)]
pub struct ProcessArgs {
    /// No pseudo-terminal (one is allocated when standard input is a terminal)
    #[arg(short = 'T', long = "no-tty")]
    pub no_tty: bool,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
}

/// `stats` and `container stats`.
#[derive(Args, Debug, Clone, Default)]
pub struct StatsArgs {
    /// Also stopped containers (their use is zero)
    #[arg(short, long)]
    pub all: bool,
    /// Print one table and return, instead of one every second
    #[arg(long)]
    pub no_stream: bool,
    /// `table` or `json` (one object per line per container)
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Full container ids
    #[arg(long)]
    pub no_trunc: bool,
}

/// `--tail N|all` of `logs` and `container logs`: how many of the last
/// lines, or all of them (`None`).
pub fn parse_tail(tail: &str) -> anyhow::Result<Option<usize>> {
    match tail {
        "all" | "-1" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("--tail: `{n}` is not a number of lines or `all`")),
    }
}
