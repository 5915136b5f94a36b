//! `stack kube generate`: the loaded project (as `config` sees it) as
//! Kubernetes manifests or a Helm chart, through `stack-kube`; this side
//! reads the files it refers to and pushes the images it builds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context as _};
use stack_image::reference::Reference;
use stack_kube::{Entry, Sources};

use crate::cli::{Format, Global, KubeGenerateArgs, PublishAs};

/// The files of this machine and the environment of the load.
struct Machine<'a> {
    env: &'a stack_loader::Environment,
}

impl Sources for Machine<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }

    fn stat(&self, path: &str) -> Option<Entry> {
        let m = std::fs::metadata(path).ok()?;
        Some(if m.is_file() {
            Entry::File { size: m.len() }
        } else if m.is_dir() {
            Entry::Dir
        } else {
            Entry::Other
        })
    }

    fn list(&self, path: &str) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(path).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_string)
    }

    fn env_file(
        &self,
        file: &stack_model::EnvFile,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let text = match std::fs::read_to_string(&file.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.required => {
                return Ok(None)
            }
            Err(e) => return Err(e.to_string()),
        };
        let raw = file.format.as_deref() == Some("raw");
        stack_loader::dotenv::parse_format(&text, raw, &self.env.lookup())
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

pub fn generate(g: &Global, a: &KubeGenerateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let opts = crate::config::options(g, &a.services, false, false)?;
    let loaded = crate::config::load(&opts)?;
    let mut project = loaded.project.clone();
    for s in &a.services {
        if !project.services.contains_key(s) {
            bail!("no such service: `{s}`");
        }
    }
    if !a.services.is_empty() {
        let keep = stack_graph::Graph::from_project(&project).with_dependencies(&a.services);
        project.services.retain(|k, _| keep.contains(k));
    }
    stack_host::load::name_built_images(&mut project);
    let images = match &a.push {
        Some(registry) => push(&project, registry)?,
        None => BTreeMap::new(),
    };
    let options = stack_kube::Options {
        namespace: a.namespace.clone(),
        publish: match a.publish_as {
            PublishAs::Loadbalancer => stack_kube::Publish::LoadBalancer,
            PublishAs::Nodeport => stack_kube::Publish::NodePort,
        },
        network_policies: a.network_policies,
        images,
        wait_image: a.wait_image.clone(),
        kubectl_image: a.kubectl_image.clone(),
    };
    let m = stack_kube::generate(&project, &options, &Machine { env: &loaded.env });
    for (what, from, to) in &m.renamed {
        eprintln!("name: {what} `{from}` is `{to}` in Kubernetes");
    }
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    let json = a.format == Format::Json;
    if let Some(dir) = &a.chart {
        write_files(dir, stack_kube::chart(&m, &project.name))?;
        eprintln!("Helm chart written to {}", dir.display());
    }
    if let Some(dir) = &a.output {
        let files = stack_kube::files(&m.objects, json);
        let n = files.len();
        write_files(dir, files)?;
        eprintln!("{n} manifests written to {}", dir.display());
    }
    if a.chart.is_none() && a.output.is_none() {
        let text = match json {
            true => stack_kube::json_list(&m.objects),
            false => stack_kube::yaml(&m.objects),
        };
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn write_files(dir: &Path, files: Vec<(String, String)>) -> anyhow::Result<()> {
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// The images of the services that build, tagged for `registry` and pushed:
/// service → `registry/repository@digest`.
fn push(
    project: &stack_model::Project,
    registry: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let registry = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let host = stack_host::Host::new(crate::client::stack_root());
    let store = host.images()?;
    let mut out = BTreeMap::new();
    for (name, s) in &project.services {
        let (Some(_), Some(image)) = (&s.build, &s.image) else {
            continue;
        };
        store.lookup(image).with_context(|| {
            format!("service {name}: the image `{image}` is not built here: run `stack build {name}` first")
        })?;
        let r = Reference::parse(image)?;
        let repository = r
            .repository
            .strip_prefix("library/")
            .unwrap_or(&r.repository);
        let target = format!(
            "{registry}/{repository}:{}",
            r.tag.as_deref().unwrap_or("latest")
        );
        Reference::parse(&target).with_context(|| format!("service {name}: --push {registry}"))?;
        store.tag(image, &target)?;
        let digest = crate::registry::upload(&host, &target, false)
            .with_context(|| format!("service {name}"))?;
        eprintln!("{name}: pushed {target} ({digest})");
        out.insert(name.clone(), format!("{registry}/{repository}@{digest}"));
    }
    Ok(out)
}
