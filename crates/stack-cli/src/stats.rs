//! `stats` and `container stats`: what containers use, as `docker stats`
//! shows it: CPU as a share of one CPU over the last interval, memory less
//! reclaimable page cache against the limit (the host's memory when there
//! is none), network bytes of the container's interfaces, block I/O, and
//! processes. Streams a table every second (redrawn on a terminal) until
//! Ctrl-C, or prints one with `--no-stream`.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use stack_api::Stats;

use crate::cli::StatsArgs;

/// A row of the table.
#[derive(Debug, PartialEq)]
struct Row {
    id: String,
    name: String,
    cpu: f64,
    memory: u64,
    limit: u64,
    net: (u64, u64),
    block: (u64, u64),
    pids: u64,
}

impl Row {
    /// `now`, with the CPU share since `before`.
    fn new(before: Option<&Stats>, now: &Stats) -> Row {
        let cpu = before
            .filter(|b| b.running && now.running)
            .map_or(0.0, |b| {
                let wall = now.read_nanos.saturating_sub(b.read_nanos) as f64;
                let used = now.cpu_nanos.saturating_sub(b.cpu_nanos) as f64;
                if wall > 0.0 {
                    used / wall * 100.0
                } else {
                    0.0
                }
            });
        Row {
            id: now.id.clone(),
            name: now.name.clone(),
            cpu,
            memory: now.memory,
            limit: now.memory_limit,
            net: (now.net_rx, now.net_tx),
            block: (now.block_read, now.block_write),
            pids: now.pids,
        }
    }

    fn mem_percent(&self) -> f64 {
        if self.limit == 0 {
            0.0
        } else {
            self.memory as f64 / self.limit as f64 * 100.0
        }
    }

    fn fields(&self, no_trunc: bool) -> [String; 8] {
        let id = if no_trunc {
            &self.id[..]
        } else {
            &self.id[..12.min(self.id.len())]
        };
        [
            id.to_string(),
            self.name.clone(),
            format!("{:.2}%", self.cpu),
            format!("{} / {}", binary(self.memory), binary(self.limit)),
            format!("{:.2}%", self.mem_percent()),
            format!("{} / {}", decimal(self.net.0), decimal(self.net.1)),
            format!("{} / {}", decimal(self.block.0), decimal(self.block.1)),
            self.pids.to_string(),
        ]
    }

    /// The keys of `docker stats --format json`.
    fn json(&self, no_trunc: bool) -> serde_json::Value {
        let [id, name, cpu, mem, mem_perc, net, block, pids] = self.fields(no_trunc);
        serde_json::json!({
            "ID": id, "Name": name, "Container": id, "CPUPerc": cpu, "MemUsage": mem,
            "MemPerc": mem_perc, "NetIO": net, "BlockIO": block, "PIDs": pids,
        })
    }
}

/// `%.Ng` of C: `digits` significant digits, no trailing zeros.
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let decimals = (digits - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn scaled(mut v: f64, base: f64, units: &[&str], digits: i32) -> String {
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", significant(v, digits), units[i])
}

/// Memory as Docker prints it: `1.5MiB`.
fn binary(b: u64) -> String {
    scaled(b as f64, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"], 4)
}

/// Network and disk bytes as Docker prints them: `1.23kB`.
fn decimal(b: u64) -> String {
    scaled(b as f64, 1000.0, &["B", "kB", "MB", "GB", "TB"], 3)
}

fn render(rows: &[Row], args: &StatsArgs) -> String {
    if args.format == "json" {
        return rows
            .iter()
            .map(|r| format!("{}\n", r.json(args.no_trunc)))
            .collect();
    }
    let header = [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]
    .map(String::from);
    let lines: Vec<[String; 8]> = std::iter::once(header)
        .chain(rows.iter().map(|r| r.fields(args.no_trunc)))
        .collect();
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|l| {
            let mut out = String::new();
            for (i, f) in l.iter().enumerate() {
                if i == 7 {
                    out.push_str(f);
                } else {
                    out.push_str(&format!("{f:<w$}   ", w = widths[i]));
                }
            }
            out.push('\n');
            out
        })
        .collect()
}

/// Shows the readings `read` gives (asked again at each refresh, so
/// containers that come and go are followed).
pub fn show(args: &StatsArgs, read: impl Fn() -> anyhow::Result<Vec<Stats>>) -> anyhow::Result<()> {
    let redraw = !args.no_stream && std::io::stdout().is_terminal();
    let index = |v: Vec<Stats>| -> HashMap<String, Stats> {
        v.into_iter().map(|s| (s.id.clone(), s)).collect()
    };
    let mut before = index(read()?);
    // The first interval is short: a CPU share needs two readings.
    let mut wait = Duration::from_millis(500);
    loop {
        std::thread::sleep(wait);
        wait = Duration::from_secs(1);
        let now = read()?;
        let rows: Vec<Row> = now.iter().map(|s| Row::new(before.get(&s.id), s)).collect();
        before = index(now);
        let mut out = std::io::stdout().lock();
        if redraw {
            out.write_all(b"\x1b[2J\x1b[H")?;
        }
        out.write_all(render(&rows, args).as_bytes())?;
        out.flush()?;
        if args.no_stream {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(binary(0), "0B");
        assert_eq!(binary(1536 * 1024), "1.5MiB");
        assert_eq!(binary(64 << 20), "64MiB");
        assert_eq!(binary(25_174_224_896), "23.45GiB");
        assert_eq!(binary(1023), "1023B");
        assert_eq!(decimal(648), "648B");
        assert_eq!(decimal(1234), "1.23kB");
        assert_eq!(decimal(12_345_678), "12.3MB");
    }
}
