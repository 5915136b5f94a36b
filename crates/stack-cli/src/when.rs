//! Points in time as `logs --since/--until` take them, as Docker does: a
//! duration back from now (`42m`, `1h30m`, `1.5h`), a Unix time
//! (`1700000000`, `1700000000.25`), or an RFC 3339 date or time
//! (`2026-11-23`, `2026-11-23T10:00:00Z`, `…T10:00:00.5+01:00`; a time
//! without a zone is UTC). Out: the RFC 3339 UTC form with nanoseconds the
//! logs are written in, so times compare as strings.

use anyhow::bail;

pub fn parse(s: &str, now: std::time::SystemTime) -> anyhow::Result<String> {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    let nanos = if let Some(d) = duration(s) {
        now - d
    } else if let Some(t) = unix(s) {
        t
    } else {
        rfc3339(s).ok_or_else(|| {
            anyhow::anyhow!("`{s}` is neither a duration (10m), a Unix time nor an RFC 3339 time")
        })?
    };
    if nanos < 0 {
        bail!("`{s}` is before 1970");
    }
    Ok(stack_runtime::state::rfc3339(
        (nanos / 1_000_000_000) as i64,
        (nanos % 1_000_000_000) as u32,
    ))
}

/// `1700000000` or `1700000000.25`: nanoseconds, exactly.
fn unix(s: &str) -> Option<i128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    Some(secs.parse::<i128>().ok()? * 1_000_000_000 + fraction(frac)?)
}

/// The digits after a decimal point, as nanoseconds (`25` is 250 ms;
/// digits past the ninth are dropped).
fn fraction(f: &str) -> Option<i128> {
    if !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    f.chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect::<String>()
        .parse()
        .ok()
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

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn rfc3339(s: &str) -> Option<i128> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = s.split_once(['T', 't', ' ']).unwrap_or((s, ""));
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, z) = time.split_at(i);
        let (hh, mm) = z[1..].split_once(':')?;
        let off = num(hh)? * 3600 + num(mm)? * 60;
        (c, if z.starts_with('-') { -off } else { off })
    } else {
        (time, 0)
    };
    let (mut secs, mut frac) = (0i64, 0i128);
    if !clock.is_empty() {
        let (hms, f) = clock.split_once('.').unwrap_or((clock, ""));
        let mut p = hms.split(':');
        let (h, mi) = (num(p.next()?)?, num(p.next()?)?);
        let sec = p.next().map_or(Some(0), num)?;
        if p.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        secs = h * 3600 + mi * 60 + sec;
        frac = fraction(f)?;
    }
    let total = days_from_civil(y, m, day) * 86_400 + secs - offset;
    Some(i128::from(total) * 1_000_000_000 + frac)
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
