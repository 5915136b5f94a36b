//! The manifests as a Helm chart: each object a template, with the images,
//! replica counts and resources of the workloads as values. Text of the
//! stack that looks like a template (`{{`) is escaped, so Helm renders it
//! back as it was.

use serde_json::{json, Value as J};

use crate::{names, Manifests, LABEL_SERVICE};

const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// The chart's files: `Chart.yaml`, `values.yaml`, `templates/…`.
pub fn chart(m: &Manifests, project: &str) -> Vec<(String, String)> {
    // A marker that no text of the objects holds, around each placeholder.
    let all = crate::render::yaml(&m.objects);
    let token = (0..)
        .map(|i| format!("@@stack{i}@@"))
        .find(|t| !all.contains(t.as_str()))
        .unwrap_or_default();
    let mark = |what: &str, service: &str| json!(format!("{token}{what}:{service}{token}"));
    let mut values = serde_json::Map::new();
    let mut out = Vec::new();
    for o in &m.objects {
        if o["kind"] == "Namespace" {
            continue; // Helm installs into the release's namespace.
        }
        let mut o = o.clone();
        if let Some(meta) = o.get_mut("metadata").and_then(J::as_object_mut) {
            meta.remove("namespace");
        }
        let subjects = o.get_mut("subjects").and_then(J::as_array_mut);
        for s in subjects.into_iter().flatten() {
            s["namespace"] = mark("namespace", "");
        }
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        if WORKLOADS.contains(&kind.as_str()) {
            let service = o["metadata"]["labels"][LABEL_SERVICE]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut v = json!({});
            let c = &mut o["spec"]["template"]["spec"]["containers"][0];
            v["image"] = std::mem::replace(&mut c["image"], mark("image", &service));
            v["resources"] = match c.get_mut("resources") {
                Some(r) => r.take(),
                None => json!({}),
            };
            c["resources"] = mark("resources", &service);
            if let Some(r) = o["spec"].get_mut("replicas") {
                v["replicas"] = std::mem::replace(r, mark("replicas", &service));
            }
            values.insert(service, v);
        }
        let text = crate::render::yaml(std::slice::from_ref(&o));
        out.push((
            format!("templates/{}", crate::render::file_name(&o, "yaml")),
            templated(&escape(&text), &token),
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

/// `{{` as a template that prints it.
fn escape(text: &str) -> String {
    text.replace("{{", "{{ \"{{\" }}")
}

/// The placeholders made template expressions.
fn templated(text: &str, token: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let index = |s: &str| format!("(index .Values.services \"{s}\")");
        match placeholder(line, token) {
            Some(("resources", s, _)) => {
                let key = line.trim_start().split(':').next().unwrap_or("resources");
                out.push_str(&format!(
                    "{}{key}:\n{}{{{{- toYaml {}.resources | nindent {} }}}}\n",
                    &line[..indent],
                    " ".repeat(indent + 2),
                    index(s),
                    indent + 2
                ));
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

/// A placeholder `TOKENwhat:serviceTOKEN` in a line, with the quotes
/// around it: what, the service, where.
fn placeholder<'a>(
    line: &'a str,
    token: &str,
) -> Option<(&'a str, &'a str, std::ops::Range<usize>)> {
    let start = line.find(token)?;
    let inner_start = start + token.len();
    let end = inner_start + line[inner_start..].find(token)? + token.len();
    let inner = &line[inner_start..end - token.len()];
    let (what, service) = inner.split_once(':')?;
    let quoted = |i: usize| matches!(line.as_bytes().get(i), Some(b'\'' | b'"'));
    let (start, end) = if start > 0 && quoted(start - 1) && quoted(end) {
        (start - 1, end + 1)
    } else {
        (start, end)
    };
    Some((what, service, start..end))
}
