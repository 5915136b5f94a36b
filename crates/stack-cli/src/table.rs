//! Listings as docker prints them: an aligned table (`table`, the
//! default), one JSON object per line (`json`), or a Go template for the
//! common cases (`{{.Field}}`, `{{json .}}`, `{{json .Field}}`, `\t`,
//! and `table ` before a template for a header and aligned columns).

use std::io::Write;

use serde_json::{Map, Value};

/// Rows of fields, and the columns a table shows (field, header).
pub struct Listing<'a> {
    pub columns: &'a [(&'a str, &'a str)],
    pub rows: Vec<Map<String, Value>>,
}

/// A field as a cell: tabs and line ends in it become spaces, so they
/// split no column and no row.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.replace(['\t', '\n', '\r'], " "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A template on one row. Unknown fields print as docker's do: empty.
/// `\t` and `\n` in the template (not in the values) are a tab and a
/// newline, as docker's.
pub fn render(template: &str, row: &Map<String, Value>) -> String {
    let template = template.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let action = rest[start + 2..start + end].trim();
        let whole = Value::Object(row.clone());
        out.push_str(&match action.split_whitespace().collect::<Vec<_>>()[..] {
            ["json", "."] => whole.to_string(),
            ["json", field] => row
                .get(field.trim_start_matches('.'))
                .map(Value::to_string)
                .unwrap_or_else(|| "null".into()),
            ["."] => whole.to_string(),
            [field] if field.starts_with('.') => row.get(&field[1..]).map(text).unwrap_or_default(),
            _ => String::new(),
        });
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Lines with tab-separated cells, aligned as docker's tabwriter does
/// (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`: a column is its widest
/// cell and three spaces, ten at least).
fn aligned(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let n = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            cells
                .iter()
                .filter(|c| c.len() > i + 1)
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for c in cells {
        let last = c.len().saturating_sub(1);
        for (i, cell) in c.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let width = (widths[i] + 3).max(10);
                out.push_str(&" ".repeat(width - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// A JSON object as a row.
pub fn row(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// [`print`] to standard output.
pub fn print_out(
    format: Option<&str>,
    quiet: bool,
    columns: &[(&str, &str)],
    rows: Vec<Map<String, Value>>,
) -> std::io::Result<()> {
    print(
        &mut std::io::stdout().lock(),
        format,
        quiet,
        &Listing { columns, rows },
    )
}

/// Prints a listing in `format` (None: the table). `quiet`: only the
/// first column's field, one per line.
pub fn print(
    out: &mut dyn Write,
    format: Option<&str>,
    quiet: bool,
    listing: &Listing,
) -> std::io::Result<()> {
    if quiet {
        let field = listing.columns[0].0;
        for r in &listing.rows {
            writeln!(out, "{}", r.get(field).map(text).unwrap_or_default())?;
        }
        return Ok(());
    }
    let format = format.unwrap_or("table");
    if format == "json" {
        for r in &listing.rows {
            writeln!(out, "{}", Value::Object(r.clone()))?;
        }
        return Ok(());
    }
    let (table, template) = match format.strip_prefix("table") {
        Some(rest) if rest.trim().is_empty() => (
            true,
            listing
                .columns
                .iter()
                .map(|(f, _)| format!("{{{{.{f}}}}}"))
                .collect::<Vec<_>>()
                .join("\t"),
        ),
        Some(rest) => (true, rest.trim_start().to_string()),
        None => (false, format.to_string()),
    };
    let mut lines = Vec::new();
    if table {
        // The header: each field's column name (its own name upper-cased
        // when the listing has no column for it).
        let mut header = Map::new();
        for (f, h) in listing.columns {
            header.insert(f.to_string(), Value::String(h.to_string()));
        }
        let mut t = template.clone();
        let mut fields = Vec::new();
        let mut rest = template.as_str();
        while let Some(s) = rest.find("{{.") {
            let Some(e) = rest[s..].find("}}") else { break };
            fields.push(rest[s + 3..s + e].trim().to_string());
            rest = &rest[s + e + 2..];
        }
        for f in fields {
            if !header.contains_key(&f) {
                header.insert(f.clone(), Value::String(f.to_uppercase()));
            }
        }
        t = render(&t, &header);
        lines.push(t);
    }
    for r in &listing.rows {
        lines.push(render(&template, r));
    }
    if table {
        out.write_all(aligned(&lines).as_bytes())
    } else {
        for l in lines {
            writeln!(out, "{l}")?;
        }
        Ok(())
    }
}

/// Bytes as docker prints sizes: `1.5kB`, `23.46MB` (powers of 1000, four
/// significant digits).
pub fn size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        let int_digits = (v.log10().floor() as usize) + 1;
        let mut n = format!("{:.*}", 4usize.saturating_sub(int_digits), v);
        if n.contains('.') {
            n = n.trim_end_matches('0').trim_end_matches('.').to_string();
        }
        n + units[i]
    }
}

/// How long ago a time (seconds since the epoch) was, as docker says it
/// (go-units' `HumanDuration`): `5 minutes ago`, `About an hour ago`.
pub fn ago(then: i64) -> String {
    if then <= 0 {
        return "N/A".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(then);
    format!("{} ago", human_duration((now - then).max(0)))
}

fn human_duration(s: i64) -> String {
    let (m, h) = (s / 60, (s + 1800) / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", s / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Listing<'static> {
        let row = |d: &str, n: &str| {
            let mut m = Map::new();
            m.insert("Driver".into(), Value::String(d.into()));
            m.insert("Name".into(), Value::String(n.into()));
            m
        };
        Listing {
            columns: &[("Driver", "DRIVER"), ("Name", "VOLUME NAME")],
            rows: vec![row("local", "data"), row("local", "a-much-longer-name")],
        }
    }

    fn printed(format: Option<&str>, quiet: bool) -> String {
        let mut out = Vec::new();
        print(&mut out, format, quiet, &listing()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_as_docker_prints_them() {
        assert_eq!(
            printed(None, false),
            "DRIVER    VOLUME NAME\nlocal     data\nlocal     a-much-longer-name\n"
        );
        assert_eq!(printed(None, true), "local\nlocal\n");
        assert_eq!(
            printed(Some("json"), false).lines().next().unwrap(),
            r#"{"Driver":"local","Name":"data"}"#
        );
        assert_eq!(
            printed(Some("{{.Name}}"), false),
            "data\na-much-longer-name\n"
        );
        assert_eq!(
            printed(Some("table {{.Name}}\\t{{.Driver}}"), false),
            "VOLUME NAME          DRIVER\ndata                 local\na-much-longer-name   local\n"
        );
        assert_eq!(
            printed(Some("{{json .Name}} {{.Missing}}|"), false)
                .lines()
                .next()
                .unwrap(),
            "\"data\" |"
        );
        assert_eq!(size(0), "0B");
        assert_eq!(size(1500), "1.5kB");
        assert_eq!(size(23_456_789), "23.46MB");
        assert_eq!(size(123_456), "123.5kB");
        assert_eq!(size(120_000), "120kB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(30 * 3600), "30 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
    }
}
