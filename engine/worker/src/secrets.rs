//! Secrets on the worker: the values a step's job names are fetched and
//! opened as the attempt starts, filled into its `env`, its container's
//! `env` and its hooks' `config` (nowhere else, and only the names the
//! step declared), and masked in everything the attempt leaves behind:
//! its log, outputs, failure reason and hook errors, and what its post
//! hooks are given.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;
use weft_core::ports::SecretStore;
use weft_core::run::{FailureKind, HookRun, Job, Outcome};
use weft_core::secrets::fill_secrets;
use weft_core::spec::StepAction;
use weft_secrets::{Keyring, Masker};

/// Where a worker finds secrets, and the keys that open them.
#[derive(Clone)]
pub struct Secrets {
    store: Arc<dyn SecretStore>,
    /// `None`: this worker holds no key, and fails steps that use secrets.
    keyring: Option<Arc<Keyring>>,
}

impl Secrets {
    pub fn new(store: Arc<dyn SecretStore>, keyring: Option<Arc<Keyring>>) -> Self {
        Self { store, keyring }
    }

    /// What `resolve` says, for a worker that may have no secret store.
    pub(crate) async fn resolve_for(
        secrets: Option<&Self>,
        job: &Job,
        worker: &str,
    ) -> Result<Resolved, Outcome> {
        match secrets {
            Some(secrets) => secrets.resolve(job, worker).await,
            None => Err(Outcome::Failed {
                reason: format!("worker {worker} has no secret store, and this step uses secrets"),
                exit_code: None,
                retryable: false,
                kind: FailureKind::Infrastructure,
            }),
        }
    }

    /// The values of the secrets `job` names, or the outcome that ends the
    /// attempt: a secret not set, not for this workflow or pool, or one
    /// this worker cannot open.
    pub(crate) async fn resolve(&self, job: &Job, worker: &str) -> Result<Resolved, Outcome> {
        let refused = |reason: String| Outcome::Failed {
            reason,
            exit_code: None,
            retryable: false,
            kind: FailureKind::Policy,
        };
        let Some(keyring) = &self.keyring else {
            return Err(Outcome::Failed {
                reason: format!(
                    "worker {worker} holds no secret key ([secrets] key-file or $WEFT_SECRET_KEY), and this step uses secrets"
                ),
                exit_code: None,
                retryable: false,
                kind: FailureKind::Infrastructure,
            });
        };
        let mut values = BTreeMap::new();
        for name in &job.secrets {
            let stored = self.store.secret(name).await.map_err(|e| Outcome::Failed {
                reason: format!("reading secret `{name}`: {e}"),
                exit_code: None,
                retryable: true,
                kind: FailureKind::Infrastructure,
            })?;
            let Some(stored) = stored else {
                return Err(refused(format!("secret `{name}` is not set")));
            };
            if !stored.scope.allows(&job.workflow, &job.pool) {
                return Err(refused(format!(
                    "secret `{name}` is not for workflow `{}` in pool `{}` (it is for {})",
                    job.workflow,
                    job.pool,
                    stored.scope.describe()
                )));
            }
            let value = keyring.open(&stored).map_err(|e| Outcome::Failed {
                reason: e.to_string(),
                exit_code: None,
                retryable: false,
                kind: FailureKind::Infrastructure,
            })?;
            let value = String::from_utf8(value)
                .map_err(|_| refused(format!("secret `{name}` is not UTF-8 text")))?;
            values.insert(name.clone(), value);
        }
        let masker = Masker::new(values.values().map(|v| v.as_bytes()));
        Ok(Resolved {
            values,
            masker: Arc::new(masker),
        })
    }
}

/// One attempt's secrets, opened.
pub(crate) struct Resolved {
    values: BTreeMap<String, String>,
    pub(crate) masker: Arc<Masker>,
}

