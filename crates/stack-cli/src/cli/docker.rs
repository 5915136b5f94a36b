//! `stack volume …` and `stack system …`, with docker's flags.

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume (prints its name)
    #[command(after_help = "Example:\n  stack volume create --label team=core data")]
    Create {
        /// The name (default: a random one)
        name: Option<String>,
        /// The volume driver (only `local`)
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// A label: KEY=VALUE
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// A driver option: KEY=VALUE (`local`: type, device, o)
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
    },
    /// List volumes
    #[command(
        alias = "list",
        after_help = "Examples:\n  stack volume ls -f dangling=true\n  stack volume ls --format '{{.Name}}\\t{{.Mountpoint}}'"
    )]
    Ls {
        /// Only print names
        #[arg(short, long)]
        quiet: bool,
        /// table, json, or a Go template (`{{.Name}}`, `table {{.Name}}\t{{.Driver}}`)
        #[arg(long)]
        format: Option<String>,
        /// Filter: dangling=true|false, driver=, label=KEY[=VALUE], name=
        #[arg(short, long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
    },
    /// Show volumes as JSON
    #[command(after_help = "Example:\n  stack volume inspect --format '{{.Mountpoint}}' data")]
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
        /// A Go template instead of JSON
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove volumes
    #[command(
        alias = "remove",
        after_help = "Example:\n  stack volume rm data cache"
    )]
    Rm {
        #[arg(required = true)]
        volumes: Vec<String>,
        /// Remove them even if in use (by stopped containers)
        #[arg(short, long)]
        force: bool,
    },
    /// Remove the unused anonymous volumes (-a: all unused ones)
    #[command(after_help = "Example:\n  stack volume prune -af")]
    Prune {
        /// Every unused volume, named ones too
        #[arg(short, long)]
        all: bool,
        /// Do not ask
        #[arg(short, long)]
        force: bool,
        /// Filter: label=KEY[=VALUE], label!=KEY
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Disk space used by images, containers, volumes and the build cache
    #[command(after_help = "Examples:\n  stack system df\n  stack system df -v")]
    Df {
        /// Each image, container and volume
        #[arg(short, long)]
        verbose: bool,
        /// table, json, or a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Facts about the engine and the host
    #[command(after_help = "Example:\n  stack system info --format '{{.ServerVersion}}'")]
    Info {
        /// json, or a Go template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove stopped containers, unused networks, dangling images and the build cache
    #[command(after_help = "Example:\n  stack system prune -af --volumes")]
    Prune {
        /// Every unused image, not only dangling ones
        #[arg(short, long)]
        all: bool,
        /// Unused anonymous volumes too
        #[arg(long)]
        volumes: bool,
        /// Do not ask
        #[arg(short, long)]
        force: bool,
        /// Filter: label=KEY[=VALUE], label!=KEY
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
    },
    /// Stream the engine's events (containers, images, networks, volumes)
    #[command(
        after_help = "Examples:\n  stack system events --since 10m --until 0s\n  stack system events -f type=container -f event=die --format json"
    )]
    Events {
        /// Events from this time on (RFC 3339, a Unix time, or a duration ago: 10m)
        #[arg(long)]
        since: Option<String>,
        /// Until this time, then stop
        #[arg(long)]
        until: Option<String>,
        /// Filter: type=, event=, container=, image=, network=, volume=, label=
        #[arg(short, long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        /// json, or a Go template
        #[arg(long)]
        format: Option<String>,
    },
}
