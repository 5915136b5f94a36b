//! Variable expansion and quote removal, as the Dockerfile reference
//! defines it for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR (and ONBUILD's, ARG's defaults, flags' values).

/// Expands one word: `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`,
/// `${v+w}`, `${v:?msg}`, `${v?msg}`; single quotes keep everything
/// literal, double quotes allow expansion; the escape character escapes
/// the next one. An unset variable is empty. Quotes are removed.
pub fn word(raw: &str, escape: char, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let _ = (raw, escape, vars);
    unimplemented!()
}

/// Expands and splits on whitespace outside quotes (as `EXPOSE`,
/// `VOLUME`'s shell form take their words).
pub fn words(raw: &str, escape: char, vars: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let _ = (raw, escape, vars);
    unimplemented!()
}
