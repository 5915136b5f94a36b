//! A project's logs: which containers' logs make them (its replicas, not
//! its one-offs; those that appear, restart or are recreated while it is
//! followed), merged by time, tailed, followed, with an `exited` event after
//! each run's last record. The driver reads each container's log
//! ([`Driver::log`]); what to read when is decided here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use stack_wire::{Event, Events, LogsQuery};

use crate::{Driver, Engine};

/// One record of a container's log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogRecord {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 UTC with nanoseconds: records compare by it as strings.
    pub time: String,
    pub log: String,
}

/// A container's log as the driver reads it: from its start to its end,
/// or without `follow` to its end as it was when opened.
pub trait LogReader: Send {
    /// The last `n` records whose time `wants` keeps, read from the end;
    /// reading goes on after them.
    fn tail(&mut self, n: usize, wants: &dyn Fn(&str) -> bool) -> Vec<LogRecord>;
    /// The next records (a chunk at a time, possibly none that read
    /// whole); `None` once there is nothing more now.
    fn read_new(&mut self) -> Option<Vec<LogRecord>>;
    /// Why this log cannot be read at all (`logging: none`), if so.
    fn unreadable(&self) -> Option<String> {
        None
    }
}

/// How long a followed project's logs are left before they are read again.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// A followed stream with nothing to say says this often that it lives.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// A container whose log is being sent.
struct Followed {
    name: String,
    /// `service-N`.
    replica: String,
    log: Box<dyn LogReader>,
    /// Records read and not yet sent, oldest first.
    pending: VecDeque<LogRecord>,
    /// When the run it was last said to have exited ended.
    exit_told: Option<String>,
}

impl<D: Driver + Send + 'static> Engine<D> {
    /// The output of a project's containers, oldest first; with `follow`,
    /// what comes next too until the client goes away. Memory stays a
    /// chunk per container whatever the logs' sizes: `tail` reads each log
    /// backwards from its end, the logs are merged by time a chunk at a
    /// time, and following reads on from where it was.
    pub async fn logs(&self, project: &str, q: &LogsQuery, events: &Events) -> anyhow::Result<()> {
        let mut followers: HashMap<String, Followed> = HashMap::new();
        let mut first = true;
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            // Who is there now: new containers join, removed ones leave.
            // (Observed before the log is read: once it says exited, the
            // log read after holds all the run wrote.)
            let mut seen = HashSet::new();
            let mut exits = Vec::new();
            for c in self.driver().observe(Some(project))? {
                if c.one_off || (!q.services.is_empty() && !q.services.contains(&c.service)) {
                    continue;
                }
                seen.insert(c.id.clone());
                let f = followers.entry(c.id.clone()).or_insert_with(|| {
                    let mut log = self.driver().log(&c.id, q.follow);
                    if let Some(why) = log.unreadable() {
                        events.send(Event::Warning {
                            message: format!("{}: {why}", c.name),
                        });
                    }
                    // The first time, the last N of what is there (later
                    // containers come whole).
                    let pending = match q.tail {
                        Some(n) if first => log.tail(n, &|t| q.wants(t)).into(),
                        _ => VecDeque::new(),
                    };
                    Followed {
                        name: c.name.clone(),
                        replica: format!("{}-{}", c.service, c.number),
                        log,
                        pending,
                        exit_told: None,
                    }
                });
                if !c.running && c.finished_at.is_some() && f.exit_told != c.finished_at {
                    f.exit_told = c.finished_at.clone();
                    exits.push(Event::Exited {
                        container: f.name.clone(),
                        service: f.replica.clone(),
                        exit_code: c.exit_code.unwrap_or(-1),
                    });
                }
            }
            followers.retain(|id, _| seen.contains(id));
            first = false;
            let sent = merge(&mut followers, q, events);
            if sent > 0 {
                quiet_since = tokio::time::Instant::now();
            }
            if !q.follow {
                return Ok(());
            }
            for e in exits {
                events.send(e);
            }
            if events.gone() {
                return Ok(());
            }
            if quiet_since.elapsed() > HEARTBEAT {
                events.send(Event::Heartbeat);
                quiet_since = tokio::time::Instant::now();
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}

/// Sends what the logs hold now, merged by time: the oldest record of any
/// container goes next, each container's log read on (a chunk) when its
/// records run out, until every log is read to its end; how many it sent.
fn merge(followers: &mut HashMap<String, Followed>, q: &LogsQuery, events: &Events) -> usize {
    let mut done = HashSet::new();
    let mut sent = 0usize;
    loop {
        for (id, f) in followers.iter_mut() {
            while f.pending.is_empty() && !done.contains(id) {
                match f.log.read_new() {
                    Some(records) => f
                        .pending
                        .extend(records.into_iter().filter(|r| q.wants(&r.time))),
                    None => {
                        done.insert(id.clone());
                    }
                }
            }
        }
        let Some(f) = followers
            .values_mut()
            .filter(|f| !f.pending.is_empty())
            .min_by(|a, b| a.pending[0].time.cmp(&b.pending[0].time))
        else {
            return sent;
        };
        let r = f.pending.pop_front().expect("a pending record");
        events.send_paced(Event::Log {
            container: f.name.clone(),
            service: f.replica.clone(),
            stream: r.stream,
            time: r.time,
            log: r.log,
        });
        sent += 1;
        if sent.is_multiple_of(1024) && events.gone() {
            return sent;
        }
    }
}
