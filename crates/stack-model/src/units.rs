//! Durations, byte sizes, CPU counts and file modes: parsed from every
//! syntax compose accepts, printed as compose prints them.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in nanoseconds. Reads Go duration strings (`1m30s`, `1.5s`,
/// `500ms`) or a plain number of seconds; prints like Go's
/// `time.Duration.String()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub i64);

impl Duration {
    pub fn from_secs(s: i64) -> Self {
        Duration(s * 1_000_000_000)
    }
    pub fn as_nanos(self) -> i64 {
        self.0
    }
}

/// Parses a Go duration string, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("invalid duration `{s}`");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        let nanos = secs * 1e9;
        if !nanos.is_finite() || nanos.abs() >= i64::MAX as f64 {
            return Err(format!("duration `{s}` is too long"));
        }
        return Ok(Duration(nanos.round() as i64));
    }
    let (neg, mut rest) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if rest == "0" {
        return Ok(Duration(0));
    }
    let mut total: f64 = 0.0;
    let units: [(&str, f64); 8] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("μs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    // compose-go also accepts days (`d`) and weeks? No: only Go units plus `d` via str2duration.
    let extra: [(&str, f64); 1] = [("d", 86400e9)];
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let mult = units
            .iter()
            .chain(extra.iter())
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(bad)?;
        total += n * mult;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total >= i64::MAX as f64 {
        return Err(format!("duration `{s}` is too long"));
    }
    let v = total.round() as i64;
    Ok(Duration(if neg { -v } else { v }))
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = self.0;
        if d == 0 {
            return f.write_str("0s");
        }
        let neg = d < 0;
        if neg {
            d = -d;
            f.write_str("-")?;
        }
        let u = d as u64;
        if u < 1_000_000_000 {
            // Sub-second: the largest unit that keeps a leading digit.
            let (div, unit) = if u < 1_000 {
                (1, "ns")
            } else if u < 1_000_000 {
                (1_000, "µs")
            } else {
                (1_000_000, "ms")
            };
            return write!(f, "{}{unit}", frac(u, div));
        }
        let h = u / 3_600_000_000_000;
        let rem = u % 3_600_000_000_000;
        let m = rem / 60_000_000_000;
        let s_nanos = rem % 60_000_000_000;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        write!(f, "{}s", frac(s_nanos, 1_000_000_000))
    }
}

/// `v / div` with the fraction's trailing zeros dropped, as Go prints it.
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like `1m30s`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v as i64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Ok(Duration((v * 1e9).round() as i64))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size. Reads a number or a string with a unit (`512m`, `1.5gb`),
/// binary units as Docker's `RAMInBytes`; prints as a decimal string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub i64);

/// Parses a byte size the way docker/go-units `RAMInBytes` does.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("invalid byte size `{s}`");
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if unit.len() > 3 || (unit.len() == 3 && !unit.ends_with("ib")) {
        return Err(bad());
    }
    let bytes = n * mult;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("byte size `{s}` is too large"));
    }
    Ok(bytes as i64)
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size like `512m`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                parse_bytes(v).map(Bytes).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                i64::try_from(v).map(Bytes).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bytes, E> {
                Ok(Bytes(v as i64))
            }
        }
        d.deserialize_any(V)
    }
}

/// A CPU count (`0.5`, `"1.5"`), printed as a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Cpus(pub f32);

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Through f64 without float noise: 0.1f32 prints 0.1.
        let v: f64 = format!("{}", self.0).parse().unwrap_or(self.0 as f64);
        s.serialize_f64(v)
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of CPUs")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpus, E> {
                v.trim()
                    .parse::<f32>()
                    .map(Cpus)
                    .map_err(|_| E::custom(format!("invalid number of CPUs `{v}`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpus, E> {
                Ok(Cpus(v as f32))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
                Ok(Cpus(v as f32))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpus, E> {
                Ok(Cpus(v as f32))
            }
        }
        d.deserialize_any(V)
    }
}

/// A file mode: an octal string (`"0440"`) or a number; printed in octal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0{:o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file mode")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileMode, E> {
                u32::from_str_radix(v.trim(), 8)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode `{v}`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileMode, E> {
                u32::try_from(v).map(FileMode).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileMode, E> {
                u32::try_from(v).map(FileMode).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        let p = |s: &str| parse_duration(s).unwrap().to_string();
        assert_eq!(p("90s"), "1m30s");
        assert_eq!(p("1.5s"), "1.5s");
        assert_eq!(p("100ms"), "100ms");
        assert_eq!(p("0"), "0s");
        assert_eq!(p("1h"), "1h0m0s");
        assert_eq!(p("2h45m"), "2h45m0s");
        assert_eq!(p("10"), "10s");
        assert_eq!(p("1m0.5s"), "1m0.5s");
        assert_eq!(p("1500us"), "1.5ms");
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("9999999999999h").is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1gb"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5g"), Ok(1610612736));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("9999999999999999999999g").is_err());
    }
}
