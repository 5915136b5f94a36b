//! The container's output as JSON lines (Docker's json-file format), written
//! by the container's monitor process, which outlives any engine.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Where records go: anything written, plus a hook to rotate after each record.
pub trait Sink: Write {
    fn rotate_if_needed(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Appends one whole record (a JSON line).
    fn record(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_all(line)?;
        self.flush()
    }
}

impl Sink for Vec<u8> {}

/// Output nobody keeps (`logging: none`).
impl Sink for io::Sink {}

/// A log file rotated Docker's way: past `max_size` bytes, `log` becomes
/// `log.1` (older ones shift up), keeping at most `max_files` files in all.
pub struct RotatingFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
    /// Records dropped since the file system filled up (said in the log
    /// once there is room again).
    dropped: u64,
}

impl RotatingFile {
    pub fn open(path: &std::path::Path, max_size: Option<u64>, max_files: u32) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            dropped: 0,
        })
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl RotatingFile {
    /// Appends `line` whole or not at all.
    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        let before = self.size;
        if let Err(e) = self.write_all(line) {
            // No half record: the file goes back to where it was.
            let _ = self.file.set_len(before);
            self.size = before;
            return Err(e);
        }
        Ok(())
    }
}

impl Sink for RotatingFile {
    /// On a full file system the record is dropped (and counted), never
    /// the container's output: the monitor goes on draining it, and says
    /// how much was lost once there is room again.
    fn record(&mut self, line: &[u8]) -> io::Result<()> {
        let full =
            |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        if self.dropped > 0 {
            let note = Record {
                log: format!(
                    "stack: {} log records dropped: no space left on the device\n",
                    self.dropped
                ),
                stream: "stderr".into(),
                time: stack_sys::time::now_rfc3339(),
            };
            let mut json = serde_json::to_vec(&note).map_err(io::Error::other)?;
            json.push(b'\n');
            match self.append(&json) {
                Ok(()) => self.dropped = 0,
                Err(e) if full(&e) => {
                    self.dropped += 1;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        match self.append(line) {
            Err(e) if full(&e) => {
                self.dropped += 1;
                Ok(())
            }
            r => r,
        }
    }

    fn rotate_if_needed(&mut self) -> io::Result<()> {
        let Some(max) = self.max_size else {
            return Ok(());
        };
        if self.size < max {
            return Ok(());
        }
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            std::path::PathBuf::from(p)
        };
        // The new file first: with no room for it (a full disk), nothing
        // moves and the next record tries again.
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut fresh_path = self.path.clone().into_os_string();
        fresh_path.push(".new");
        let fresh = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&fresh_path)
            .and_then(|f| f.set_len(0).map(|()| f))
        {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        if self.max_files > 1 {
            for i in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.path, name(1))?;
        }
        std::fs::rename(&fresh_path, &self.path)?;
        self.file = fresh;
        self.size = 0;
        Ok(())
    }
}

/// Something to do once a descriptor becomes readable (a pidfd: once its
/// process has ended) while the pipes are pumped.
pub type Ended<'a> = Option<(BorrowedFd<'a>, &'a mut dyn FnMut())>;

/// Copies both pipes into `out` as records, line by line, until both close;
/// with `echo`, each also as it comes to a descriptor of its own (while
/// that can be written: a reader gone does not stop the log); `ended`'s
/// action is taken (once) when its descriptor becomes readable.
pub fn pump(
    stdout: OwnedFd,
    stderr: OwnedFd,
    out: &mut impl Sink,
    echo: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
    mut ended: Ended<'_>,
) -> io::Result<()> {
    let (echo_out, echo_err) = echo.unzip();
    let mut streams = vec![
        (stdout, "stdout", Vec::new(), echo_out),
        (stderr, "stderr", Vec::new(), echo_err),
    ];
    let mut buf = vec![0u8; 16 * 1024];
    while !streams.is_empty() {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|(fd, ..)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        if let Some((fd, _)) = &ended {
            fds.push(PollFd::new(*fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.get(streams.len()) == Some(&true) {
            if let Some((_, then)) = ended.take() {
                then();
            }
        }
        let mut closed = Vec::new();
        for (i, (fd, name, pending, echo)) in streams.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            let n = match nix::unistd::read(&*fd, &mut buf) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                if !pending.is_empty() {
                    emit(out, name, std::mem::take(pending))?;
                }
                closed.push(i);
                continue;
            }
            if let Some(to) = echo {
                if crate::tty::write_all(*to, &buf[..n]).is_err() {
                    *echo = None;
                }
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                emit(out, name, line)?;
            }
            // Docker splits very long lines too.
            if pending.len() >= 16 * 1024 {
                emit(out, name, std::mem::take(pending))?;
            }
        }
        for i in closed.into_iter().rev() {
            streams.remove(i);
        }
    }
    Ok(())
}

/// Writes one record of `stream`'s output (`stdout`, `stderr`) to `out`,
/// stamped now (also for output a caller relays: the Docker API's
/// terminals).
pub fn emit(out: &mut impl Sink, stream: &str, bytes: Vec<u8>) -> io::Result<()> {
    let r = Record {
        log: String::from_utf8_lossy(&bytes).into_owned(),
        stream: stream.to_string(),
        time: stack_sys::time::now_rfc3339(),
    };
    let mut line = serde_json::to_vec(&r).map_err(io::Error::other)?;
    line.push(b'\n');
    out.record(&line)?;
    // A rotation that fails leaves the log growing, never the output unread.
    if let Err(e) = out.rotate_if_needed() {
        eprintln!("stack: log rotation: {e}");
    }
    Ok(())
}

/// At most this much of a log is read at once (a record is at most
/// 16 KiB of output, a few times that as JSON).
const CHUNK: usize = 1 << 20;

/// Reading backwards goes this much at a time.
const BLOCK: u64 = 64 * 1024;

/// A line longer than this is damaged, never a record of ours: reading
/// backwards gives up on it instead of holding it.
const MAX_LINE: usize = 8 << 20;

/// Reads a log file as it grows, on from where it stopped: each call
/// returns whole records written since the last (at most about a
/// [`CHUNK`] of them; a half-written last line waits for the next call).
/// A file rotated away (`log` renamed to `log.1`, or removed) is read to
/// its end through the descriptor held open, then the new file from its
/// start; a truncated file from its start again. Nothing is ever read
/// twice, and memory stays a chunk whatever the log's size.
pub struct Follower {
    path: std::path::PathBuf,
    /// The file read, and its (device, inode): the path may name another
    /// file after a rotation.
    file: Option<(std::fs::File, (u64, u64))>,
    offset: u64,
    /// Where reading stops (see [`Follower::to_current_end`]).
    limit: Option<u64>,
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (m.dev(), m.ino())
}

/// Fills `buf` from `offset` as far as the file goes; the bytes read.
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt as _;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Follower {
    /// From the start of the file (which may not exist yet).
    pub fn new(path: std::path::PathBuf) -> Follower {
        Follower {
            path,
            file: None,
            offset: 0,
            limit: None,
        }
    }

    /// Reads stop where the file ends now: a reader that does not follow
    /// (`logs` without `-f`) ends, however fast the container writes, as
    /// docker's does.
    pub fn to_current_end(mut self) -> Follower {
        if self.open() {
            self.limit = self
                .file
                .as_ref()
                .and_then(|(f, _)| f.metadata().ok())
                .map(|m| m.len());
        }
        self
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Opens the path's file when none is open; whether one is.
    fn open(&mut self) -> bool {
        if self.file.is_none() {
            let Ok(file) = std::fs::File::open(&self.path) else {
                return false;
            };
            let Ok(meta) = file.metadata() else {
                return false;
            };
            self.file = Some((file, identity(&meta)));
            self.offset = 0;
        }
        true
    }

    /// The last `n` records `keep` accepts, oldest first, read backwards
    /// from the end of the file a block at a time (as many blocks as it
    /// takes to find them, never the whole file to find a few), and on into
    /// the rotated files when the current one has too few; later calls of
    /// [`Follower::read_new`] go on from the current file's end.
    pub fn tail(&mut self, n: usize, mut keep: impl FnMut(&Record) -> bool) -> Vec<Record> {
        if !self.open() {
            return Vec::new();
        }
        let Some((file, _)) = &self.file else {
            return Vec::new();
        };
        let len = file.metadata().map_or(0, |m| m.len());
        // The end: after the last newline (a half-written line is the
        // follower's, once whole).
        let mut end = 0;
        let mut pos = len;
        let mut block = vec![0u8; BLOCK as usize];
        while pos > 0 {
            let start = pos.saturating_sub(BLOCK);
            let got = read_at(file, &mut block[..(pos - start) as usize], start).unwrap_or(0);
            if let Some(i) = block[..got].iter().rposition(|b| *b == b'\n') {
                end = start + i as u64 + 1;
                break;
            }
            pos = start;
        }
        self.offset = end;
        let mut found = Vec::new();
        backwards(file, end, n, &mut keep, &mut found);
        // Too few: on into the files rotated away, newest first
        // (`log.1`, `log.2`, …), as docker reads them.
        for i in 1.. {
            if found.len() >= n {
                break;
            }
            let mut older = self.path.clone().into_os_string();
            older.push(format!(".{i}"));
            let Ok(older) = std::fs::File::open(older) else {
                break;
            };
            let len = older.metadata().map_or(0, |m| m.len());
            backwards(&older, len, n, &mut keep, &mut found);
        }
        found.reverse();
        found
    }

    /// New records, and where (byte offsets in their file) damaged ones were.
    pub fn read_new(&mut self) -> (Vec<Record>, Vec<u64>) {
        loop {
            if !self.open() {
                return (Vec::new(), Vec::new());
            }
            let Some((file, id)) = &self.file else {
                return (Vec::new(), Vec::new());
            };
            // Whether the path names another file now, asked before the
            // size: once the writer renamed its file it writes no more
            // to it, so the size read after is all it holds.
            let moved = std::fs::metadata(&self.path).map_or(true, |m| identity(&m) != *id);
            let mut len = file.metadata().map_or(0, |m| m.len());
            if let Some(limit) = self.limit {
                if self.offset >= limit {
                    return (Vec::new(), Vec::new());
                }
                len = len.min(limit);
            }
            if len < self.offset {
                self.offset = 0;
            }
            if len > self.offset {
                let mut buf = vec![0u8; (len - self.offset).min(CHUNK as u64) as usize];
                let got = read_at(file, &mut buf, self.offset).unwrap_or(0);
                buf.truncate(got);
                let whole = match buf.iter().rposition(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    // A chunk with no end of line is no record of ours.
                    None if got == CHUNK => {
                        let at = self.offset;
                        self.offset += got as u64;
                        return (Vec::new(), vec![at]);
                    }
                    None => return (Vec::new(), Vec::new()),
                };
                let at = self.offset;
                self.offset += whole as u64;
                return parse(&buf[..whole], at);
            }
            if !moved || !self.path.exists() {
                return (Vec::new(), Vec::new());
            }
            // Rotated, and the old file read to its end: the new one.
            self.file = None;
        }
    }

    /// Whether the file holds more than was read (or a new file replaced it).
    pub fn behind(&self) -> bool {
        let now = std::fs::metadata(&self.path);
        match &self.file {
            None => now.is_ok_and(|m| m.len() > 0),
            Some((file, id)) => {
                file.metadata().is_ok_and(|m| m.len() > self.offset)
                    || now.is_ok_and(|m| identity(&m) != *id && m.len() > 0)
            }
        }
    }
}

/// Whole lines of `file` backwards from `end` (a line's end), a block at
/// a time, onto `found` (newest first) until it holds `n` records `keep`
/// accepts or the file's start.
fn backwards(
    file: &std::fs::File,
    end: u64,
    n: usize,
    keep: &mut impl FnMut(&Record) -> bool,
    found: &mut Vec<Record>,
) {
    let mut block = vec![0u8; BLOCK as usize];
    // The start of the part after `pos`: a line whose beginning is before it.
    let mut carry: Vec<u8> = Vec::new();
    let mut pos = end;
    while pos > 0 && found.len() < n {
        let start = pos.saturating_sub(BLOCK);
        let size = (pos - start) as usize;
        let got = read_at(file, &mut block[..size], start).unwrap_or(0);
        if got < size {
            // Truncated under us: what was found stands.
            break;
        }
        let mut data = block[..size].to_vec();
        data.append(&mut carry);
        let lines = if start > 0 {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    carry = data[..=i].to_vec();
                    &data[i + 1..]
                }
                None => {
                    carry = data.clone();
                    &data[..0]
                }
            }
        } else {
            &data[..]
        };
        for line in lines.split(|b| *b == b'\n').rev() {
            if line.is_empty() {
                continue;
            }
            if let Ok(r) = serde_json::from_slice::<Record>(line) {
                if keep(&r) {
                    found.push(r);
                    if found.len() == n {
                        break;
                    }
                }
            }
        }
        if carry.len() > MAX_LINE {
            carry.clear();
        }
        pos = start;
    }
}

/// The records of whole lines that start at byte `at` of their file; the
/// offsets of damaged ones.
fn parse(bytes: &[u8], at: u64) -> (Vec<Record>, Vec<u64>) {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let mut offset = at;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if !text.is_empty() {
            match serde_json::from_slice(text) {
                Ok(r) => records.push(r),
                Err(_) => bad.push(offset),
            }
        }
        offset += line.len() as u64;
    }
    (records, bad)
}

