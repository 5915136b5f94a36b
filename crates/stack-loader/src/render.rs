//! Canonical output: YAML as `docker compose config` prints it (Go yaml.v3
//! with two-space indents, indented sequences, quoting only where needed),
//! and JSON as it prints with `--format json`.

use std::fmt::Write as _;

use serde::Serialize;
use serde_yaml::Value;

#[derive(Debug, thiserror::Error)]
#[error("cannot render the project: {0}")]
pub struct RenderError(String);

pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, RenderError> {
    let v = serde_yaml::to_value(value).map_err(|e| RenderError(e.to_string()))?;
    let mut out = String::new();
    emit(&v, 0, &mut out, Pos::Top);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

pub fn to_json<T: Serialize>(value: &T) -> Result<String, RenderError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| RenderError(e.to_string()))
}

#[derive(Clone, Copy, PartialEq)]
enum Pos {
    Top,
    /// After `key:`.
    MapValue,
    /// After `- `.
    SeqItem,
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

fn is_empty_collection(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => m.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Tagged(t) => is_empty_collection(&t.value),
        _ => false,
    }
}

fn emit(v: &Value, indent: usize, out: &mut String, pos: Pos) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (i, (k, val)) in m.iter().enumerate() {
                // The first key of a sequence item sits on the `- ` line.
                if !(i == 0 && pos == Pos::SeqItem) {
                    if pos != Pos::Top || i > 0 {
                        out.push('\n');
                    }
                    out.push_str(&pad(indent));
                }
                out.push_str(&scalar_text(k, indent));
                out.push(':');
                match val {
                    Value::Mapping(_) | Value::Sequence(_) if !is_empty_collection(val) => {
                        let child = indent + 2;
                        emit(val, child, out, Pos::MapValue);
                    }
                    _ => {
                        out.push(' ');
                        emit(val, indent + 2, out, Pos::MapValue);
                    }
                }
            }
        }
        Value::Sequence(s) if !s.is_empty() => {
            for (i, item) in s.iter().enumerate() {
                if !(i == 0 && pos == Pos::SeqItem) {
                    if pos != Pos::Top || i > 0 {
                        out.push('\n');
                    }
                    out.push_str(&pad(indent));
                }
                out.push_str("- ");
                emit(item, indent + 2, out, Pos::SeqItem);
            }
        }
        Value::Mapping(_) => out.push_str("{}"),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Tagged(t) => emit(&t.value, indent, out, pos),
        other => out.push_str(&scalar_text(other, indent)),
    }
}

fn scalar_text(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Tagged(t) => scalar_text(&t.value, indent),
        Value::Mapping(_) | Value::Sequence(_) => String::new(),
    }
}

/// Words a YAML reader would take for something other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "" | "~"
            | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
        return true;
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let t = t.replace('_', "");
    if t.is_empty() {
        return false;
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    if let Some(h) = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0o"))
        .or_else(|| t.strip_prefix("0b"))
    {
        return !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit());
    }
    // Floats: 1.5, .5, 1e3, 1.5e-3; also sexagesimal 1:30 in YAML 1.1.
    let float_like = t.chars().all(|c| c.is_ascii_digit() || "eE.+-".contains(c))
        && t.chars().any(|c| c.is_ascii_digit())
        && t.parse::<f64>().is_ok();
    float_like || is_sexagesimal(&t)
}

fn is_sexagesimal(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    parts.len() > 1
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && !parts[0].is_empty()
        && parts[1..].iter().all(|p| {
            !p.is_empty()
                && p.len() <= 2
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u8>().is_ok_and(|v| v < 60)
        })
}

fn plain_allowed(s: &str) -> bool {
    let mut chars = s.chars();
    let first = chars.next().unwrap_or(' ');
    let second = chars.next();
    if "-?:".contains(first) {
        // `-foo`, `?foo`, `:foo`: plain when a non-space follows the indicator.
        if second.is_none_or(|c| c == ' ') {
            return false;
        }
    } else if ",[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.contains(": ")
        || s.contains(" #")
        || s.contains('\t')
        || s.contains(",") && s.contains('{')
    {
        return false;
    }
    s.chars().all(|c| !c.is_control() || c == '\n')
}

fn string(s: &str, indent: usize) -> String {
    if s.contains('\n')
        && s.chars().all(|c| !c.is_control() || c == '\n')
        && !s.lines().any(|l| l.ends_with(' '))
        && !s.starts_with(' ')
    {
        let chomp = if s.ends_with("\n\n") {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let mut out = format!("|{chomp}");
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad(indent));
                out.push_str(line);
            }
        }
        if chomp == "+" {
            // Keep the extra trailing newlines as empty lines.
        }
        return out;
    }
    if resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if !plain_allowed(s) || s.contains('\n') {
        if s.chars().all(|c| !c.is_control()) {
            return format!("'{}'", s.replace('\'', "''"));
        }
        return double_quoted(s);
    }
    s.to_string()
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Port {
        target: u32,
        published: String,
    }

    #[derive(Serialize)]
    struct Svc {
        command: Vec<String>,
        image: String,
        ports: Vec<Port>,
        labels: std::collections::BTreeMap<String, String>,
        empty: Vec<String>,
        script: String,
    }

    #[test]
    fn go_yaml_style() {
        let s = Svc {
            command: vec!["echo".into(), "a: b".into(), "true".into()],
            image: "nginx:1.25".into(),
            ports: vec![Port {
                target: 80,
                published: "8080".into(),
            }],
            labels: [("a".to_string(), String::new())].into_iter().collect(),
            empty: vec![],
            script: "line1\nline2\n".into(),
        };
        let y = to_yaml(&s).unwrap();
        assert_eq!(
            y,
            "command:\n  - echo\n  - 'a: b'\n  - \"true\"\nimage: nginx:1.25\nports:\n  - target: 80\n    published: \"8080\"\nlabels:\n  a: \"\"\nempty: []\nscript: |\n  line1\n  line2\n"
        );
        // What we print, a YAML reader reads back the same.
        let back: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(back, serde_yaml::to_value(&s).unwrap());
    }
}
