//! A project's logs as the engine sends them: every container's, merged
//! by time, tailed from the end, followed as containers come and go.

use stack_api::{Event, Events, LogsQuery};

use crate::containers::label;
use crate::Host;

/// The output of a project's containers (not its one-offs: `container
/// logs` shows theirs), oldest first; with `follow`, what
/// comes next too (containers that appear, restart or are recreated
/// included) until the client goes away, and after each run's last record
/// that it exited. Memory stays a chunk per container whatever the logs'
/// sizes: `tail` reads each log backwards from its end, the logs are merged
/// by time a chunk at a time, and following reads on from where it was.
pub fn logs(host: &Host, project: &str, q: &LogsQuery, events: &Events) -> anyhow::Result<()> {
    use std::collections::{HashMap, VecDeque};
    struct Followed {
        name: String,
        /// `service-N`.
        replica: String,
        log: stack_runtime::logs::Follower,
        /// Records read and not yet sent, oldest first.
        pending: VecDeque<stack_runtime::logs::Record>,
        /// When the run it was last said to have exited ended.
        exit_told: Option<String>,
    }
    let root = host.root();
    let mut followers: HashMap<String, Followed> = HashMap::new();
    let mut first = true;
    let mut quiet_since = std::time::Instant::now();
    loop {
        // Who is there now: new containers join, removed ones leave.
        // (A state read before the log: once it says exited, the log
        // read after it holds all the run wrote.)
        let mine = crate::containers::project_containers(root, Some(project));
        let mut seen = Vec::new();
        let mut exits = Vec::new();
        for (st, _) in &mine {
            let service = label(st, stack_plan::LABEL_SERVICE);
            if (!q.services.is_empty() && !q.services.contains(&service))
                || label(st, crate::supervision::LABEL_ONEOFF) == "True"
            {
                continue;
            }
            seen.push(st.id.clone());
            let f = followers.entry(st.id.clone()).or_insert_with(|| {
                let path =
                    stack_runtime::state::log_path(&stack_runtime::container_dir(root, &st.id));
                let mut log = stack_runtime::logs::Follower::new(path);
                if !q.follow {
                    log = log.to_current_end();
                }
                // The first time, the last N of what is there (later
                // containers come whole).
                let pending = match q.tail {
                    Some(n) if first => log.tail(n, |r| q.wants(&r.time)).into(),
                    _ => VecDeque::new(),
                };
                Followed {
                    name: st.name.clone(),
                    replica: format!("{service}-{}", label(st, stack_plan::LABEL_NUMBER)),
                    log,
                    pending,
                    exit_told: None,
                }
            });
            if st.status == stack_runtime::state::Status::Exited && f.exit_told != st.finished_at {
                f.exit_told = st.finished_at.clone();
                exits.push(Event::Exited {
                    container: f.name.clone(),
                    service: f.replica.clone(),
                    exit_code: st.exit_code.unwrap_or(-1),
                });
            }
        }
        followers.retain(|id, _| seen.contains(id));
        first = false;
        // Merged by time: the oldest record of any container goes next,
        // each container's log read on (a chunk) when its records run out,
        // until every log is read to its end.
        let mut done = std::collections::HashSet::new();
        let mut sent = 0usize;
        loop {
            for (id, f) in followers.iter_mut() {
                while f.pending.is_empty() && !done.contains(id) {
                    let (records, bad) = f.log.read_new();
                    if records.is_empty() && bad.is_empty() {
                        done.insert(id.clone());
                    }
                    f.pending
                        .extend(records.into_iter().filter(|r| q.wants(&r.time)));
                }
            }
            let Some(f) = followers
                .values_mut()
                .filter(|f| !f.pending.is_empty())
                .min_by(|a, b| a.pending[0].time.cmp(&b.pending[0].time))
            else {
                break;
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
                return Ok(());
            }
        }
        if sent > 0 {
            quiet_since = std::time::Instant::now();
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
        if quiet_since.elapsed() > std::time::Duration::from_secs(2) {
            events.send(Event::Heartbeat);
            quiet_since = std::time::Instant::now();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
