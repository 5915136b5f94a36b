//! `${VAR}` interpolation, with compose-go's exact semantics.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, nesting in
//! the default/alternative (evaluated lazily), `$$` for a literal `$`, and a
//! lone `$` not followed by a name kept as is. A malformed braced form is an
//! error naming the whole template.

use crate::diag::{Diagnostics, Span};
use crate::node::{Node, Value};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid interpolation format in `{template}`")]
    Invalid { template: String },
    #[error("required variable {name} is missing a value{}", reason_suffix(.reason))]
    Required { name: String, reason: String },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Where variable values come from.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn lookup(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Substitutes variables in `template`. Names of variables used while unset
/// (and without a default) are pushed to `unset`.
pub fn substitute(
    template: &str,
    env: &dyn Lookup,
    unset: &mut Vec<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let b = template.as_bytes();
    let mut i = 0;
    let invalid = || TemplateError::Invalid {
        template: template.to_string(),
    };
    while i < b.len() {
        if b[i] != b'$' {
            let ch = template[i..].chars().next().unwrap_or_default();
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(c) if is_name_start(*c) => {
                let end = name_end(b, i + 1);
                let name = &template[i + 1..end];
                out.push_str(&value_or_warn(name, env, unset));
                i = end;
            }
            Some(b'{') => {
                let start = i + 2;
                if !b.get(start).is_some_and(|c| is_name_start(*c)) {
                    return Err(invalid());
                }
                let name_stop = name_end(b, start);
                let name = &template[start..name_stop];
                if b.get(name_stop) == Some(&b'}') {
                    out.push_str(&value_or_warn(name, env, unset));
                    i = name_stop + 1;
                    continue;
                }
                // An operator must follow, and a closing brace must exist somewhere later.
                let rest = &template[name_stop..];
                let op_ok = [":-", ":+", ":?", "-", "+", "?"]
                    .iter()
                    .any(|op| rest.starts_with(op));
                if !op_ok || !rest.contains('}') {
                    return Err(invalid());
                }
                let close = closing_brace(&template[i..])
                    .map(|c| c + i)
                    .ok_or_else(invalid)?;
                let body = &template[start..close];
                out.push_str(&braced(body, env, unset)?);
                i = close + 1;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn name_end(b: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
        j += 1;
    }
    j
}

/// The index of the brace closing the `${` at the start of `s`, counting
/// nested braces the way compose-go does.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        if b[i] == b'{' {
            depth += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

fn value_or_warn(name: &str, env: &dyn Lookup, unset: &mut Vec<String>) -> String {
    match env.lookup(name) {
        Some(v) => v,
        None => {
            if !unset.iter().any(|n| n == name) {
                unset.push(name.to_string());
            }
            String::new()
        }
    }
}

/// Evaluates the inside of `${...}` that has an operator.
fn braced(body: &str, env: &dyn Lookup, unset: &mut Vec<String>) -> Result<String, TemplateError> {
    // The operator is the first one to appear in the body.
    const OPS: [&str; 6] = [":?", "?", ":-", "-", ":+", "+"];
    let (op, at) = OPS
        .iter()
        .filter_map(|op| body.find(op).map(|at| (*op, at)))
        .min_by_key(|(op, at)| (*at, usize::MAX - op.len()))
        .expect("caller checked that an operator follows the name");
    let name = &body[..at];
    let arg = &body[at + op.len()..];
    let value = env.lookup(name);
    let colon = op.starts_with(':');
    let present = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match op.trim_start_matches(':') {
        "-" => match value {
            Some(v) if present => Ok(v),
            _ => substitute(arg, env, unset),
        },
        "+" => {
            if present {
                substitute(arg, env, unset)
            } else {
                Ok(value.unwrap_or_default())
            }
        }
        _ => match value {
            Some(v) if present => Ok(v),
            _ => Err(TemplateError::Required {
                name: name.to_string(),
                reason: substitute(arg, env, unset)?,
            }),
        },
    }
}

/// Interpolates every scalar value (never a key) of a tree, reporting each
/// error at its position and each unset variable once as a warning.
pub fn interpolate_node(node: &mut Node, env: &dyn Lookup, diags: &mut Diagnostics) {
    let mut unset = Vec::new();
    walk(node, env, diags, &mut unset);
}

fn walk(node: &mut Node, env: &dyn Lookup, diags: &mut Diagnostics, warned: &mut Vec<String>) {
    match &mut node.value {
        Value::Scalar(s) if s.text.contains('$') => {
            let mut unset = Vec::new();
            match substitute(&s.text, env, &mut unset) {
                Ok(v) => s.text = v,
                Err(e) => diags.error(&node.span, e.to_string()),
            }
            for name in unset {
                if !warned.contains(&name) {
                    diags.warning(
                        &node.span,
                        format!("the `{name}` variable is not set, defaulting to a blank string"),
                    );
                    warned.push(name);
                }
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|n| walk(n, env, diags, warned)),
        Value::Map(m) => m
            .entries
            .iter_mut()
            .for_each(|(_, n)| walk(n, env, diags, warned)),
        _ => {}
    }
}

/// Every variable a template refers to, with its default if it has one
/// (for `stack config --variables`).
pub fn variables(template: &str) -> Vec<(String, Option<String>, bool)> {
    let mut out = Vec::new();
    let b = template.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => i += 2,
            Some(c) if is_name_start(*c) => {
                let end = name_end(b, i + 1);
                out.push((template[i + 1..end].to_string(), None, false));
                i = end;
            }
            Some(b'{') => {
                let start = i + 2;
                let stop = name_end(b, start);
                let Some(close) = closing_brace(&template[i..]).map(|c| c + i) else {
                    break;
                };
                if stop <= close && stop > start {
                    let name = template[start..stop].to_string();
                    let rest = &template[stop..close];
                    let (default, required) =
                        if let Some(d) = rest.strip_prefix(":-").or(rest.strip_prefix('-')) {
                            out.extend(variables(d));
                            (Some(d.to_string()), false)
                        } else if rest.starts_with(":?") || rest.starts_with('?') {
                            (None, true)
                        } else {
                            if let Some(alt) = rest.strip_prefix(":+").or(rest.strip_prefix('+')) {
                                out.extend(variables(alt));
                            }
                            (None, false)
                        };
                    out.push((name, default, required));
                }
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Variables referenced anywhere in the values of a tree, with the span of first use.
pub fn node_variables(node: &Node) -> Vec<(String, Option<String>, bool, Span)> {
    let mut out: Vec<(String, Option<String>, bool, Span)> = Vec::new();
    node.walk(&mut |n| {
        if let Value::Scalar(s) = &n.value {
            for (name, default, required) in variables(&s.text) {
                if !out.iter().any(|(o, ..)| *o == name) {
                    out.push((name, default, required, n.span.clone()));
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("first".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(t: &str) -> Result<String, TemplateError> {
        substitute(t, &env, &mut Vec::new())
    }

    #[test]
    fn forms() {
        assert_eq!(sub("$FOO ${FOO}").unwrap(), "first first");
        assert_eq!(sub("${EMPTY:-d} ${EMPTY-d}").unwrap(), "d ");
        assert_eq!(sub("${UNSET:-${FOO}x}").unwrap(), "firstx");
        assert_eq!(
            sub("${FOO:+alt} ${EMPTY:+alt} ${EMPTY+alt}").unwrap(),
            "alt  alt"
        );
        assert_eq!(sub("$$FOO a $ b $").unwrap(), "$FOO a $ b $");
        assert!(matches!(sub("${}"), Err(TemplateError::Invalid { .. })));
        assert!(matches!(sub("${ FOO}"), Err(TemplateError::Invalid { .. })));
        assert!(matches!(sub("${FOO"), Err(TemplateError::Invalid { .. })));
        assert_eq!(
            sub("${UNSET:?is required}").unwrap_err().to_string(),
            "required variable UNSET is missing a value: is required"
        );
    }

    #[test]
    fn unset_names_are_collected() {
        let mut unset = Vec::new();
        assert_eq!(substitute("a${NOPE}b", &env, &mut unset).unwrap(), "ab");
        assert_eq!(unset, vec!["NOPE".to_string()]);
    }
}
