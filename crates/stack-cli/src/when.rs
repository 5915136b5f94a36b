//! Points in time as `logs --since/--until` take them, as Docker does: a
//! duration back from now (`42m`, `1h30m`, `1.5h`), a Unix time
//! (`1700000000`, `1700000000.25`), or an RFC 3339 date or time
//! (`2026-11-23`, `2026-11-23T10:00:00Z`, `…T10:00:00.5+01:00`; a time
//! without a zone is UTC). Out: the RFC 3339 UTC form with nanoseconds the
//! logs are written in, so times compare as strings.

use anyhow::bail;
use stack_sys::time::{fraction, parse_rfc3339, rfc3339};

pub fn parse(s: &str, now: std::time::SystemTime) -> anyhow::Result<String> {
    let nanos = nanos(s, now)?;
    Ok(rfc3339(
        (nanos / 1_000_000_000) as i64,
        (nanos % 1_000_000_000) as u32,
    ))
}

/// The same point as Unix nanoseconds.
pub fn nanos(s: &str, now: std::time::SystemTime) -> anyhow::Result<i64> {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    let nanos = if let Some(d) = duration(s) {
        now - d
    } else if let Some(t) = unix(s) {
        t
    } else {
        parse_rfc3339(s).ok_or_else(|| {
            anyhow::anyhow!("`{s}` is neither a duration (10m), a Unix time nor an RFC 3339 time")
        })?
    };
    if nanos < 0 {
        bail!("`{s}` is before 1970");
    }
    i64::try_from(nanos).map_err(|_| anyhow::anyhow!("`{s}` is too far ahead"))
}

/// `1700000000` or `1700000000.25`: nanoseconds, exactly.
fn unix(s: &str) -> Option<i128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    Some(secs.parse::<i128>().ok()? * 1_000_000_000 + fraction(frac)?)
}

/// `1h30m`, `10s`, `1.5h`, `250ms`: nanoseconds.
fn duration(s: &str) -> Option<i128> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit..];
    }
    Some(total as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn every_form_docker_takes() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_420_800); // 2026-11-23T08:00:00Z
        let p = |s: &str| parse(s, now).unwrap();
        assert_eq!(p("10m"), "2026-11-23T07:50:00.000000000Z");
        assert_eq!(p("1h30m"), "2026-11-23T06:30:00.000000000Z");
        assert_eq!(p("1.5h"), "2026-11-23T06:30:00.000000000Z");
        assert_eq!(p("1795420800.25"), "2026-11-23T08:00:00.250000000Z");
        assert_eq!(p("2026-11-23"), "2026-11-23T00:00:00.000000000Z");
        assert_eq!(p("2026-11-23T10:00:00Z"), "2026-11-23T10:00:00.000000000Z");
        assert_eq!(p("2026-11-23T10:00"), "2026-11-23T10:00:00.000000000Z");
        assert_eq!(
            p("2026-11-23T10:00:00.5+01:00"),
            "2026-11-23T09:00:00.500000000Z"
        );
        assert_eq!(
            p("2024-02-29T23:59:59-00:30"),
            "2024-03-01T00:29:59.000000000Z"
        );
        for bad in [
            "",
            "yesterday",
            "10x",
            "2026-13-01",
            "2026-11-23T25:00",
            "1h-",
        ] {
            assert!(parse(bad, now).is_err(), "{bad}");
        }
    }
}
