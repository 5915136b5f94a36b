//! A YAML tree that remembers where every value came from.
//!
//! serde_yaml loses positions once a document is deserialized, and compose
//! files need them: every diagnostic names file:line:col. So the loader parses
//! with yaml-rust2's event parser (which reports a position per event) into
//! this tree, resolving anchors, aliases and `<<` merge keys on the way and
//! keeping the compose tags `!reset` and `!override`.

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser, Tag as YamlTag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{Diagnostic, Span};

/// The compose-specific YAML tags that steer merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    None,
    /// `!reset`: drop the value from earlier files.
    Reset,
    /// `!override`: replace the value from earlier files instead of merging.
    Override,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub tag: Tag,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Map),
}

/// A scalar keeps its source text; its type (bool, number, string) is decided
/// by whoever reads it, as compose-go does after interpolation.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Quoted or block scalars are always strings.
    pub quoted: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// A mapping in source order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    pub entries: Vec<(Key, Node)>,
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn key(&self, key: &str) -> Option<&Key> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k)
    }

    pub fn insert(&mut self, key: Key, value: Node) {
        match self.entries.iter_mut().find(|(k, _)| k.name == key.name) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let i = self.entries.iter().position(|(k, _)| k.name == key)?;
        Some(self.entries.remove(i).1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.name.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Node)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl Node {
    pub fn new(value: Value, span: Span) -> Self {
        Node {
            value,
            span,
            tag: Tag::None,
        }
    }

    pub fn null(span: Span) -> Self {
        Node::new(Value::Null, span)
    }

    pub fn string(text: impl Into<String>, span: Span) -> Self {
        Node::new(
            Value::Scalar(Scalar {
                text: text.into(),
                quoted: true,
            }),
            span,
        )
    }

    pub fn plain(text: impl Into<String>, span: Span) -> Self {
        Node::new(
            Value::Scalar(Scalar {
                text: text.into(),
                quoted: false,
            }),
            span,
        )
    }

    pub fn map(map: Map, span: Span) -> Self {
        Node::new(Value::Map(map), span)
    }

    pub fn seq(items: Vec<Node>, span: Span) -> Self {
        Node::new(Value::Seq(items), span)
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar (numbers and booleans included).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The resolved type of a plain scalar, as YAML 1.2's core schema (the one
    /// compose-go's yaml.v3 uses for untyped values) sees it.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
            Value::Scalar(s) => match resolve_plain(s) {
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) | Resolved::UInt(_) => "an integer",
                Resolved::Float(_) => "a number",
                Resolved::Null => "null",
                Resolved::Str(_) => "a string",
            },
        }
    }

    /// Visits every node, depth first.
    pub fn walk(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match &self.value {
            Value::Seq(items) => items.iter().for_each(|n| n.walk(f)),
            Value::Map(m) => m.entries.iter().for_each(|(_, n)| n.walk(f)),
            _ => {}
        }
    }
}

/// What a scalar means when no type is asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

pub fn resolve_plain(s: &Scalar) -> Resolved<'_> {
    if s.quoted {
        return Resolved::Str(&s.text);
    }
    let t = s.text.as_str();
    match t {
        "~" | "null" | "Null" | "NULL" | "" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(v) = parse_int(t) {
        return v;
    }
    let looks_float = t
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && t.bytes().any(|b| b.is_ascii_digit());
    if looks_float {
        if let Ok(f) = t.parse::<f64>() {
            return Resolved::Float(f);
        }
    }
    Resolved::Str(t)
}

fn parse_int(t: &str) -> Option<Resolved<'static>> {
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    // Go's ParseInt with base 0, as yaml.v3 resolves integers: `0x1F`,
    // `0o17`, `0b101`, and a leading zero for octal (`0440`).
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = u64::from_str_radix(body, radix).ok()?;
    if neg {
        let i = 0i64.checked_sub_unsigned(v)?;
        Some(Resolved::Int(i))
    } else if v <= i64::MAX as u64 {
        Some(Resolved::Int(v as i64))
    } else {
        Some(Resolved::UInt(v))
    }
}

