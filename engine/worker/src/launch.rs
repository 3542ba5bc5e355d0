//! How a shell step's process starts: without copying the worker.
//!
//! Forking the worker (a big, multi-threaded process) copies its page
//! tables and takes copy-on-write faults on both sides until the child
//! execs; in a profile of a 2,000-step fan-out that was a third of the
//! worker's CPU. The standard library avoids it with `posix_spawn`, but
//! only when nothing must happen in the child before `exec`, and a step
//! needs several things there: its own process group, its user (no other
//! groups), its control groups (`resources.memory`, `.cpus`) joined before
//! it can allocate, and the parent-death signal, set after the change of
//! user (which clears it). `setpriv(1)` could do those, but it costs 1 ms
//! (2.2 ms with a change of user: it looks the user up through NSS) on
//! every step.
//!
//! So a step starts here as `posix_spawn` starts a process: `clone` with
//! `CLONE_VM | CLONE_VFORK` (the child borrows the worker's memory and the
//! worker's thread waits until the child execs), all signals blocked
//! around it, and in the child only system calls on data made beforehand:
//! no allocation, no lock, no panic. What fails in the child before the
//! `exec` is written to a close-on-exec pipe, so the worker reports it as
//! the step's start failing. The process is then waited on through a
//! pidfd. Figures and how to reproduce them: `docs/performance.md`.
//!
//! A step's program is named by its absolute path, found here in the
//! step's `PATH` (one search, not the 8 failed `execve` of a shell's).

// The child side of `clone` below can only be written with raw calls.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// `name` as the step would find it: itself if it names a path, else the
/// first executable file of that name in `path` (a `PATH` value).
pub(crate) fn resolve(name: &str, path: &OsStr) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    if name.is_empty() {
        return None;
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The `PATH` a step gets: its own `env`'s, else the worker's.
pub(crate) fn step_path(env: &std::collections::BTreeMap<String, String>) -> OsString {
    env.get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// What a step's process is started with.
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Its whole environment, in order (a later name wins).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// A uid and a gid, and no supplementary groups.
    pub user: Option<(u32, u32)>,
    /// `cgroup.procs` files the process joins before it execs.
    pub cgroups: Vec<CString>,
}

/// What went wrong before the step's program could run.
#[derive(Debug)]
pub(crate) struct LaunchError {
    /// What was being done: "starting", "joining its control groups", ...
    pub doing: &'static str,
    pub source: io::Error,
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.doing, self.source)
    }
}

/// A step's running process: the leader of its own process group, its
/// stdout and stderr, waited on through a pidfd. Dropped before it was
/// waited for, its whole group is killed and it is reaped.
pub(crate) struct StepProcess {
    pid: libc::pid_t,
    exit: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// Where the child's setup stopped, as written to the failure pipe.
const STAGES: [&str; 8] = [
    "starting the step's process",
    "making its process group",
    "joining its control groups",
    "connecting its standard streams",
    "entering its working directory",
    "becoming its user",
    "setting its parent-death signal",
    "starting",
];

/// Everything the child reads, made by the parent before `clone`.
struct ChildPlan {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    cgroups: *const *const c_char,
    user: Option<(libc::uid_t, libc::gid_t)>,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    failure: RawFd,
    parent: libc::pid_t,
    mask: libc::sigset_t,
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, LaunchError> {
    CString::new(bytes).map_err(|_| LaunchError {
        doing: "starting",
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        ),
    })
}

/// Null-terminated array of pointers into `strings` (which must outlive it).
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn os_error(doing: &'static str) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError { doing, source }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts `launch` (see the module's documentation).
pub(crate) fn spawn(launch: &Launch) -> Result<StepProcess, LaunchError> {
    let program = cstring(launch.program.as_os_str().as_bytes(), "the program's path")?;
    let argv = std::iter::once(launch.program.as_os_str())
        .chain(launch.args.iter().map(OsString::as_os_str))
        .map(|a| cstring(a.as_bytes(), "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env: Vec<(&OsStr, &OsStr)> = Vec::with_capacity(launch.env.len());
    for (k, v) in &launch.env {
        match env.iter_mut().find(|(name, _)| *name == k.as_os_str()) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }
    let envp = env
        .iter()
        .map(|(k, v)| {
            let mut line = k.as_bytes().to_vec();
            line.push(b'=');
            line.extend_from_slice(v.as_bytes());
            cstring(&line, "an environment variable")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = cstring(launch.cwd.as_os_str().as_bytes(), "the working directory")?;
    let (argv_p, envp_p, cgroups_p) = (pointers(&argv), pointers(&envp), pointers(&launch.cgroups));

    let stdin = std::fs::File::open("/dev/null").map_err(os_error("opening /dev/null"))?;
    let (out_r, out_w) = pipe_cloexec().map_err(os_error("making its stdout pipe"))?;
    let (err_r, err_w) = pipe_cloexec().map_err(os_error("making its stderr pipe"))?;
    let (fail_r, fail_w) = pipe_cloexec().map_err(os_error("making a pipe"))?;

    // SAFETY: a zeroed sigset_t is a valid (empty) set for sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid; blocking every signal in this thread
    // keeps the worker's handlers from running in the child, which shares
    // its memory, until the child has reset them.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut mask);
    }
    let plan = ChildPlan {
        program: program.as_ptr(),
        argv: argv_p.as_ptr(),
        envp: envp_p.as_ptr(),
        cwd: cwd.as_ptr(),
        cgroups: cgroups_p.as_ptr(),
        user: launch.user,
        stdin: stdin.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        failure: fail_w.as_raw_fd(),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        mask,
    };
    // The child's stack, kept until it has exec'd or exited (CLONE_VFORK
    // holds this thread until then).
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the stack is ours and big enough for `child` (which calls no
    // Rust code that allocates or unwinds); `plan` and everything it points
    // to outlive the child's use of them, since this thread is suspended
    // until the child execs or exits.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        libc::clone(
            child,
            top.cast::<c_void>(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(&plan).cast_mut().cast::<c_void>(),
        )
    };
    let cloned = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
    }
    drop((stack, plan, stdin, out_w, err_w, fail_w));
    if pid < 0 {
        return Err(LaunchError {
            doing: STAGES[0],
            source: cloned,
        });
    }
    // Empty once the child has exec'd (the pipe closed on exec); else
    // where it stopped and why.
    let mut report = [0u8; 8];
    let read = read_full(&fail_r, &mut report);
    if read == report.len() {
        reap(pid);
        let stage = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]) as usize;
        let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
        return Err(LaunchError {
            doing: STAGES.get(stage).copied().unwrap_or(STAGES[0]),
            source: io::Error::from_raw_os_error(errno),
        });
    }
    let process = (|| {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just opened and is owned by no one else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: the AsyncFd owns the pidfd and nothing else closes it.
        let exit =
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)? };
        Ok(StepProcess {
            pid,
            exit,
            status: None,
            stdout: Some(pipe::Receiver::from_owned_fd(out_r)?),
            stderr: Some(pipe::Receiver::from_owned_fd(err_r)?),
        })
    })();
    process.map_err(|source| {
        kill_group(pid);
        reap(pid);
        LaunchError {
            doing: "watching the step's process",
            source,
        }
    })
}

