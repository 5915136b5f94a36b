//! `stack image ...`: the local image store.

use anyhow::Context as _;
use stack_host::{images, Host};

use crate::cli::image::{ImageCommand, ListFormat};

pub fn run(cmd: &ImageCommand, progress: crate::progress::Mode) -> anyhow::Result<()> {
    let host = Host::new(crate::client::stack_root());
    let store = host.images()?;
    match cmd {
        ImageCommand::Load { input } => {
            for img in stack_image::archive::load(&store, input)? {
                let name = img.names.first().cloned().unwrap_or_else(|| img.id.clone());
                println!("Loaded image: {name}");
            }
        }
        ImageCommand::Pull {
            reference,
            platform,
            quiet,
        } => crate::registry::pull(&host, reference, platform.as_deref(), *quiet)?,
        ImageCommand::Push { reference, quiet } => crate::registry::push(&host, reference, *quiet)?,
        ImageCommand::Save { images, output } => save(&store, images, output.as_deref())?,
        ImageCommand::Ls { quiet, format } => ls(&store, *quiet, *format)?,
        ImageCommand::Inspect { image } => {
            let img = store.lookup(image)?;
            println!("{}", serde_json::to_string_pretty(&img)?);
        }
        ImageCommand::History {
            image,
            quiet,
            no_trunc,
            human,
            format,
        } => crate::docker::history(image, *quiet, *no_trunc, *human, format.as_deref())?,
        ImageCommand::Tag { source, target } => {
            store.tag(source, target)?;
        }
        ImageCommand::Rm { images } => {
            let mut failures = Vec::new();
            for (r, done) in images.iter().zip(images::remove(&host, &store, images)?) {
                match done {
                    Ok(Some(id)) => println!("Deleted: {id}"),
                    Ok(None) => println!("Untagged: {r}"),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if !failures.is_empty() {
                anyhow::bail!("{}", failures.join("\n"));
            }
        }
        ImageCommand::Prune { all } => {
            let pruned = images::prune(&host, *all)?;
            for id in pruned.images {
                println!("Deleted: {id}");
            }
            let c = pruned.collected;
            println!(
                "Removed {} layers and {} blobs, {:.1}MB",
                c.layers,
                c.blobs,
                c.bytes as f64 / 1e6
            );
        }
        ImageCommand::Build(a) => crate::build::image(a, progress)?,
        ImageCommand::Import { tarball, reference } => {
            let img = stack_image::archive::import(&store, tarball, reference)?;
            println!("{}", img.id);
        }
    }
    Ok(())
}

fn ls(store: &stack_image::Store, quiet: bool, format: ListFormat) -> anyhow::Result<()> {
    let all = store.images()?;
    if quiet {
        for img in &all {
            println!("{}", &img.id.trim_start_matches("sha256:")[..12]);
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for img in &all {
        let (shared, unique) = store.shared_and_unique(img, &all);
        let names = if img.names.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            img.names.clone()
        };
        for name in names {
            let (repository, tag) = match name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                Some((r, t)) => (r.to_string(), t.to_string()),
                None => (name.clone(), String::new()),
            };
            rows.push(serde_json::json!({
                "Repository": repository, "Tag": tag, "ID": img.id, "Digests": img.repo_digests,
                "Created": img.created, "Platform": img.platform, "Layers": img.chain_ids.len(),
                "Size": img.size, "SharedSize": shared, "UniqueSize": unique,
            }));
        }
    }
    if let ListFormat::Json = format {
        for r in rows {
            println!("{r}");
        }
        return Ok(());
    }
    let mb = |v: &serde_json::Value| format!("{:.1}MB", v.as_u64().unwrap_or(0) as f64 / 1e6);
    println!(
        "{:<36}{:<12}{:<15}{:>10}{:>10}{:>10}  LAYERS",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE", "SHARED", "UNIQUE"
    );
    for r in rows {
        let id = r["ID"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("sha256:");
        println!(
            "{:<36}{:<12}{:<15}{:>10}{:>10}{:>10}  {}",
            r["Repository"].as_str().unwrap_or_default(),
            r["Tag"]
                .as_str()
                .filter(|t| !t.is_empty())
                .unwrap_or("<none>"),
            &id[..12],
            mb(&r["Size"]),
            mb(&r["SharedSize"]),
            mb(&r["UniqueSize"]),
            r["Layers"]
        );
    }
    Ok(())
}

fn save(
    store: &stack_image::Store,
    images: &[String],
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            // Written aside and renamed: a failed save leaves no half archive.
            let tmp = path.with_extension("partial");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create `{}`", tmp.display()))?;
            let result = stack_image::archive::save(store, images, std::io::BufWriter::new(f))
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    std::fs::rename(&tmp, path)
                        .with_context(|| format!("cannot write `{}`", path.display()))
                });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        None => {
            use std::io::IsTerminal as _;
            if std::io::stdout().is_terminal() {
                anyhow::bail!("refusing to write an archive to a terminal: give -o FILE or redirect standard output");
            }
            Ok(stack_image::archive::save(
                store,
                images,
                std::io::stdout().lock(),
            )?)
        }
    }
}