/// Reads the records of a log file; a damaged line is skipped with its number reported.
pub fn read(text: &str) -> (Vec<Record>, Vec<usize>) {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) => bad.push(i + 1),
        }
    }
    (records, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("stack-logs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        let mut f = RotatingFile::open(&path, Some(100), 3).unwrap();
        for i in 0..20 {
            emit(&mut f, "stdout", format!("line {i}\n").into_bytes()).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1", "container.log.2"]
        );
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.is_empty() || newest.contains("line 19"), "{newest}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A temporary log with `n` records `line 0` … `line n-1`.
    fn log_with(name: &str, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("stack-logs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        let mut f = RotatingFile::open(&path, None, 1).unwrap();
        for i in 0..n {
            emit(&mut f, "stdout", format!("line {i}\n").into_bytes()).unwrap();
        }
        (dir, path)
    }

    fn logs(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.log.trim_end()).collect()
    }

    #[test]
    fn tail_reads_the_last_records() {
        // Far more than a block of records: the tail is found from the end.
        let (dir, path) = log_with("tail", 20_000);
        let mut f = Follower::new(path.clone());
        assert_eq!(
            logs(&f.tail(3, |_| true)),
            ["line 19997", "line 19998", "line 19999"]
        );
        // Then on from there, nothing again.
        assert!(f.read_new().0.is_empty());
        assert!(!f.behind());
        // With a filter: the last 2 of those it keeps.
        let mut f = Follower::new(path);
        let odd = f.tail(2, |r| r.log.trim_end().ends_with(['1', '3', '5', '7', '9']));
        assert_eq!(logs(&odd), ["line 19997", "line 19999"]);
        assert!(Follower::new(dir.join("container.log"))
            .tail(0, |_| true)
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A reader that does not follow stops at the end the file had when it
    /// began, however much is written meanwhile.
    #[test]
    fn a_reader_to_the_current_end_ends() {
        let (dir, path) = log_with("to-end", 3);
        let mut f = Follower::new(path.clone()).to_current_end();
        let mut w = RotatingFile::open(&path, None, 1).unwrap();
        emit(&mut w, "stdout", b"later\n".to_vec()).unwrap();
        let mut seen = Vec::new();
        loop {
            let (records, _) = f.read_new();
            if records.is_empty() {
                break;
            }
            seen.extend(records);
        }
        assert_eq!(logs(&seen), ["line 0", "line 1", "line 2"]);
        // A follower from the start reads on into what came later.
        let mut all = Follower::new(path);
        assert_eq!(all.read_new().0.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_leaves_a_partial_last_line_to_the_follower() {
        let (dir, path) = log_with("partial", 5);
        let whole = std::fs::read(&path).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&whole[..20]).unwrap();
        let mut f = Follower::new(path);
        assert_eq!(logs(&f.tail(2, |_| true)), ["line 3", "line 4"]);
        assert!(f.read_new().0.is_empty());
        // Once the line is whole, the follower has it.
        let first = whole.iter().position(|b| *b == b'\n').unwrap();
        file.write_all(&whole[20..=first]).unwrap();
        assert_eq!(logs(&f.read_new().0), ["line 0"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_of_an_empty_or_missing_or_short_file() {
        let (dir, path) = log_with("empty", 0);
        assert!(Follower::new(path.clone()).tail(2, |_| true).is_empty());
        assert!(Follower::new(dir.join("nothing"))
            .tail(2, |_| true)
            .is_empty());
        // More asked than there is: all of it, oldest first.
        let (dir2, path) = log_with("short", 3);
        let mut f = Follower::new(path);
        assert_eq!(logs(&f.tail(10, |_| true)), ["line 0", "line 1", "line 2"]);
        assert!(f.read_new().0.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
    }

    #[test]
    fn tail_goes_on_into_rotated_files() {
        let dir = std::env::temp_dir().join(format!("stack-logs-tailrot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        // About 3 records a file (each ~76 bytes), 3 files kept.
        let mut w = RotatingFile::open(&path, Some(200), 3).unwrap();
        for i in 0..7 {
            emit(&mut w, "stdout", format!("line {i}\n").into_bytes()).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(current < 4, "{current}");
        let mut f = Follower::new(path);
        assert_eq!(
            logs(&f.tail(4, |_| true)),
            ["line 3", "line 4", "line 5", "line 6"]
        );
        // Then on from the current file's end only.
        assert!(f.read_new().0.is_empty());
        emit(&mut w, "stdout", b"line 7\n".to_vec()).unwrap();
        assert_eq!(logs(&f.read_new().0), ["line 7"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn following_reads_on_from_its_offset() {
        let (dir, path) = log_with("follow", 3);
        let mut f = Follower::new(path.clone());
        assert_eq!(logs(&f.read_new().0), ["line 0", "line 1", "line 2"]);
        // What was read is not read again: damage it in place (same
        // length) and append; only the new records come, and no damage.
        let mut text = std::fs::read(&path).unwrap();
        text[0] = b'#';
        std::fs::write(&path, &text).unwrap();
        let mut w = RotatingFile::open(&path, None, 1).unwrap();
        emit(&mut w, "stdout", b"line 3\n".to_vec()).unwrap();
        assert!(f.behind());
        let (records, bad) = f.read_new();
        assert_eq!((logs(&records), bad), (vec!["line 3"], vec![]));
        assert!(!f.behind());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn following_reads_a_chunk_at_a_time() {
        // ~4 MB of records come in several reads, none past a chunk.
        let (dir, path) = log_with("chunks", 60_000);
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(size > 3 * CHUNK);
        let mut f = Follower::new(path);
        let (mut reads, mut all) = (0, 0);
        loop {
            let (records, _) = f.read_new();
            if records.is_empty() {
                break;
            }
            let bytes: usize = records
                .iter()
                .map(|r| serde_json::to_vec(r).unwrap().len() + 1)
                .sum();
            assert!(bytes <= CHUNK);
            reads += 1;
            all += records.len();
        }
        assert_eq!(all, 60_000);
        assert!(reads > 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn following_goes_across_rotation() {
        let dir = std::env::temp_dir().join(format!("stack-logs-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        // Rotates after the record that takes it past 200 bytes (each is ~76).
        let mut w = RotatingFile::open(&path, Some(200), 3).unwrap();
        let mut f = Follower::new(path.clone());
        emit(&mut w, "stdout", b"line 0\n".to_vec()).unwrap();
        assert_eq!(logs(&f.read_new().0), ["line 0"]);
        // line 2 takes the file past 200 bytes: renamed to `.1` under the
        // follower, lines 3 and 4 in a new file.
        for i in 1..5 {
            emit(&mut w, "stdout", format!("line {i}\n").into_bytes()).unwrap();
        }
        assert!(std::fs::metadata(dir.join("container.log.1")).is_ok());
        let mut got = Vec::new();
        while f.behind() {
            got.extend(logs(&f.read_new().0).into_iter().map(str::to_string));
        }
        // Each once, in order: the rest of the renamed file, then the new one.
        assert_eq!(got, ["line 1", "line 2", "line 3", "line 4"]);
        emit(&mut w, "stdout", b"line 5\n".to_vec()).unwrap();
        assert_eq!(logs(&f.read_new().0), ["line 5"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pipes_become_json_lines() {
        let (or, ow) = nix::unistd::pipe().unwrap();
        let (er, ew) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&ow, b"one\ntw").unwrap();
        nix::unistd::write(&ew, b"oops\n").unwrap();
        nix::unistd::write(&ow, b"o\nno newline").unwrap();
        drop(ow);
        drop(ew);
        // Each echoed as it comes, too.
        let (echo_or, echo_ow) = nix::unistd::pipe().unwrap();
        let (echo_er, echo_ew) = nix::unistd::pipe().unwrap();
        let mut out = Vec::new();
        pump(
            or,
            er,
            &mut out,
            Some((echo_ow.as_fd(), echo_ew.as_fd())),
            None,
        )
        .unwrap();
        drop((echo_ow, echo_ew));
        let echoed = |r: OwnedFd| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut s).unwrap();
            s
        };
        assert_eq!(echoed(echo_or), "one\ntwo\nno newline");
        assert_eq!(echoed(echo_er), "oops\n");
        let (records, bad) = read(std::str::from_utf8(&out).unwrap());
        assert!(bad.is_empty());
        let mut got: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.stream.clone(), r.log.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("stderr".into(), "oops\n".into()),
                ("stdout".into(), "no newline".into()),
                ("stdout".into(), "one\n".into()),
                ("stdout".into(), "two\n".into())
            ]
        );
        assert!(records[0].time.ends_with('Z'));
    }
}
