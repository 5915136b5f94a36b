//! glibc's allocator, for the processes that live long: the engine, the
//! DNS server, and what stays beside each container (its monitor and
//! PID 1). Elsewhere (musl, ...) these do nothing.

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

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// 32 MiB of small blocks, freed below one still in use (so no heap
    /// can shrink from its top): only `give_back` returns their pages.
    #[test]
    fn freed_pages_go_back() {
        std::thread::spawn(|| {
            let blocks: Vec<Box<[u8; 4000]>> = (0..8192).map(|_| Box::new([1u8; 4000])).collect();
            let pin = Box::new([1u8; 4000]);
            let full = resident_kib();
            drop(blocks);
            super::give_back();
            let after = resident_kib();
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
