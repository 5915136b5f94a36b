//! Memory of the processes that live long: the engine, the DNS server,
//! and what stays beside each container (its monitor and PID 1). `lean`
//! and `give_back` set up and trim glibc's allocator (elsewhere, as on
//! musl, they do nothing); `shed_code` unmaps code no longer in use.

/// Sets the allocator up for a long-lived process of many threads, before
/// they start:
/// - at most two arenas: by default, each thread that allocates while
///   another does gets one of its own (up to 8 per core), and what is
///   freed in it stays there; the blocking threads of a tokio runtime
///   come and go, and an idle engine kept megabytes of them;
/// - a block of 128 KiB or more always mapped on its own, so that freeing
///   it gives it back: glibc otherwise raises that threshold to the
///   largest such block freed, and the later ones stay in a heap.
pub fn lean() {
    // SAFETY: mallopt only sets two of malloc's parameters.
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns the pages of what was freed to the kernel, from every arena:
/// glibc keeps them otherwise, below whatever is still in use.
pub fn give_back() {
    // SAFETY: malloc_trim only walks malloc's own free lists.
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps from this process the pages of its code and of every other
/// read-only file mapping that holds no page of its own: they stay in the
/// page cache, and come back on a (minor) fault where they are used again.
/// An engine that has done an `up` has touched code in nearly every crate
/// (the kernel maps 64 KiB around each page faulted); idle, it needs a
/// small part of it.
pub fn shed_code() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, len) in sheddable(&smaps) {
        // SAFETY: the range is a whole mapping that cannot be written and
        // holds only page-cache pages: MADV_DONTNEED drops its page-table
        // entries, and each page reads back the same from the file. (The
        // processes that call this map no file themselves and load no
        // library once started, so no range read here is unmapped and
        // reused before the call.)
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// The mappings of `smaps` (the text of `/proc/PID/smaps`) that
/// `shed_code` may drop, as (start, length): backed by a file, not
/// writable, with no page of the process's own, resident or swapped out
/// (a page written before it was made read-only, as relocations are,
/// would be lost), none locked, no special memory (raw page frames, I/O,
/// mixed or huge pages: `VmFlags`), and some resident.
fn sheddable(smaps: &str) -> Vec<(usize, usize)> {
    /// One mapping as read so far.
    struct Mapping {
        range: (usize, usize),
        rss: u64,
        keep: bool,
        anonymous_said: bool,
    }
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((from, to)) = first.split_once('-') {
            let (Ok(from), Ok(to)) = (
                usize::from_str_radix(from, 16),
                usize::from_str_radix(to, 16),
            ) else {
                continue;
            };
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            let file = inode != "0" && perms.len() == 4;
            mappings.push(Mapping {
                range: (from, to - from),
                rss: 0,
                keep: !file || perms.contains('w'),
                anonymous_said: false,
            });
            continue;
        }
        let Some(m) = mappings.last_mut() else {
            continue;
        };
        let mut value = || {
            fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        match first {
            "Rss:" => m.rss = value(),
            "Anonymous:" => {
                m.anonymous_said = true;
                m.keep |= value() != 0;
            }
            "Swap:" | "Locked:" => m.keep |= value() != 0,
            "VmFlags:" => m.keep |= fields.any(|f| ["pf", "io", "mm", "ht", "lo"].contains(&f)),
            _ => {}
        }
    }
    // Kept, too, where no `Anonymous:` line said it has none of its own.
    mappings
        .into_iter()
        .filter(|m| m.rss > 0 && !m.keep && m.anonymous_said)
        .map(|m| m.range)
        .collect()
}

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    /// A line of /proc/self/status, in KiB (`VmRSS:`, `RssFile:`).
    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    const SMAPS: &str = "\
55d0a0000000-55d0a0200000 r--p 00000000 08:01 1234 /usr/bin/stack
Rss:                 800 kB
Anonymous:             0 kB
Locked:                0 kB
55d0a0200000-55d0a0800000 r-xp 00200000 08:01 1234 /usr/bin/stack
Rss:                4000 kB
Anonymous:             0 kB
Locked:                0 kB
55d0a0800000-55d0a0900000 r--p 00800000 08:01 1234 /usr/bin/stack
Rss:                 400 kB
Anonymous:           400 kB
Locked:                0 kB
55d0a0a00000-55d0a0a80000 r--p 00900000 08:01 1234 /usr/bin/stack
Rss:                   4 kB
Anonymous:             0 kB
Swap:                 60 kB
55d0a0a80000-55d0a0a90000 r--s 00000000 00:0e 5555 anon_inode:[bpf-ringbuf]
Rss:                  64 kB
Anonymous:             0 kB
VmFlags: rd sh mr mw me ms pf
55d0a0a90000-55d0a0aa0000 r--p 00000000 08:01 4321 /usr/lib/no-anonymous-line
Rss:                  64 kB
55d0a0900000-55d0a0910000 rw-p 00900000 08:01 1234 /usr/bin/stack
Rss:                  64 kB
Anonymous:             8 kB
55d0a1000000-55d0a1100000 rw-p 00000000 00:00 0 [heap]
Rss:                1024 kB
Anonymous:          1024 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                   0 kB
Anonymous:             0 kB
7f0000200000-7f0000210000 r-xp 00000000 08:01 77 /usr/lib/locked.so
Rss:                  64 kB
Anonymous:             0 kB
Locked:               64 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Rss:                   8 kB
Anonymous:             0 kB
";

    /// Only read-only file mappings with no page of the process's own:
    /// not the relocated one (its own pages resident or swapped out), the
    /// writable ones, the heap, the vdso, a special one; not one with
    /// nothing resident, locked pages, or an unknown count of its own.
    #[test]
    fn only_pages_the_file_holds_are_shed() {
        assert_eq!(
            super::sheddable(SMAPS),
            [(0x55d0a0000000, 0x200000), (0x55d0a0200000, 0x600000)]
        );
    }

    /// The test binary's own code goes, and comes back as it runs.
    #[test]
    fn code_is_shed_and_comes_back() {
        let before = status_kib("RssFile:");
        super::shed_code();
        let after = status_kib("RssFile:");
        assert!(
            after * 2 < before,
            "resident file pages: {before} KiB before, {after} KiB after"
        );
        let s: String = (0..100).map(|i| format!("{i}")).collect();
        assert!(s.starts_with("0123"));
    }

    /// 32 MiB of small blocks, freed below one still in use (so no heap
    /// can shrink from its top): only `give_back` returns their pages.
    #[test]
    fn freed_pages_go_back() {
        std::thread::spawn(|| {
            let blocks: Vec<Box<[u8; 4000]>> = (0..8192).map(|_| Box::new([1u8; 4000])).collect();
            let pin = Box::new([1u8; 4000]);
            let full = status_kib("VmRSS:");
            drop(blocks);
            super::give_back();
            let after = status_kib("VmRSS:");
            assert!(
                full - after.min(full) > 24 * 1024,
                "resident {full} KiB with the blocks, {after} KiB after give_back"
            );
            drop(pin);
        })
        .join()
        .unwrap();
    }
}
