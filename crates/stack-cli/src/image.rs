//! `stack image ...`: the local image store.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Load images from a `docker save` archive or an OCI layout (dir or tar)
    Load {
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
    },
    /// List images
    Ls {
        /// Only print ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show an image as JSON
    Inspect { image: String },
}

pub fn store() -> anyhow::Result<stack_image::Store> {
    let root = crate::container::stack_root().join("images");
    stack_image::Store::open(&root)
        .with_context(|| format!("cannot open the image store in `{}`", root.display()))
}

pub fn run(cmd: &ImageCommand) -> anyhow::Result<()> {
    let store = store()?;
    match cmd {
        ImageCommand::Load { input } => {
            for img in stack_image::archive::load(&store, input)? {
                let name = img.names.first().cloned().unwrap_or_else(|| img.id.clone());
                println!("Loaded image: {name}");
            }
        }
        ImageCommand::Ls { quiet } => {
            if !quiet {
                println!("{:<40}{:<16}{:>10}  LAYERS", "NAME", "IMAGE ID", "SIZE");
            }
            for img in store.images()? {
                let short = &img.id.trim_start_matches("sha256:")[..12];
                if *quiet {
                    println!("{short}");
                    continue;
                }
                let names = if img.names.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    img.names.clone()
                };
                for n in names {
                    println!(
                        "{n:<40}{short:<16}{:>8.1}MB  {}",
                        img.size as f64 / 1e6,
                        img.chain_ids.len()
                    );
                }
            }
        }
        ImageCommand::Inspect { image } => {
            let img = store.lookup(image)?;
            println!("{}", serde_json::to_string_pretty(&img)?);
        }
    }
    Ok(())
}
