//! The allocator: mimalloc, told to give freed memory back to the system at
//! once. A long-lived server or worker that ran one huge run must not stay
//! at that run's peak: glibc's allocator kept hundreds of megabytes of a
//! 100,000-step run in its per-thread arenas, and mimalloc with its default
//! purge delay (1 s) still held most of it two seconds after the run ended,
//! in 8 of 10 tries (`tests/e2e/bounds.rs` measures it).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mi_option_e` (`mimalloc.h`, the same in v2
/// and v3): the Rust bindings name no constant for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `mi_option_arena_eager_commit` in `mi_option_e` (the same in v2 and v3).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Before `main`, before the first allocation: mimalloc commits its arenas'
/// memory as it uses it, not all at once. Committed at once, on a machine
/// whose transparent huge pages are `always` (Debian's default), the
/// arenas fill with 2 MiB pages: a purge of less than a huge page returns
/// nothing, and an embedded 10,000-task `for-each` peaked at 94–121 MiB
/// where it peaks at 70–77 MiB so (`bench/compare --only for-each`). The
/// huge pages are kept from this process's memory only: a process-wide
/// "no THP" (`MIMALLOC_ALLOW_THP=0`) would be inherited by every step the
/// worker starts. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still
/// decides (a default, not a setting, so the variable wins).
#[used]
#[allow(unsafe_code)]
#[link_section = ".init_array.00100"]
static COMMIT_ARENAS_ON_DEMAND: extern "C" fn() = commit_arenas_on_demand;

#[allow(unsafe_code)]
extern "C" fn commit_arenas_on_demand() {
    // SAFETY: sets one integer option's default, allocating nothing; runs
    // before `main`, so before any other thread.
    unsafe { libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0) }
}

/// Purges freed memory immediately instead of after mimalloc's delay,
/// unless `MIMALLOC_PURGE_DELAY` in the environment says otherwise.
#[allow(unsafe_code)]
pub fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one integer option; called first thing in `main`, before
    // any other thread exists (mimalloc's options are not thread safe).
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(unsafe_code)]
    fn arenas_are_committed_on_demand() {
        // SAFETY: reads an integer option.
        let eager = unsafe { libmimalloc_sys::mi_option_get(super::ARENA_EAGER_COMMIT) };
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            assert_eq!(eager, 0);
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads an integer option.
        let default = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        // mimalloc's default purge delay, 10 ms in v2 and 1 s in v3 (unless
        // the environment set it): the index is that option's.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert!([10, 1000].contains(&default), "{default}");
        }
    }
}
