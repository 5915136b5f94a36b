//! Text from users and containers made safe to print on a terminal:
//! names and messages can carry escape sequences (ESC, CSI, OSC, …) that
//! would move the cursor, retitle the window or hide what came before.
//! Control characters are printed escaped instead (`\x1b`, `\u{9b}`),
//! except newlines and tabs, which are the text's own layout.
//!
//! Container output printed by `logs` is data and passes as it is (as
//! docker prints it); the names around it do not.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every C0 control but newline and tab, DEL and every C1
/// control escaped.
pub fn controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_escaped(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// A name: nothing kept, newlines and tabs escaped too.
pub fn name(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(|part| controls(part).replace('\t', "\\x09"))
            .collect::<Vec<_>>()
            .join("\\x0a"),
    )
}

fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_layout_kept() {
        assert_eq!(controls("plain `web` ünïcode"), "plain `web` ünïcode");
        assert!(matches!(controls("plain"), Cow::Borrowed(_)));
        assert_eq!(
            controls("no such service: `\x1b]0;pwned\x07\x1b[2J`"),
            "no such service: `\\x1b]0;pwned\\x07\\x1b[2J`"
        );
        assert_eq!(controls("a\r\x00b\x7f"), "a\\x0d\\x00b\\x7f");
        assert_eq!(controls("csi \u{9b}31m"), "csi \\u{9b}31m");
        assert_eq!(controls("two\nlines\tand a tab"), "two\nlines\tand a tab");
        assert_eq!(name("a\nb\tc\x1b"), "a\\x0ab\\x09c\\x1b");
    }
}
