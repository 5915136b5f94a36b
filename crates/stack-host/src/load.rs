//! A project loaded as `up` takes it, by the client and again by a
//! watch's reload in the engine: how it was loaded (the loader's options
//! as they travel), where it comes from, every file the load read, and
//! secrets and configs that name an environment variable read where that
//! environment is.

use std::path::{Path, PathBuf};

use stack_api::{LoadSpec, UpRequest};

/// The loader's options from what the client sent.
pub fn options(l: &LoadSpec) -> stack_loader::Options {
    stack_loader::Options {
        working_dir: l.working_dir.clone().into(),
        files: l.files.iter().map(PathBuf::from).collect(),
        project_directory: l.project_directory.as_ref().map(PathBuf::from),
        project_name: l.project_name.clone(),
        env_files: l.env_files.iter().map(PathBuf::from).collect(),
        profiles: l.profiles.clone(),
        shell: l.shell.clone(),
        home: l.home.as_ref().map(PathBuf::from),
        only_used_resources: !l.all_resources,
        ..stack_loader::Options::default()
    }
}

/// What the client sends of its loader's options.
pub fn spec(o: &stack_loader::Options) -> LoadSpec {
    let s = |p: &Path| p.display().to_string();
    LoadSpec {
        working_dir: s(&o.working_dir),
        files: o.files.iter().map(|p| s(p)).collect(),
        project_directory: o.project_directory.as_deref().map(s),
        project_name: o.project_name.clone(),
        env_files: o.env_files.iter().map(|p| s(p)).collect(),
        profiles: o.profiles.clone(),
        shell: o.shell.clone(),
        home: o.home.as_deref().map(s),
        all_resources: !o.only_used_resources,
    }
}

/// The `up` of what `opts` loaded, and every file the load read (stack
/// files, and the env files: `--env-file`, else the project directory's
/// `.env`, which may appear later).
pub fn up_request(
    mut loaded: stack_loader::Loaded,
    opts: &stack_loader::Options,
) -> anyhow::Result<(UpRequest, Vec<String>)> {
    let mut files: Vec<PathBuf> = loaded.files.clone();
    if opts.env_files.is_empty() {
        files.push(loaded.project_dir.join(".env"));
    } else {
        files.extend(opts.env_files.iter().map(|f| opts.working_dir.join(f)));
    }
    contents_from_environment(&mut loaded)?;
    name_built_images(&mut loaded.project);
    let up = UpRequest {
        working_dir: loaded.project_dir.display().to_string(),
        config_files: loaded
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        project: loaded.project,
        ..UpRequest::default()
    };
    Ok((up, files.iter().map(|p| p.display().to_string()).collect()))
}

/// A service that builds and names no image gets compose's name for it:
/// `<project>-<service>`.
pub fn name_built_images(project: &mut stack_model::Project) {
    for (name, s) in project.services.iter_mut() {
        if s.image.is_none() && s.build.is_some() {
            s.image = Some(format!("{}-{name}", project.name));
        }
    }
}

/// Secrets and configs read from an environment variable are read here,
/// from the environment of the load: the engine gets their content.
pub fn contents_from_environment(loaded: &mut stack_loader::Loaded) -> anyhow::Result<()> {
    let project = &mut loaded.project;
    for (kind, objects) in [
        ("secret", &mut project.secrets),
        ("config", &mut project.configs),
    ] {
        for (name, obj) in objects.iter_mut() {
            if let Some(var) = obj.environment.take() {
                let value = loaded.env.get(&var).ok_or_else(|| {
                    anyhow::anyhow!("{kind} `{name}`: the environment variable `{var}` is not set")
                })?;
                obj.content = Some(value.to_string());
            }
        }
    }
    Ok(())
}
