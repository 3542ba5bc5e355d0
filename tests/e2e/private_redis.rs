//! A private Redis that a test may stop and start (never the shared one),
//! persisting as a careful install does: AOF, every write fsynced.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::rabbit::free_port;

pub struct PrivateRedis {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
        };
        redis.start_again();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again), reloading what its AOF kept.
    pub fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no", "--logfile", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let started = Instant::now();
        while !port_open(self.port) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the private Redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it as an operator does (`SHUTDOWN`: the AOF is complete).
    pub fn stop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
