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

/// mimalloc's defaults, set before `main` and before the first allocation
/// (an arena is reserved by then, committed or not). Defaults, not
/// settings: `MIMALLOC_PURGE_DELAY` and `MIMALLOC_ARENA_EAGER_COMMIT` in
/// the environment still decide.
///
/// - Freed memory is purged at once, not after mimalloc's delay.
/// - Arenas are committed as they are used, not all at once. Committed at
///   once, on a machine whose transparent huge pages are `always`
///   (Debian's default), they fill with 2 MiB pages, and a purge of less
///   than a huge page returns nothing: an embedded 10,000-task `for-each`
///   peaked at 94–121 MiB where it peaks at 70–77 MiB so (`bench/compare
///   --only for-each`). The huge pages are kept from this process's memory
///   only: a process-wide "no THP" (`MIMALLOC_ALLOW_THP=0`) would be
///   inherited by every step the worker starts.
#[used]
#[allow(unsafe_code)]
#[link_section = ".init_array.00100"]
static SET_DEFAULTS: extern "C" fn() = set_defaults;

#[allow(unsafe_code)]
extern "C" fn set_defaults() {
    // SAFETY: sets two integer options' defaults, allocating nothing; runs
    // before `main`, so before any other thread (mimalloc's options are
    // not thread safe).
    unsafe {
        libmimalloc_sys::mi_option_set_default(PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::{ARENA_EAGER_COMMIT, PURGE_DELAY};

    #[allow(unsafe_code)]
    fn option(option: libmimalloc_sys::mi_option_t) -> std::ffi::c_long {
        // SAFETY: reads an integer option.
        unsafe { libmimalloc_sys::mi_option_get(option) }
    }

    #[test]
    fn freed_memory_is_purged_at_once_and_arenas_committed_on_demand() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(option(PURGE_DELAY), 0);
        }
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            assert_eq!(option(ARENA_EAGER_COMMIT), 0);
        }
    }

    /// The indices are the options mimalloc reads from those variables:
    /// checked in a child process started with them set.
    #[test]
    fn the_options_set_are_those_the_environment_names() {
        const CHILD: &str = "WEFT_MEMORY_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(option(PURGE_DELAY), 1234);
            assert_eq!(option(ARENA_EAGER_COMMIT), 7);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "memory::tests::the_options_set_are_those_the_environment_names",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("MIMALLOC_PURGE_DELAY", "1234")
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "7")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
