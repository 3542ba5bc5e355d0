//! The worker's side: one kernel process per GPU, started on first use,
//! kept between launches (so a cached launch pays for no process, context
//! or module), and replaced after it fails or is stopped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use weft_core::ports::{gpu_label, KernelLaunch, KernelReport, KernelRuntime};

use crate::host::CACHE_ENV;
use crate::protocol::{self, Hello, Reply};

/// How the worker starts kernel processes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The program to run: the `weft` binary itself, normally.
    pub program: PathBuf,
    /// Its arguments: `["cuda-host"]` for `weft`.
    pub args: Vec<String>,
    /// Where compiled PTX is kept across launches and processes.
    pub ptx_cache: PathBuf,
}

/// A [`KernelRuntime`] that runs each GPU's kernels in a process of its own.
pub struct CudaRuntime {
    options: Options,
    /// Kernel processes between launches, by GPU (as the worker names it).
    idle: Mutex<HashMap<String, Host>>,
}

/// The most of a kernel process's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

struct Host {
    // Held so the process is killed when the host is dropped.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Host {
    /// What the process said on stderr last, for a message.
    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().expect("stderr lock");
        let text = String::from_utf8_lossy(&tail);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!("; it said: {text}")
        }
    }
}

impl CudaRuntime {
    pub fn new(options: Options) -> Self {
        Self {
            options,
            idle: Mutex::new(HashMap::new()),
        }
    }

    async fn start(&self, device: &str) -> Result<Host, weft_core::Error> {
        let mut child = tokio::process::Command::new(&self.options.program)
            .args(&self.options.args)
            .env("CUDA_VISIBLE_DEVICES", device)
            .env(CACHE_ENV, &self.options.ptx_cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                weft_core::Error::backend(
                    format!(
                        "starting the kernel process {}",
                        self.options.program.display()
                    ),
                    e,
                )
            })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(weft_core::Error::Invalid(
                "kernel process pipes missing".into(),
            ));
        };
        let tail = Arc::new(Mutex::new(Vec::new()));
        {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut chunk = [0u8; 1024];
                while let Ok(n @ 1..) = stderr.read(&mut chunk).await {
                    let mut t = tail.lock().expect("stderr lock");
                    t.extend_from_slice(&chunk[..n]);
                    let over = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..over);
                }
            });
        }
        let mut host = Host {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tail,
        };
        match protocol::read_frame::<_, Hello>(&mut host.stdout).await {
            Ok(Some((Hello::Ready { .. }, _))) => Ok(host),
            Ok(Some((Hello::Unavailable { message }, _))) => Err(weft_core::Error::Invalid(
                format!("{} cannot run kernels: {message}", gpu_label(device)),
            )),
            Ok(None) | Err(_) => {
                // Give its last words a moment to arrive.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(weft_core::Error::Invalid(format!(
                    "the kernel process for {} exited before it was ready{}",
                    gpu_label(device),
                    host.stderr_tail()
                )))
            }
        }
    }
}

#[async_trait]
impl KernelRuntime for CudaRuntime {
    async fn launch(
        &self,
        device: &str,
        mut launch: KernelLaunch,
    ) -> Result<KernelReport, weft_core::Error> {
        let idle = self.idle.lock().expect("idle lock").remove(device);
        // Taken out while it runs: if this future is dropped (a timeout, an
        // abort) the process goes with it, and the next launch starts anew.
        let mut host = match idle {
            Some(h) => h,
            None => self.start(device).await?,
        };
        let blobs = protocol::take_launch_blobs(&mut launch);
        let exchanged = async {
            protocol::write_frame(&mut host.stdin, &launch, &blobs).await?;
            protocol::read_frame::<_, Reply>(&mut host.stdout).await
        }
        .await;
        match exchanged {
            Ok(Some((mut reply, blobs))) => {
                protocol::give_reply_blobs(&mut reply, blobs)
                    .map_err(|e| weft_core::Error::backend("kernel process", e))?;
                match reply {
                    Reply::Done(report) => {
                        self.idle
                            .lock()
                            .expect("idle lock")
                            .insert(device.to_string(), host);
                        Ok(report)
                    }
                    Reply::Failed { message, fatal } => {
                        if !fatal {
                            self.idle
                                .lock()
                                .expect("idle lock")
                                .insert(device.to_string(), host);
                        }
                        Err(weft_core::Error::Invalid(message))
                    }
                }
            }
            Ok(None) | Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(weft_core::Error::Invalid(format!(
                    "the kernel process for {} died during the launch{}",
                    gpu_label(device),
                    host.stderr_tail()
                )))
            }
        }
    }
}
