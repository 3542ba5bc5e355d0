//! Tests of how a shell step's process starts.

use super::*;
use std::path::Path;

#[test]
fn a_program_is_found_in_the_path_given_and_a_path_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
    assert_eq!(resolve("tool", &path), None, "not executable");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(resolve("tool", &path), Some(tool));
    assert_eq!(resolve("./x/y", &path), Some(PathBuf::from("./x/y")));
    assert_eq!(resolve("missing", &path), None);
    assert_eq!(resolve("", &path), None);
}

fn sh(script: &str, cwd: &Path) -> Launch {
    Launch {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![("A".into(), "1".into()), ("A".into(), "2".into())],
        cwd: cwd.to_path_buf(),
        user: None,
        cgroups: Vec::new(),
    }
}

async fn read_all(mut r: pipe::Receiver) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = String::new();
    r.read_to_string(&mut s).await.unwrap();
    s
}

#[tokio::test]
async fn a_step_gets_its_environment_directory_streams_and_own_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo \"$A $(pwd) $(cut -d' ' -f5 /proc/$$/stat) $$\"; echo oops >&2; \
                  read x; echo \"stdin:$x\"; exit 3";
    let mut p = spawn(&sh(script, dir.path())).unwrap();
    let (out, err) = (p.stdout.take().unwrap(), p.stderr.take().unwrap());
    let status = p.wait().await.unwrap();
    let (out, err) = (read_all(out).await, read_all(err).await);
    assert_eq!(status.code(), Some(3));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "2", "the later value of a name wins: {out}");
    assert_eq!(Path::new(words[1]), dir.path().canonicalize().unwrap());
    assert_eq!(words[2], words[3], "the step leads its own process group");
    assert_eq!(words[3], p.id().to_string());
    assert!(
        out.contains("stdin:\n") || out.ends_with("stdin:\n"),
        "{out}"
    );
    assert_eq!(err, "oops\n");
}

#[tokio::test]
async fn a_failure_before_exec_names_its_stage_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut launch = sh("true", dir.path());
    launch.program = "/nonexistent/program".into();
    let e = spawn(&launch).err().unwrap();
    assert_eq!(e.doing, "starting");
    assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
    let mut launch = sh("true", &dir.path().join("missing"));
    launch.program = "/bin/sh".into();
    let e = spawn(&launch).err().unwrap();
    assert_eq!(e.doing, "entering its working directory");
    let mut launch = sh("true", dir.path());
    launch.env.push(("B".into(), "x\0y".into()));
    let e = spawn(&launch).err().unwrap();
    assert!(e.to_string().contains("NUL"), "{e}");
}

/// Each thread's uids, from `/proc/self/task/*/status`.
fn thread_uids() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(String::from)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_becomes_its_user_and_the_worker_stays_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: plain queries.
    let (me, my_gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // As root, a user of no one's; otherwise its own (all it may become).
    let user = if me == 0 {
        (65534, 65534)
    } else {
        (me, my_gid)
    };
    let before = thread_uids();
    let mut launch = sh("echo $(id -u) $(id -g) $(id -G)", dir.path());
    launch.user = Some(user);
    let mut p = spawn(&launch).unwrap();
    let out = p.stdout.take().unwrap();
    assert!(p.wait().await.unwrap().success());
    let out = read_all(out).await;
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], user.0.to_string(), "{out}");
    assert_eq!(words[1], user.1.to_string(), "{out}");
    if me == 0 {
        assert_eq!(&words[2..], [user.1.to_string()], "no other groups: {out}");
    }
    // The change of user is the child's alone: every thread of the
    // worker keeps its own.
    let after = thread_uids();
    assert!(
        after.iter().all(|uids| before.contains(uids)),
        "{before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn dropping_a_running_step_kills_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(&sh("sleep 30 & echo $!; wait", dir.path())).unwrap();
    let mut out = p.stdout.take().unwrap();
    let mut line = [0u8; 32];
    use tokio::io::AsyncReadExt;
    let n = out.read(&mut line).await.unwrap();
    let background: i32 = std::str::from_utf8(&line[..n])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(p);
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Gone, or dead and not yet reaped by whoever inherited it.
        std::fs::read_to_string(format!("/proc/{background}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        })
    });
    assert!(gone, "the step's background child outlived it");
}
