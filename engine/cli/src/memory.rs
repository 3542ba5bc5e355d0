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