/// Reads until `buf` is full or the pipe's writers are gone.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for writes of its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            n if n > 0 => done += n as usize,
            0 => break,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    done
}

fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill has no memory preconditions.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Waits for `pid` to exit, blocking; for a child that has or soon will.
fn reap(pid: libc::pid_t) -> Option<ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is valid for the write.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Some(ExitStatus::from_raw(status));
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
}

impl StepProcess {
    /// The process's id, which is also its process group's.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the process to exit (its group may live on).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            let mut ready = self.exit.readable().await?;
            let mut status = 0;
            // SAFETY: `status` is valid for the write.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            match r {
                0 => ready.clear_ready(),
                r if r == self.pid => {
                    let status = ExitStatus::from_raw(status);
                    self.status = Some(status);
                    return Ok(status);
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

impl Drop for StepProcess {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        kill_group(self.pid);
        let pid = self.pid;
        // Killed: it exits at once; reaped off the async threads.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || reap(pid));
            }
            Err(_) => {
                reap(pid);
            }
        }
    }
}

/// The child, between `clone` and `exec`: raw system calls on `plan`'s
/// data only. It shares the worker's memory: it must not allocate, lock,
/// or unwind.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildPlan` the parent keeps alive until this
    // child execs or exits.
    let plan = unsafe { &*arg.cast::<ChildPlan>() };
    let fail = |stage: u32| -> c_int {
        // SAFETY: __errno_location returns this thread's errno.
        let errno = unsafe { *libc::__errno_location() };
        let mut report = [0u8; 8];
        let (a, b) = report.split_at_mut(4);
        a.copy_from_slice(&stage.to_ne_bytes());
        b.copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: plain writes of a stack buffer, then exit.
        unsafe {
            libc::write(plan.failure, report.as_ptr().cast(), report.len());
            libc::_exit(127)
        }
    };
    // SAFETY: each call below is a system call on data made before the
    // clone (see `ChildPlan`); none allocates or takes a lock.
    unsafe {
        // The worker's signal handlers are its own: the step starts with
        // the default for every signal it catches, and for SIGPIPE, which
        // Rust programs ignore.
        for signal in 1..libc::SIGRTMAX() + 1 {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            let handled =
                current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN;
            if handled || signal == libc::SIGPIPE {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(1);
        }
        let mut cgroup = plan.cgroups;
        while !(*cgroup).is_null() {
            let fd = libc::open(*cgroup, libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return fail(2);
            }
            libc::close(fd);
            cgroup = cgroup.add(1);
        }
        for (from, to) in [(plan.stdin, 0), (plan.stdout, 1), (plan.stderr, 2)] {
            // dup2 onto itself keeps close-on-exec set: clear it instead.
            let connected = if from == to {
                libc::fcntl(to, libc::F_SETFD, 0)
            } else {
                libc::dup2(from, to)
            };
            if connected < 0 {
                return fail(3);
            }
        }
        if libc::chdir(plan.cwd) != 0 {
            return fail(4);
        }
        if let Some((uid, gid)) = plan.user {
            // Raw system calls, as glibc's own posix_spawn makes them: its
            // setuid, setgid and setgroups wrappers, in a process it knows
            // to be multi-threaded, take a lock and mark every thread's
            // record for the change, and this child shares the worker's
            // memory, records included. Only root may drop groups (as the
            // standard library does).
            if (libc::getuid() == 0
                && libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0)
                || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
            {
                return fail(5);
            }
        }
        // After the change of user, which clears it; and if the worker
        // died before it was set, the step must not start at all.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return fail(6);
        }
        if libc::getppid() != plan.parent {
            libc::_exit(127);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &plan.mask, std::ptr::null_mut());
        libc::execve(plan.program, plan.argv, plan.envp);
        fail(7)
    }
}

#[cfg(test)]
mod tests;
