//! `stack image …`: the image store's subcommands.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Load images from a `docker save` archive or an OCI layout (dir or tar)
    Load {
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
    },
    /// Pull an image from a registry
    Pull {
        reference: String,
        /// The platform of a multi-platform image (default: this host's)
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        /// Print only the image name
        #[arg(short, long)]
        quiet: bool,
    },
    /// Push an image to the registry its name points at
    Push {
        reference: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to a tar archive that `docker load` and OCI tools read
    Save {
        #[arg(required = true)]
        images: Vec<String>,
        /// Write to this file (default: standard output, when it is not a terminal)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List images, with the bytes each shares with others and its own
    Ls {
        /// Only print ids
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Show an image as JSON
    Inspect { image: String },
    /// The history of an image: the step that made each layer
    #[command(after_help = "Example:\n  stack image history --no-trunc myapp:1")]
    History {
        image: String,
        /// Only print the ids
        #[arg(short, long)]
        quiet: bool,
        /// Do not cut the steps short
        #[arg(long)]
        no_trunc: bool,
        /// Sizes in bytes, times in RFC 3339
        #[arg(short = 'H', long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        human: bool,
        /// table, json, or a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Give an image another name
    Tag { source: String, target: String },
    /// Remove images (a name; the image goes with its last name)
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images without a name, then layers and blobs nothing uses
    Prune {
        /// Remove every image no container uses, named or not
        #[arg(short, long)]
        all: bool,
    },
    /// Make a one-layer image from a root file system tar
    Import { tarball: PathBuf, reference: String },
    /// Build an image from a Dockerfile (as `docker build`)
    Build(Box<BuildArgs>),
}

#[derive(clap::Args, Debug, Default)]
pub struct BuildArgs {
    /// The build context: a directory
    pub context: PathBuf,
    /// Name the image `NAME[:TAG]` (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A build argument (`KEY` alone takes the value from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Build this stage (default: the last)
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step, reusing nothing from the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the base images even when they are here
    #[arg(long)]
    pub pull: bool,
    /// A local image whose steps stand in for missing cache entries
    #[arg(long = "cache-from", value_name = "IMAGE")]
    pub cache_from: Vec<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or `id=ID,env=VAR`
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub secrets: Vec<String>,
    /// SSH agent forwarding (not supported yet)
    #[arg(long)]
    pub ssh: Vec<String>,
    /// A label on the image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// This host's platform only (anything else is refused)
    #[arg(long)]
    pub platform: Option<String>,
    /// The network of RUN steps: default, none or host
    #[arg(long)]
    pub network: Option<String>,
    /// Size of RUN steps' /dev/shm (`64m`)
    #[arg(long)]
    pub shm_size: Option<String>,
    /// Memory limit of RUN steps (`512m`)
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Keep a provenance attestation with the image, pushed beside it (true, mode=min, mode=max, false)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// Keep an SBOM attestation (SPDX: dpkg, apk and Python packages) with the image, pushed beside it
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// A resource limit of RUN steps: NAME=SOFT[:HARD]
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// `NAME:IP` in RUN steps' /etc/hosts
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<String>,
    /// A named context for `COPY --from=NAME`: `NAME=DIR` or `NAME=docker-image://REF`
    #[arg(long = "build-context", value_name = "NAME=DIR")]
    pub build_contexts: Vec<String>,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}
