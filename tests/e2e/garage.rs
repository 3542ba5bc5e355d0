//! A private Garage (an S3-compatible object store, installed by
//! `scripts/test`) that a test may stop and start: one node, its own
//! ports, directories, key and bucket.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::rabbit::free_port;

pub struct PrivateGarage {
    dir: tempfile::TempDir,
    pub s3_port: u16,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
    child: Option<Child>,
}

fn garage(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("garage")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("running garage (scripts/test installs it)");
    assert!(
        out.status.success(),
        "garage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PrivateGarage {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
        let secret: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        std::fs::write(
            dir.path().join("garage.toml"),
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\nadmin_token = \"{secret}\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let mut g = Self {
            dir,
            s3_port,
            key_id: String::new(),
            secret: String::new(),
            bucket: "weft-test".into(),
            child: None,
        };
        g.start_again();
        let config = g.config();
        let started = Instant::now();
        let id = loop {
            let out = Command::new("garage")
                .arg("-c")
                .arg(&config)
                .args(["node", "id", "-q"])
                .output()
                .unwrap();
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout)[..16].to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "garage did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        garage(&config, &["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        garage(&config, &["layout", "apply", "--version", "1"]);
        let key = garage(&config, &["key", "create", "weft-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {key}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        garage(&config, &["bucket", "create", &g.bucket]);
        garage(
            &config,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                &g.bucket,
                "--key",
                "weft-test",
            ],
        );
        g
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Starts the server (again) over what it stored.
    pub fn start_again(&mut self) {
        let child = Command::new("garage")
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting garage (scripts/test installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "garage did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `[artifacts]` naming this bucket.
    pub fn artifacts_table(&self) -> String {
        format!(
            "[artifacts]\nstore = \"s3\"\nbucket = \"{}\"\nregion = \"garage\"\n\
             endpoint = \"http://127.0.0.1:{}\"\naccess-key-id = \"{}\"\n\
             secret-access-key = \"{}\"\nallow-http = true\n",
            self.bucket, self.s3_port, self.key_id, self.secret
        )
    }

    pub fn options(&self, prefix: &str) -> weft_artifacts_object::S3Options {
        let table: toml::Table = toml::from_str(&self.artifacts_table()).unwrap();
        let mut s3: weft_artifacts_object::S3Options =
            toml::Value::Table(table["artifacts"].as_table().unwrap().clone())
                .try_into::<toml::Table>()
                .ok()
                .and_then(|mut t| {
                    t.remove("store");
                    toml::Value::Table(t).try_into().ok()
                })
                .unwrap();
        s3.prefix = prefix.into();
        s3
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    b[0]
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        self.stop();
    }
}