/// The largest number of nodes aliases may expand to: a guard against
/// "billion laughs" documents.
const MAX_NODES: usize = 1_000_000;

/// Parses every document of a YAML text. An empty file gives no document.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Vec<Node>, Diagnostic> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut b = Builder {
        file: file.clone(),
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut docs = Vec::new();
    loop {
        let (ev, mark) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                let (ev, mark) = b.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    continue;
                }
                docs.push(b.node(ev, mark)?);
            }
            other => docs.push(b.node(other, mark)?),
        }
    }
    Ok(docs)
}

struct Builder<'a> {
    file: Arc<str>,
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl Builder<'_> {
    fn span(&self, m: Marker) -> Span {
        Span::new(&self.file, m.line(), m.col() + 1)
    }

    fn next(&mut self) -> Result<(Event, Marker), Diagnostic> {
        self.parser.next_token().map_err(|e| {
            let m = e.marker();
            Diagnostic::error(&self.span(*m), format!("invalid YAML: {}", e.info()))
        })
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), Diagnostic> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(
                span,
                "document expands to too many nodes through aliases",
            ));
        }
        Ok(())
    }

    fn tag(&self, tag: Option<YamlTag>, span: &Span) -> Result<Tag, Diagnostic> {
        let Some(t) = tag else { return Ok(Tag::None) };
        match (t.handle.as_str(), t.suffix.as_str()) {
            ("!", "reset") => Ok(Tag::Reset),
            ("!", "override") => Ok(Tag::Override),
            // Standard tags are accepted and ignored (a `!!str` scalar is a string).
            ("!!", _) | ("tag:yaml.org,2002:", _) => Ok(Tag::None),
            (h, s) => Err(
                Diagnostic::error(span, format!("unsupported YAML tag `{h}{s}`"))
                    .with_hint("compose files know only the tags `!reset` and `!override`"),
            ),
        }
    }

    fn node(&mut self, ev: Event, mark: Marker) -> Result<Node, Diagnostic> {
        let span = self.span(mark);
        self.count(1, &span)?;
        let (node, anchor) = match ev {
            Event::Alias(id) => {
                let Some(n) = self.anchors.get(&id).cloned() else {
                    return Err(Diagnostic::error(&span, "alias to an anchor that is not defined before it (aliases cannot refer to themselves)"));
                };
                let mut size = 0;
                n.walk(&mut |_| size += 1);
                self.count(size, &span)?;
                return Ok(n);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag_kind = tag.as_ref().map(|t| (t.handle.clone(), t.suffix.clone()));
                let t = self.tag(tag, &span)?;
                let forced_str = matches!(tag_kind, Some((ref h, ref s)) if (h == "!!" || h == "tag:yaml.org,2002:") && s == "str");
                let quoted = style != TScalarStyle::Plain || forced_str;
                let value =
                    if !quoted && matches!(text.as_str(), "~" | "null" | "Null" | "NULL" | "") {
                        Value::Null
                    } else {
                        Value::Scalar(Scalar { text, quoted })
                    };
                (
                    Node {
                        value,
                        span,
                        tag: t,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, tag) => {
                let t = self.tag(tag, &span)?;
                let mut items = Vec::new();
                loop {
                    let (ev, m) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, m)?);
                }
                (
                    Node {
                        value: Value::Seq(items),
                        span,
                        tag: t,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                let t = self.tag(tag, &span)?;
                let map = self.mapping()?;
                (
                    Node {
                        value: Value::Map(map),
                        span,
                        tag: t,
                    },
                    anchor,
                )
            }
            other => {
                return Err(Diagnostic::error(
                    &span,
                    format!("unexpected YAML event {other:?}"),
                ))
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn mapping(&mut self) -> Result<Map, Diagnostic> {
        let mut map = Map::default();
        let mut merges: Vec<Node> = Vec::new();
        loop {
            let (ev, m) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let key_node = self.node(ev, m)?;
            let key_span = key_node.span.clone();
            let name = match &key_node.value {
                Value::Scalar(s) => s.text.clone(),
                Value::Null => String::new(),
                _ => return Err(Diagnostic::error(&key_span, "mapping keys must be strings")),
            };
            let (ev, m) = self.next()?;
            let value = self.node(ev, m)?;
            if name == "<<" && matches!(&key_node.value, Value::Scalar(s) if !s.quoted) {
                merges.push(value);
                continue;
            }
            if let Some(prev) = map.key(&name) {
                return Err(Diagnostic::error(
                    &key_span,
                    format!(
                        "mapping key `{name}` already defined at line {}",
                        prev.span.line
                    ),
                ));
            }
            map.entries.push((
                Key {
                    name,
                    span: key_span,
                },
                value,
            ));
        }
        // Merge keys: explicit keys win; among merged maps the first one wins.
        for merged in merges {
            let sources: Vec<Node> = match merged.value {
                Value::Map(_) => vec![merged],
                Value::Seq(items) => items,
                _ => {
                    return Err(Diagnostic::error(
                        &merged.span,
                        "`<<` takes a mapping or a sequence of mappings",
                    ))
                }
            };
            for src in sources {
                let Value::Map(m) = src.value else {
                    return Err(Diagnostic::error(
                        &src.span,
                        "`<<` takes a mapping or a sequence of mappings",
                    ));
                };
                for (k, v) in m.entries {
                    if map.key(&k.name).is_none() {
                        map.entries.push((k, v));
                    }
                }
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        parse(&Arc::from("t.yaml"), text).unwrap().remove(0)
    }

    #[test]
    fn positions_are_one_based() {
        let n = one("a:\n  b: 1\n");
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.span.line, b.span.col), (2, 6));
        let k = n.get("a").unwrap().as_map().unwrap().key("b").unwrap();
        assert_eq!((k.span.line, k.span.col), (2, 3));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = one("x: &d {a: 1, b: 2}\ny:\n  <<: *d\n  b: 3\nz: *d\n");
        let y = n.get("y").unwrap();
        assert_eq!(y.get("a").unwrap().as_str(), Some("1"));
        assert_eq!(y.get("b").unwrap().as_str(), Some("3"));
        assert_eq!(n.get("z").unwrap().get("b").unwrap().as_str(), Some("2"));
    }

    #[test]
    fn merge_key_sequence_first_wins() {
        let n = one("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n");
        let c = n.get("c").unwrap();
        assert_eq!(c.get("k").unwrap().as_str(), Some("1"));
        assert_eq!(c.get("j").unwrap().as_str(), Some("2"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse(&Arc::from("t.yaml"), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            e.message.contains("`a` already defined at line 1"),
            "{}",
            e.message
        );
        assert_eq!(e.span.line, 3);
    }

    #[test]
    fn tags() {
        let n = one("a: !reset []\nb: !override {x: 1}\nc: !!str 1\n");
        assert_eq!(n.get("a").unwrap().tag, Tag::Reset);
        assert_eq!(n.get("b").unwrap().tag, Tag::Override);
        assert_eq!(n.get("c").unwrap().kind_name(), "a string");
        assert!(parse(&Arc::from("t.yaml"), "a: !foo 1\n").is_err());
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            doc.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let e = parse(&Arc::from("t.yaml"), &doc).unwrap_err();
        assert!(e.message.contains("too many nodes"));
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_core() {
        let s = |t: &str| Scalar {
            text: t.into(),
            quoted: false,
        };
        assert_eq!(resolve_plain(&s("12")), Resolved::Int(12));
        assert_eq!(resolve_plain(&s("1.5")), Resolved::Float(1.5));
        assert_eq!(resolve_plain(&s("true")), Resolved::Bool(true));
        assert_eq!(resolve_plain(&s("yes")), Resolved::Str("yes"));
        assert_eq!(resolve_plain(&s("8080:80")), Resolved::Str("8080:80"));
        assert_eq!(
            resolve_plain(&Scalar {
                text: "12".into(),
                quoted: true
            }),
            Resolved::Str("12")
        );
    }
}
