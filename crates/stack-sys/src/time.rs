//! Time as stack writes and reads it: RFC 3339 UTC with nanoseconds, as
//! Docker's logs and events carry it, and nanoseconds since the epoch.

/// Now, in nanoseconds since the epoch.
pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// RFC 3339 UTC time with nanoseconds, as Docker's logs write it.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Seconds and nanoseconds since the epoch as RFC 3339 UTC with
/// nanoseconds (`2023-11-14T22:13:20.000000005Z`): such times compare as
/// strings.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An RFC 3339 date or time (`2026-11-23`, `2026-11-23T10:00:00Z`,
/// `…T10:00:00.5+01:00`; a time without a zone is UTC) as nanoseconds since
/// the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
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

/// The digits after a decimal point, as nanoseconds (`25` is 250 ms;
/// digits past the ninth are dropped).
pub fn fraction(f: &str) -> Option<i128> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
        for (secs, nanos) in [(0, 0), (1_700_000_000, 5), (951_782_400, 250_000_000)] {
            assert_eq!(
                parse_rfc3339(&rfc3339(secs, nanos)),
                Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
            );
        }
        assert_eq!(parse_rfc3339("2026-13-01"), None);
        assert_eq!(fraction("25"), Some(250_000_000));
    }
}
