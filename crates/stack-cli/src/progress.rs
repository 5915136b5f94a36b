//! What an operation reports as it goes, as docker compose shows it: on a
//! terminal, a block redrawn in place (`[+] Running 3/4`, a spinner on what
//! is under way, each line's time); otherwise one plain line per event
//! (` Container shop-web-1  Started`); or nothing but warnings (`quiet`).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use stack_api::Event;

/// `--progress`, as compose's.
#[derive(Clone, Copy, Debug, Default, PartialEq, ValueEnum)]
pub enum Mode {
    /// A redrawn block on a terminal, plain lines otherwise
    #[default]
    Auto,
    Tty,
    Plain,
    Quiet,
}

struct Row {
    object: String,
    name: String,
    status: String,
    since: Instant,
    /// When it reached a final status.
    ended: Option<Instant>,
    /// It was under way when the operation failed.
    failed: bool,
}

/// Whether a status says the work is still under way (`Starting`,
/// `Waiting for db`) rather than done (`Started`, `Healthy`).
fn under_way(status: &str) -> bool {
    status.ends_with("ing") || status.starts_with("Waiting")
}

pub struct Display {
    tty: bool,
    quiet: bool,
    color: bool,
    rows: Vec<Row>,
    /// Lines of the block now on the screen.
    drawn: usize,
    /// Plan lines printed (`up --dry-run`).
    pub planned: usize,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// `--ansi`: when output is coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, clap::ValueEnum)]
pub enum Ansi {
    /// On a terminal, unless NO_COLOR is set
    #[default]
    Auto,
    Never,
    Always,
}

static ANSI: std::sync::OnceLock<Ansi> = std::sync::OnceLock::new();

/// Sets `--ansi` for the process (once, from the command line).
pub fn set_ansi(a: Ansi) {
    let _ = ANSI.set(a);
}

/// Whether output to a terminal (or not) is coloured.
pub fn colour(terminal: bool) -> bool {
    match ANSI.get().copied().unwrap_or_default() {
        Ansi::Never => false,
        Ansi::Always => true,
        Ansi::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
    }
}

impl Display {
    pub fn new(mode: Mode) -> Display {
        let terminal = std::io::stderr().is_terminal();
        Display {
            tty: mode == Mode::Tty || (mode == Mode::Auto && terminal),
            quiet: mode == Mode::Quiet,
            color: colour(terminal),
            rows: Vec::new(),
            drawn: 0,
            planned: 0,
        }
    }

    /// Plain lines whatever the mode (streams that go on: watch, logs).
    pub fn plain() -> Display {
        Display::new(Mode::Plain)
    }

    pub fn event(&mut self, e: Event) {
        match e {
            Event::Progress {
                object,
                name,
                action,
            } => {
                if self.quiet {
                    return;
                }
                let name = crate::escape::name(&name).into_owned();
                if !self.tty {
                    eprintln!(" {object} {name}  {action}");
                    return;
                }
                let now = Instant::now();
                let ended = (!under_way(&action)).then_some(now);
                match self
                    .rows
                    .iter_mut()
                    .find(|r| r.object == object && r.name == name)
                {
                    Some(r) => {
                        if r.ended.is_some() && ended.is_none() {
                            r.since = now;
                        }
                        r.status = action;
                        r.ended = ended;
                        r.failed = false;
                    }
                    None => self.rows.push(Row {
                        object,
                        name,
                        status: action,
                        since: now,
                        ended,
                        failed: false,
                    }),
                }
                self.draw();
            }
            Event::Warning { message } => {
                self.above(&format!("warning: {}", crate::escape::controls(&message)))
            }
            Event::Plan { line } => {
                self.planned += 1;
                println!("{line}");
            }
            _ => {}
        }
    }

