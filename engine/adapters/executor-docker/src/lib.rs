//! A [`ContainerRuntime`] on a Docker engine, through its API (bollard):
//! no CLI in between. Containers are unprivileged by default: every
//! capability dropped, `no-new-privileges`, a read-only root with a
//! writable `/tmp`, a pids limit, memory with swap equal to it, a CPU
//! quota, and no network unless the workflow asks for one.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use weft_core::ports::{ContainerExit, ContainerRun, ContainerRuntime, LogSink, WORKER_LABEL};
use weft_core::Error;

/// A Docker engine, reached through its local socket (or `DOCKER_HOST`).
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

fn backend(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let context = context.into();
    move |e| Error::backend(context, e)
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerRuntime {
    /// Connects and agrees on an API version with the engine.
    pub async fn connect() -> Result<Self, Error> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(backend("connecting to the Docker engine"))?
            .negotiate_version()
            .await
            .map_err(backend("connecting to the Docker engine"))?;
        docker
            .ping()
            .await
            .map_err(backend("connecting to the Docker engine"))?;
        Ok(Self { docker })
    }

    async fn ensure_image(&self, image: &str, log: &dyn LogSink) -> Result<(), Error> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(backend(format!("inspecting image {image}"))(e)),
        }
        log.write(format!("[weft] pulling image {image}\n").as_bytes())
            .await;
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(step) = pull.next().await {
            match step {
                Ok(info) => {
                    if let Some(status) = info.status {
                        // Progress repeats itself; keep the log readable.
                        if status != last {
                            log.write(format!("[weft] {status}\n").as_bytes()).await;
                            last = status;
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "image {image} is not on this worker and cannot be pulled: {e}"
                    )))
                }
            }
        }
        Ok(())
    }

    fn body(run: &ContainerRun) -> ContainerCreateBody {
        let mut binds = vec![format!("{}:/weft:rw", run.scratch)];
        binds.extend(run.mounts.iter().map(|m| {
            format!(
                "{}:{}:{}",
                m.source,
                m.target,
                if m.read_only { "ro" } else { "rw" }
            )
        }));
        let memory = run.memory_bytes.map(|m| m as i64);
        let host = HostConfig {
            binds: Some(binds),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                "rw,nosuid,nodev,size=256m".to_string(),
            )])),
            pids_limit: Some(run.pids_limit),
            memory,
            // Swap equal to memory: the limit is a limit, not a slowdown.
            memory_swap: memory,
            nano_cpus: run.cpus.map(|c| (c * 1e9) as i64),
            network_mode: Some(if run.network { "bridge" } else { "none" }.into()),
            device_requests: (!run.gpus.is_empty()).then(|| {
                vec![DeviceRequest {
                    driver: Some("nvidia".into()),
                    device_ids: Some(run.gpus.clone()),
                    capabilities: Some(vec![vec!["gpu".into()]]),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(run.image.clone()),
            entrypoint: run.command.clone(),
            cmd: run.args.clone(),
            env: Some(run.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: run.workdir.clone(),
            user: run.user.clone(),
            labels: Some(run.labels.clone().into_iter().collect()),
            network_disabled: Some(!run.network),
            host_config: Some(host),
            ..Default::default()
        }
    }

    async fn remove(&self, name: &str) -> Result<(), Error> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            // Already being removed by a concurrent call.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(backend(format!("removing container {name}"))(e)),
        }
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn run(&self, run: &ContainerRun, log: &dyn LogSink) -> Result<ContainerExit, Error> {
        self.ensure_image(&run.image, log).await?;
        // A container of this name is a leftover of an earlier try of the
        // same attempt: it goes.
        self.remove(&run.name).await?;
        let options = CreateContainerOptions {
            name: Some(run.name.clone()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), Self::body(run))
            .await
            .map_err(|e| Error::Invalid(format!("creating the container: {e}")))?;
        if let Err(e) = self.docker.start_container(&run.name, None).await {
            let _ = self.remove(&run.name).await;
            return Err(Error::Invalid(format!("starting the container: {e}")));
        }
        let logs = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut stream = self.docker.logs(&run.name, Some(logs));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    log.write_err(&message).await
                }
                Ok(out) => log.write(&out.into_bytes()).await,
                Err(_) => break,
            }
        }
        // A non-zero exit comes back as an error here; the state says it all.
        let mut wait = self
            .docker
            .wait_container(&run.name, None::<WaitContainerOptions>);
        while wait.next().await.is_some() {}
        let state = self
            .docker
            .inspect_container(&run.name, None)
            .await
            .map_err(backend(format!("inspecting container {}", run.name)))?
            .state
            .unwrap_or_default();
        self.remove(&run.name).await?;
        if state.oom_killed == Some(true) {
            return Ok(ContainerExit::OomKilled);
        }
        Ok(ContainerExit::Exited(state.exit_code.unwrap_or(-1)))
    }

    async fn kill(&self, name: &str) -> Result<(), Error> {
        let options = KillContainerOptions {
            signal: "KILL".into(),
        };
        let _ = self.docker.kill_container(name, Some(options)).await;
        self.remove(name).await
    }

    async fn remove_orphans(&self, worker: &str) -> Result<usize, Error> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{WORKER_LABEL}={worker}")],
            )])),
            ..Default::default()
        };
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(backend("listing containers"))?;
        let mut removed = 0;
        for c in found {
            if let Some(id) = c.id {
                self.remove(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
