//! The value shapes compose accepts in several syntaxes: list-or-map
//! mappings, string-or-list commands, host lists, ulimits.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Any scalar as text (`1` and `true` included); null as `None`.
struct ScalarText;

impl<'de> Visitor<'de> for ScalarText {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ScalarText)
    }
}

/// A scalar read as text.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(pub Option<String>);

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(t) => s.serialize_str(t),
            None => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText).map(Text)
    }
}

/// Reads a mapping given as `{K: v}` or as `["K=v", "K"]`.
fn list_or_map<'de, D: Deserializer<'de>>(
    d: D,
    sep: &'static [char],
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    struct V(&'static [char]);
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, Option<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping or a list of `KEY=value`")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = a.next_entry::<String, Text>()? {
                out.insert(k, v.0);
            }
            Ok(out)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(Text(item)) = a.next_element::<Text>()? {
                let item = item.unwrap_or_default();
                match item.split_once(self.0) {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(item, None),
                };
            }
            Ok(out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
    }
    d.deserialize_any(V(sep))
}

/// A mapping of strings: labels, sysctls, driver options. A key without a
/// value maps to the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Mapping(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Mapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Mapping(
            list_or_map(d, &['='])?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        ))
    }
}

impl Mapping {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A mapping whose values may be absent: `environment`, build `args`.
/// `KEY` alone (no `=`) is `None`: take it from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MappingWithEquals(pub BTreeMap<String, Option<String>>);

impl<'de> Deserialize<'de> for MappingWithEquals {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        list_or_map(d, &['=']).map(MappingWithEquals)
    }
}

impl MappingWithEquals {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A string or a list of strings, kept as a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StringList(pub Vec<String>);

impl StringList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(
    d: D,
    split: fn(&str) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, D::Error> {
    struct V(fn(&str) -> Result<Vec<String>, String>);
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            (self.0)(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Text(t)) = a.next_element::<Text>()? {
                out.push(t.unwrap_or_default());
            }
            Ok(out)
        }
    }
    d.deserialize_any(V(split))
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_list(d, |s| Ok(vec![s.to_string()])).map(StringList)
    }
}

/// `command`, `entrypoint`: a list of arguments; a string is split as a
/// POSIX shell would split it (quotes and backslashes, no expansion).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ShellCommand(pub Vec<String>);

impl<'de> Deserialize<'de> for ShellCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_list(d, shell_split).map(ShellCommand)
    }
}

/// Splits a command line into words like a POSIX shell, without expansions.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated single quote in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(format!("unterminated double quote in `{s}`")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated double quote in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(ch) => cur.push(ch),
                }
            }
            ch => {
                in_word = true;
                cur.push(ch);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A healthcheck test: `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]`;
/// a plain string means `CMD-SHELL`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HealthCheckTest(pub Vec<String>);

impl<'de> Deserialize<'de> for HealthCheckTest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_list(d, |s| Ok(vec!["CMD-SHELL".to_string(), s.to_string()])).map(HealthCheckTest)
    }
}

/// `extra_hosts`: host names to addresses, from `host:ip`, `host=ip` lists or
/// a mapping; printed as the sorted list `host=ip`, as compose does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostsList(pub BTreeMap<String, Vec<String>>);

impl HostsList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn as_list(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .0
            .iter()
            .flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}={ip}")))
            .collect();
        l.sort();
        l
    }
}

impl Serialize for HostsList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_list().serialize(s)
    }
}

impl<'de> Deserialize<'de> for HostsList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HostsList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of `host=ip` or a mapping of hosts to addresses")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<HostsList, A::Error> {
                let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
                while let Some(Text(item)) = a.next_element::<Text>()? {
                    let item = item.unwrap_or_default();
                    // `=` first: IPv6 addresses contain `:`.
                    let (h, ip) = item
                        .split_once('=')
                        .or_else(|| item.split_once(':'))
                        .ok_or_else(|| {
                            de::Error::custom(format!(
                                "invalid extra host `{item}`: expected `host=ip`"
                            ))
                        })?;
                    let ip = ip.trim_start_matches('[').trim_end_matches(']');
                    let e = out.entry(h.to_string()).or_default();
                    if !e.iter().any(|x| x == ip) {
                        e.push(ip.to_string());
                    }
                }
                Ok(HostsList(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<HostsList, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = a.next_entry::<String, StringList>()? {
                    out.insert(k, v.0);
                }
                Ok(HostsList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One ulimit: a single value for both limits, or soft and hard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ulimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self {
            Ulimit::Single(v) => s.serialize_i64(*v),
            Ulimit::Pair { soft, hard } => {
                let mut st = s.serialize_struct("Ulimit", 2)?;
                st.serialize_field("soft", soft)?;
                st.serialize_field("hard", hard)?;
                st.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ulimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or `{soft, hard}`")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ulimit, E> {
                Ok(Ulimit::Single(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ulimit, E> {
                i64::try_from(v).map(Ulimit::Single).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ulimit, E> {
                v.trim()
                    .parse()
                    .map(Ulimit::Single)
                    .map_err(|_| E::custom(format!("invalid ulimit `{v}`")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ulimit, A::Error> {
                let (mut soft, mut hard) = (None, None);
                while let Some(k) = a.next_key::<String>()? {
                    match k.as_str() {
                        "soft" => soft = Some(a.next_value::<i64>()?),
                        "hard" => hard = Some(a.next_value::<i64>()?),
                        _ => {
                            a.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) => Ok(Ulimit::Pair { soft, hard }),
                    _ => Err(de::Error::custom("a ulimit needs both `soft` and `hard`")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `external: true` (or the legacy `external: {name: x}`, turned into
/// `true` + `name` by the loader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct External(pub bool);

impl<'de> Deserialize<'de> for External {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = External;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<External, E> {
                Ok(External(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<External, E> {
                match v {
                    "true" | "True" | "TRUE" => Ok(External(true)),
                    "false" | "False" | "FALSE" => Ok(External(false)),
                    _ => Err(E::custom(format!("invalid boolean `{v}`"))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<External, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(External(true))
            }
        }
        d.deserialize_any(V)
    }
}

impl External {
    pub fn is_false(&self) -> bool {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"echo "a b" 'c d' e\ f"#).unwrap(),
            ["echo", "a b", "c d", "e f"]
        );
        assert_eq!(
            shell_split("redis-server --save \"\" --appendonly no").unwrap(),
            ["redis-server", "--save", "", "--appendonly", "no"]
        );
        assert!(shell_split("echo 'open").is_err());
    }

    #[test]
    fn list_or_map_forms() {
        let m: MappingWithEquals = serde_json::from_str(r#"["A=1", "B", "C=x=y"]"#).unwrap();
        assert_eq!(m.0.get("A"), Some(&Some("1".into())));
        assert_eq!(m.0.get("B"), Some(&None));
        assert_eq!(m.0.get("C"), Some(&Some("x=y".into())));
        let m: Mapping = serde_json::from_str(r#"{"a": 1, "b": true, "c": null}"#).unwrap();
        assert_eq!(m.0.get("a").map(String::as_str), Some("1"));
        assert_eq!(m.0.get("c").map(String::as_str), Some(""));
        let h: HostsList = serde_json::from_str(r#"["a:1.2.3.4", "b=::1", "a=5.6.7.8"]"#).unwrap();
        assert_eq!(h.as_list(), ["a=1.2.3.4", "a=5.6.7.8", "b=::1"]);
    }
}