impl Resolved {
    pub(crate) fn none() -> Self {
        Self {
            values: BTreeMap::new(),
            masker: Arc::new(Masker::none()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn fill(&self, text: &str) -> String {
        fill_secrets(text, |name| self.values.get(name).cloned())
    }

    fn fill_json(&self, value: &mut Json) {
        match value {
            Json::String(s) if s.contains("{{") => *s = self.fill(s),
            Json::Array(items) => items.iter_mut().for_each(|v| self.fill_json(v)),
            Json::Object(map) => map.values_mut().for_each(|v| self.fill_json(v)),
            _ => {}
        }
    }

    /// Fills the hooks' and the step plugin's `config`.
    pub(crate) fn fill_configs(&self, job: &mut Job) {
        let calls = job
            .pre_hooks
            .iter_mut()
            .chain(job.post_hooks.iter_mut())
            .chain(job.step_plugin.iter_mut());
        for call in calls {
            self.fill_json(&mut call.config);
        }
    }

    /// Fills the step's `env` and its container's: after the pre hooks,
    /// which see the references, not the values.
    pub(crate) fn fill_env(&self, job: &mut Job) {
        for value in job.env.values_mut() {
            *value = self.fill(value);
        }
        if let StepAction::Container { spec } = &mut job.action {
            for value in spec.env.values_mut() {
                *value = self.fill(value);
            }
        }
    }

    /// `outcome` with every secret masked.
    pub(crate) fn mask_outcome(&self, outcome: Outcome) -> Outcome {
        if self.is_empty() {
            return outcome;
        }
        match outcome {
            Outcome::Succeeded { outputs, artifacts } => Outcome::Succeeded {
                outputs: self.masker.mask_json(outputs),
                artifacts,
            },
            Outcome::Failed {
                reason,
                exit_code,
                retryable,
                kind,
            } => Outcome::Failed {
                reason: self.masker.mask_str(&reason),
                exit_code,
                retryable,
                kind,
            },
        }
    }

    pub(crate) fn mask_hooks(&self, hooks: &mut [HookRun]) {
        for hook in hooks {
            if let Some(e) = &mut hook.error {
                *e = self.masker.mask_str(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_core::secrets::SecretScope;
    use weft_testkit::MemoryRunStore;

    use super::*;

    async fn secrets_with(name: &str, value: &str, scope: SecretScope) -> Secrets {
        let ring = Keyring::parse(&Keyring::generate_key().unwrap(), "test").unwrap();
        let store = MemoryRunStore::new();
        let sealed = ring.seal(name, value.as_bytes(), scope, None, 1).unwrap();
        store.put_secret(&sealed).await.unwrap();
        Secrets::new(Arc::new(store), Some(Arc::new(ring)))
    }

    fn job_using(names: &[&str]) -> Job {
        let mut job = weft_testkit::job("r", "s", "default");
        job.secrets = names.iter().map(|n| n.to_string()).collect();
        job
    }

    #[tokio::test]
    async fn declared_secrets_fill_env_and_configs_and_nothing_else() {
        let secrets = secrets_with("TOKEN", "hunter2-token", SecretScope::default()).await;
        let mut job = job_using(&["TOKEN"]);
        job.env
            .insert("T".into(), "Bearer {{ secrets.TOKEN }}".into());
        // Rendered from a parameter: a name the step did not declare stays text.
        job.env.insert("P".into(), "{{ secrets.OTHER }}".into());
        job.pre_hooks.push(weft_core::plugins::PluginCall {
            reference: "h".into(),
            resolved: None,
            config: json!({"auth": ["{{ secrets.TOKEN }}"]}),
            timeout_ms: None,
            memory: None,
        });
        let resolved = secrets.resolve(&job, "w").await.unwrap();
        resolved.fill_configs(&mut job);
        resolved.fill_env(&mut job);
        assert_eq!(job.env["T"], "Bearer hunter2-token");
        assert_eq!(job.env["P"], "{{ secrets.OTHER }}");
        assert_eq!(job.pre_hooks[0].config, json!({"auth": ["hunter2-token"]}));
        let masked = resolved.mask_outcome(Outcome::Failed {
            reason: "bad token aHVudGVyMi10b2tlbg== (hunter2-token)".into(),
            exit_code: Some(1),
            retryable: true,
            kind: FailureKind::ExitCode,
        });
        assert!(
            matches!(&masked, Outcome::Failed { reason, .. } if reason == "bad token *** (***)")
        );
    }

    #[tokio::test]
    async fn a_secret_not_set_out_of_scope_or_without_a_key_fails_the_attempt() {
        let scoped = SecretScope {
            workflows: vec!["etl-*".into()],
            pools: vec![],
        };
        let secrets = secrets_with("TOKEN", "hunter2-token", scoped).await;
        let reason = |o: Outcome| match o {
            Outcome::Failed { reason, kind, .. } => format!("{kind}: {reason}"),
            o => panic!("{o:?}"),
        };
        let e = secrets
            .resolve(&job_using(&["NOPE"]), "w")
            .await
            .err()
            .unwrap();
        assert_eq!(reason(e), "policy: secret `NOPE` is not set");
        let e = secrets
            .resolve(&job_using(&["TOKEN"]), "w")
            .await
            .err()
            .unwrap();
        assert!(reason(e).contains("not for workflow `contract` in pool `default`"),);
        let mut job = job_using(&["TOKEN"]);
        job.workflow = "etl-daily".into();
        assert!(secrets.resolve(&job, "w").await.is_ok());
        let keyless = Secrets::new(secrets.store.clone(), None);
        let e = keyless.resolve(&job, "w").await.err().unwrap();
        assert!(reason(e).contains("holds no secret key"));
    }
}