    /// Prints a line above the block (which is drawn again under it).
    fn above(&mut self, line: &str) {
        if self.tty && self.drawn > 0 {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\x1b[{}A\x1b[J{line}", self.drawn);
            self.drawn = 0;
            drop(err);
            self.draw();
        } else {
            eprintln!("{line}");
        }
    }

    /// The operation failed: what was under way ends as an error
    /// (`✘ Container shop-web-1  Error`), as compose shows it.
    pub fn failed(&mut self) {
        let now = Instant::now();
        for r in self.rows.iter_mut().filter(|r| r.ended.is_none()) {
            r.status = "Error".into();
            r.ended = Some(now);
            r.failed = true;
        }
        self.tick();
    }

    /// Redraws the block (the spinners and times move).
    pub fn tick(&mut self) {
        if self.tty && !self.rows.is_empty() {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let frame = self.frame(Instant::now());
        let mut err = std::io::stderr().lock();
        let up = if self.drawn > 0 {
            format!("\x1b[{}A", self.drawn)
        } else {
            String::new()
        };
        let body: String = frame.lines().map(|l| format!("\x1b[2K{l}\n")).collect();
        let _ = write!(err, "{up}{body}");
        let _ = err.flush();
        self.drawn = frame.lines().count();
    }

    /// The block at `now`: a title with the count of what is done, then a
    /// line per object with its status and how long it took (or takes).
    fn frame(&self, now: Instant) -> String {
        let done = self.rows.iter().filter(|r| r.ended.is_some()).count();
        let width = |f: fn(&Row) -> usize| self.rows.iter().map(f).max().unwrap_or(0);
        let (name_w, status_w) = (
            width(|r| r.object.len() + 1 + r.name.len()),
            width(|r| r.status.len()),
        );
        let mut out = format!("[+] Running {done}/{}\n", self.rows.len());
        for r in &self.rows {
            let took = r.ended.unwrap_or(now).saturating_duration_since(r.since);
            let icon = match (r.ended, r.failed) {
                (Some(_), true) if self.color => "\x1b[31m✘\x1b[0m".to_string(),
                (Some(_), true) => "✘".to_string(),
                (Some(_), false) if self.color => "\x1b[32m✔\x1b[0m".to_string(),
                (Some(_), false) => "✔".to_string(),
                (None, _) => SPINNER[(took.as_millis() / 100) as usize % SPINNER.len()].to_string(),
            };
            let label = format!("{} {}", r.object, r.name);
            out.push_str(&format!(
                " {icon} {label:<name_w$}  {:<status_w$}  {:.1}s\n",
                r.status,
                took.as_secs_f64()
            ));
        }
        out
    }
}

/// Runs a streamed engine call, showing its events in `mode` (redrawn
/// every 100 ms on a terminal); returns how many plan lines came.
pub fn call<B: serde::Serialize>(path: &str, body: &B, mode: Mode) -> anyhow::Result<usize> {
    let (rt, client) = crate::client::client()?;
    let display = std::cell::RefCell::new(Display::new(mode));
    let done = rt.block_on(async {
        let stream = client.post_stream(path, body, |e| display.borrow_mut().event(e));
        tokio::pin!(stream);
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                r = &mut stream => break r,
                _ = ticks.tick() => display.borrow_mut().tick(),
            }
        }
    });
    if done.is_err() {
        display.borrow_mut().failed();
    }
    done?;
    let planned = display.borrow().planned;
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(object: &str, name: &str, action: &str) -> Event {
        Event::Progress {
            object: object.into(),
            name: name.into(),
            action: action.into(),
        }
    }

    #[test]
    fn the_block_counts_what_is_done_and_times_each_line() {
        let mut d = Display::new(Mode::Quiet);
        d.quiet = false;
        d.tty = true;
        d.color = false;
        // Rows are kept as events come (drawing goes to stderr).
        d.event(progress("Network", "shop_default", "Creating"));
        d.event(progress("Network", "shop_default", "Created"));
        d.event(progress("Container", "shop-db-1", "Creating"));
        d.event(progress("Container", "shop-web-1", "Waiting for db"));
        let t0 = d.rows[0].since;
        for r in &mut d.rows {
            r.since = t0;
        }
        d.rows[0].ended = Some(t0 + Duration::from_millis(120));
        let frame = d.frame(t0 + Duration::from_millis(1500));
        assert_eq!(
            frame,
            "[+] Running 1/3\n \
             ✔ Network shop_default  Created         0.1s\n \
             ⠴ Container shop-db-1   Creating        1.5s\n \
             ⠴ Container shop-web-1  Waiting for db  1.5s\n"
        );
        // Done, then under way again (a restart): its time starts over.
        d.event(progress("Container", "shop-db-1", "Started"));
        assert!(d.rows[1].ended.is_some());
        d.event(progress("Container", "shop-db-1", "Restarting"));
        assert!(d.rows[1].ended.is_none() && d.rows[1].since > t0);
        assert_eq!(d.rows.len(), 3);
        // A failure: what was under way is marked, what was done stays.
        d.failed();
        let frame = d.frame(Instant::now());
        let lines: Vec<&str> = frame.lines().collect();
        assert_eq!(lines[0], "[+] Running 3/3");
        assert!(lines[1].starts_with(" ✔ Network shop_default  Created "));
        assert!(lines[2].starts_with(" ✘ Container shop-db-1   Error "));
        assert!(lines[3].starts_with(" ✘ Container shop-web-1  Error "));
    }

    #[test]
    fn what_is_under_way() {
        for s in ["Creating", "Starting", "Waiting for db", "Removing"] {
            assert!(under_way(s), "{s}");
        }
        for s in [
            "Created", "Started", "Healthy", "Exited", "Removed", "Pulled",
        ] {
            assert!(!under_way(s), "{s}");
        }
    }
}
