//! The manifests as a Helm chart: each object a template, with the images,
//! replica counts and resources of the workloads as values.

use serde_json::json;

use crate::{names, Manifests, LABEL_SERVICE};

const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// The chart's files: `Chart.yaml`, `values.yaml`, `templates/…`.
pub fn chart(m: &Manifests, project: &str) -> Vec<(String, String)> {
    let mut values = serde_json::Map::new();
    let mut out = Vec::new();
    for o in &m.objects {
        if o["kind"] == "Namespace" {
            continue; // Helm installs into the release's namespace.
        }
        let mut o = o.clone();
        if let Some(meta) = o["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        let subjects = o.get_mut("subjects").and_then(|s| s.as_array_mut());
        for s in subjects.into_iter().flatten() {
            s["namespace"] = json!("@@namespace@@");
        }
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        if WORKLOADS.contains(&kind.as_str()) {
            let service = o["metadata"]["labels"][LABEL_SERVICE]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut v = json!({});
            let c = &mut o["spec"]["template"]["spec"]["containers"][0];
            v["image"] = c["image"].take();
            c["image"] = json!(format!("@@image:{service}@@"));
            v["resources"] = match c.get_mut("resources") {
                Some(r) => r.take(),
                None => json!({}),
            };
            c["resources"] = json!(format!("@@resources:{service}@@"));
            if let Some(r) = o["spec"].get_mut("replicas") {
                v["replicas"] = r.take();
                *r = json!(format!("@@replicas:{service}@@"));
            }
            values.insert(service, v);
        }
        let text = crate::render::yaml(std::slice::from_ref(&o));
        out.push((
            format!("templates/{}", crate::render::file_name(&o, "yaml")),
            templated(&text),
        ));
    }
    let name = names::label(project);
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\ndescription: The {project} stack, made by stack kube generate\ntype: application\nversion: 0.1.0\nappVersion: \"1.0\"\n"
    );
    let values_yaml = format!(
        "# The images, replica counts and resources of the {project} stack's services.\n{}",
        crate::render::yaml(&[json!({"services": values})])
    );
    out.insert(0, ("values.yaml".into(), values_yaml));
    out.insert(0, ("Chart.yaml".into(), chart_yaml));
    out
}

/// The placeholders made template expressions.
fn templated(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let index = |s: &str| format!("(index .Values.services \"{s}\")");
        match placeholder(line) {
            Some((what, s, range)) if what == "resources" => {
                let key = line.trim_start().split(':').next().unwrap_or(what);
                out.push_str(&format!(
                    "{}{key}:\n{}{{{{- toYaml {}.resources | nindent {} }}}}\n",
                    &line[..indent],
                    " ".repeat(indent + 2),
                    index(s),
                    indent + 2
                ));
                let _ = range;
            }
            Some((what, s, range)) => {
                let expr = match what {
                    "image" => format!("{{{{ {}.image | quote }}}}", index(s)),
                    "replicas" => format!("{{{{ {}.replicas }}}}", index(s)),
                    _ => "{{ .Release.Namespace }}".to_string(),
                };
                out.push_str(&line[..range.start]);
                out.push_str(&expr);
                out.push_str(&line[range.end..]);
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A placeholder `@@what:service@@` (or `@@namespace@@`) in a line, with
/// the quotes around it: what, the service, where.
fn placeholder(line: &str) -> Option<(&str, &str, std::ops::Range<usize>)> {
    let start = line.find("@@")?;
    let end = start + 2 + line[start + 2..].find("@@")? + 2;
    let inner = &line[start + 2..end - 2];
    let (what, service) = inner.split_once(':').unwrap_or((inner, ""));
    let quoted = |i: usize| matches!(line.as_bytes().get(i), Some(b'\'' | b'"'));
    let (start, end) = if start > 0 && quoted(start - 1) && quoted(end) {
        (start - 1, end + 1)
    } else {
        (start, end)
    };
    Some((what, service, start..end))
}
