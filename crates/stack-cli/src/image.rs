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
    /// Give an image another name
    Tag { source: String, target: String },
    /// Remove images (a name; the image goes with its last name)
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unpacked layers no image or container uses
    Prune,
    /// Make a one-layer image from a root file system tar
    Import { tarball: PathBuf, reference: String },
}

/// The layer directories every container (running or not) uses.
fn layers_in_use() -> Vec<PathBuf> {
    let root = crate::container::stack_root().join("containers");
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| stack_runtime::state::read(&e.path()).ok())
        .flat_map(|st| std::iter::once(st.spec.rootfs.clone()).chain(st.spec.layers.clone()))
        .collect()
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
        ImageCommand::Tag { source, target } => {
            store.tag(source, target)?;
        }
        ImageCommand::Rm { images } => {
            let used = layers_in_use();
            let mut failures = Vec::new();
            for r in images {
                let in_use = |img: &stack_image::Image| {
                    store.lower_dirs(img).iter().any(|d| used.contains(d))
                };
                match store.remove(r, &in_use) {
                    Ok(Some(id)) => println!("Deleted: {id}"),
                    Ok(None) => println!("Untagged: {r}"),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if !failures.is_empty() {
                anyhow::bail!("{}", failures.join("\n"));
            }
        }
        ImageCommand::Prune => {
            let used = layers_in_use();
            let c = store.collect(&|p| used.iter().any(|u| u == p))?;
            println!(
                "Removed {} layers and {} blobs, {:.1}MB",
                c.layers,
                c.blobs,
                c.bytes as f64 / 1e6
            );
        }
        ImageCommand::Import { tarball, reference } => {
            let img = stack_image::archive::import(&store, tarball, reference)?;
            println!("{}", img.id);
        }
    }
    Ok(())
}
