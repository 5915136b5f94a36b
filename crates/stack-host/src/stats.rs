//! What a container uses, as `docker stats` reads it: CPU time, memory
//! less reclaimable page cache against the limit (the host's memory when
//! there is none), network bytes of its interfaces, block I/O, processes.

use stack_api::Stats;
use stack_runtime::State;

/// One reading of a container (zeros when it does not run): what the
/// engine answers to `GET .../stats`, and what `container stats` reads here.
pub fn read(st: &State) -> Stats {
    let s = Stats {
        id: st.id.clone(),
        name: st.name.clone(),
        read_nanos: stack_sys::time::now_nanos() as u64,
        ..Stats::default()
    };
    if !stack_runtime::state::alive(st) {
        return s;
    }
    let Ok(layout) = stack_runtime::cgroup::layout_of(&st.spec) else {
        return s;
    };
    let u = stack_runtime::cgroup::usage(&layout);
    let (rx, tx) = net_bytes(
        &std::fs::read_to_string(format!("/proc/{}/net/dev", st.pid)).unwrap_or_default(),
    );
    let host = host_memory();
    Stats {
        running: true,
        cpu_nanos: u.cpu_nanos,
        memory: u.memory,
        memory_limit: u.memory_limit.map_or(host, |l| l.min(host)),
        net_rx: rx,
        net_tx: tx,
        block_read: u.block_read,
        block_write: u.block_write,
        pids: u.pids,
        ..s
    }
}

/// Received and sent bytes of every interface but `lo`, from a
/// `/proc/PID/net/dev` (which shows the process's network namespace).
fn net_bytes(text: &str) -> (u64, u64) {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, fields) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = fields
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

/// The host's memory (read once: it does not change while we run).
fn host_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_bytes_leave_loopback_out() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0:    1296      12    0    0    0     0          0         0      648       8    0    0    0     0       0          0
  eth1:       4       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
";
        assert_eq!(net_bytes(text), (1300, 654));
    }
}
