//! A serde Deserializer over the positioned tree.
//!
//! Typed requests coerce scalars the way compose-go casts values after
//! interpolation (`"8080"` is a fine port number, `1.0` a fine image tag),
//! and every error carries the position of the value that caused it.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::diag::Span;
use crate::node::{resolve_plain, Node, Resolved, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub span: Option<Span>,
    pub message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            span: None,
            message: msg.to_string(),
        }
    }
}

/// Deserializes a `T` from a node.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node))
}

#[derive(Clone, Copy)]
pub struct NodeDe<'a>(pub &'a Node);

impl<'a> NodeDe<'a> {
    fn locate<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|mut e| {
            if e.span.is_none() {
                e.span = Some(self.0.span.clone());
            }
            e
        })
    }

    fn text(&self) -> Option<&'a str> {
        match &self.0.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }
}

macro_rules! int_method {
    ($name:ident, $visit:ident, $t:ty) => {
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            if let Some(t) = self.text() {
                if let Ok(v) = t.trim().parse::<$t>() {
                    return self.locate(visitor.$visit(v));
                }
            }
            self.deserialize_any(visitor)
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.0.value {
            Value::Null => visitor.visit_unit(),
            Value::Scalar(s) => match resolve_plain(s) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::UInt(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(_) => visitor.visit_borrowed_str(&s.text),
            },
            Value::Seq(items) => visitor.visit_seq(Seq {
                iter: items.iter(),
                len: items.len(),
            }),
            Value::Map(m) => visitor.visit_map(MapDe {
                iter: m.entries.iter(),
                value: None,
            }),
        };
        self.locate(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Some(t) = self.text() {
            let b = match t {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
                _ => None,
            };
            if let Some(b) = b {
                return self.locate(visitor.visit_bool(b));
            }
        }
        self.deserialize_any(visitor)
    }

    int_method!(deserialize_i8, visit_i64, i64);
    int_method!(deserialize_i16, visit_i64, i64);
    int_method!(deserialize_i32, visit_i64, i64);
    int_method!(deserialize_i64, visit_i64, i64);
    int_method!(deserialize_u8, visit_u64, u64);
    int_method!(deserialize_u16, visit_u64, u64);
    int_method!(deserialize_u32, visit_u64, u64);
    int_method!(deserialize_u64, visit_u64, u64);
    int_method!(deserialize_f32, visit_f64, f64);
    int_method!(deserialize_f64, visit_f64, f64);

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(t) => self.locate(visitor.visit_borrowed_str(t)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Null => self.locate(visitor.visit_none()),
            _ => self.locate(visitor.visit_some(self)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.locate(visitor.visit_newtype_struct(self))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Scalar(s) => {
                self.locate(visitor.visit_enum(s.text.as_str().into_deserializer()))
            }
            Value::Map(m) if m.entries.len() == 1 => {
                let (k, v) = &m.entries[0];
                self.locate(visitor.visit_enum(EnumDe {
                    key: &k.name,
                    value: v,
                }))
            }
            _ => Err(DeError {
                span: Some(self.0.span.clone()),
                message: "expected an enum value".into(),
            }),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
    }
}

struct Seq<'a> {
    iter: std::slice::Iter<'a, Node>,
    len: usize,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(n) => seed.deserialize(NodeDe(n)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

struct MapDe<'a> {
    iter: std::slice::Iter<'a, (crate::node::Key, Node)>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for MapDe<'de> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                let key = Node::plain(k.name.clone(), k.span.clone());
                // Keys are strings; a typed key (a number) is parsed from the text.
                let r = seed.deserialize(KeyDe {
                    text: &k.name,
                    node: &key,
                });
                r.map(Some).map_err(|mut e| {
                    e.span.get_or_insert_with(|| k.span.clone());
                    e
                })
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(NodeDe(v))
    }
}

struct KeyDe<'a, 'k> {
    text: &'a str,
    node: &'k Node,
}

impl<'de, 'k> de::Deserializer<'de> for KeyDe<'de, 'k> {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.text)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.as_str().and_then(|t| t.parse::<u64>().ok()) {
            Some(v) => visitor.visit_u64(v),
            None => visitor.visit_borrowed_str(self.text),
        }
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct EnumDe<'a> {
    key: &'a str,
    value: &'a Node,
}

impl<'de> de::EnumAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    type Variant = NodeDe<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'de>), DeError> {
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(self.key))?;
        Ok((v, NodeDe(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _f: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct S {
        port: u16,
        tag: String,
        on: bool,
        opt: Option<u32>,
        list: Vec<String>,
    }

    #[test]
    fn coerces_and_locates() {
        let doc = crate::node::parse(
            &Arc::from("f.yaml"),
            "port: \"8080\"\ntag: 1.0\non: 'true'\nopt:\nlist: [a, 1]\n",
        )
        .unwrap()
        .remove(0);
        let s: S = from_node(&doc).unwrap();
        assert_eq!(
            s,
            S {
                port: 8080,
                tag: "1.0".into(),
                on: true,
                opt: None,
                list: vec!["a".into(), "1".into()]
            }
        );
        let doc = crate::node::parse(
            &Arc::from("f.yaml"),
            "port: 80\ntag: x\non: true\nopt: nope\nlist: []\n",
        )
        .unwrap()
        .remove(0);
        let e = from_node::<S>(&doc).unwrap_err();
        assert_eq!(
            e.span.map(|s| (s.line, s.col)),
            Some((4, 6)),
            "{}",
            e.message
        );
    }
}
