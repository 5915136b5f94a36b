//! The field names a model struct asks serde for: the one list of a
//! struct's keys that tables elsewhere (the loader's schema, the host's
//! table of what it does with each service key) are held against.

use serde::de::{self, Visitor};
use serde::Deserialize;

/// A Deserializer that only records the field names a struct asks for.
struct FieldsProbe<'a>(&'a mut Vec<&'static str>);

#[derive(Debug)]
struct Stop;
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}
impl std::error::Error for Stop {}
impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for FieldsProbe<'_> {
    type Error = Stop;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The field names a struct asks serde for, in order (those `flatten`ed
/// away excepted): what a table of a model's keys is checked against.
pub fn fields_of<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut v = Vec::new();
    let _ = T::deserialize(FieldsProbe(&mut v));
    v
}
