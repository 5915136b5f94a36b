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
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}
