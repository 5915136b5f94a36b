//! The parser.

use crate::*;

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let _ = text;
    unimplemented!()
}

pub(crate) fn mount(value: &str) -> Result<Mount, String> {
    let _ = value;
    unimplemented!()
}

pub(crate) fn duration(s: &str) -> Result<u64, String> {
    let _ = s;
    unimplemented!()
}
