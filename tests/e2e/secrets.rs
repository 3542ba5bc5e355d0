//! Secrets end to end: an admin sets one with `weft secret set` (standard
//! input), an operator's workflow uses it in a shell step's `env` and a
//! container's `env`, and it reaches both processes; yet the value, in
//! clear, base64 or URL-encoded, is in no event, run record or anything
//! else in Redis, no API answer, dashboard page, CLI output, log line or
//! output. Viewers and operators cannot list or set secrets; a secret is
//! held to its scope; keys rotate.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::{step, Cluster, Setup};
use crate::dashboard::open_as;
use crate::support::{repo, weft_bin};

const WORKFLOW: &str = r#"
[workflow]
name = "deploy-app"

[params]
sum = ""

[steps.shell]
env = { TOKEN = "{{ secrets.API_TOKEN }}" }
run = '''
echo "plain: $TOKEN"
printf %s "$TOKEN" | base64 -w0; echo
python3 -c 'import os, urllib.parse as u; print(u.quote(os.environ["TOKEN"], safe="")); print(u.quote_plus(os.environ["TOKEN"]))'
printf '{"t": "%s"}' "$TOKEN" > "$WEFT_OUTPUTS"
test "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" = "{{ params.sum }}"
'''

[steps.box.container]
image = "weft-test/busybox:1"
command = ["sh", "-c", 'echo "box: $TOKEN"; test "$(printf %s "$TOKEN" | sha256sum | cut -d" " -f1)" = "$SUM"']
env = { TOKEN = "{{ secrets.API_TOKEN }}", SUM = "{{ params.sum }}" }
"#;

/// The forms of `value` that must appear nowhere.
fn forms(value: &str) -> Vec<String> {
    let url = |plus: bool| {
        let mut out = String::new();
        for b in value.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                b' ' if plus => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    vec![
        value.to_string(),
        STANDARD.encode(value),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE.encode(value),
        url(false),
        url(true),
    ]
}

fn assert_clean(what: &str, text: &str, value: &str) {
    for form in forms(value) {
        assert!(
            !text.contains(&form),
            "{what} holds the secret (as `{form}`): …{}…",
            text.find(&form)
                .map(|i| &text[i.saturating_sub(80)..(i + form.len() + 40).min(text.len())])
                .unwrap_or_default()
        );
    }
}

fn sha256_hex(value: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(value.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// `weft secret ...` against the cluster with `token`, `stdin` fed in.
fn weft_secret(cluster: &Cluster, token: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(weft_bin())
        .args(["--server", &cluster.url, "secret"])
        .args(args)
        .env("WEFT_TOKEN", token)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Everything stored under the cluster's prefix in Redis, as text.
async fn redis_dump(cluster: &Cluster) -> String {
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", cluster.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() > 5, "{keys:?}");
    let mut all = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut cmd = match kind.as_str() {
            "string" => redis::cmd("GET"),
            "hash" => redis::cmd("HGETALL"),
            "list" => redis::cmd("LRANGE"),
            "set" => redis::cmd("SMEMBERS"),
            "zset" => redis::cmd("ZRANGE"),
            "stream" => redis::cmd("XRANGE"),
            other => panic!("key {key} of type {other}"),
        };
        cmd.arg(&key);
        match kind.as_str() {
            "list" | "zset" => {
                cmd.arg(0).arg(-1);
            }
            "stream" => {
                cmd.arg("-").arg("+");
            }
            _ => {}
        }
        let value: redis::Value = cmd.query_async(&mut conn).await.unwrap();
        all.push_str(&format!("{key} {value:?}\n"));
    }
    all
}

async fn text(cluster: &Cluster, token: &str, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}{path}", cluster.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn write_keys(path: &std::path::Path, keys: &[&str]) {
    std::fs::write(path, keys.join("\n")).unwrap();
}

fn new_key() -> String {
    STANDARD.encode(
        weft_testkit::unique("k")
            .as_bytes()
            .iter()
            .cycle()
            .take(32)
            .copied()
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_its_steps_and_nothing_else_and_its_keys_rotate() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("secret.key");
    let (old_key, new_key) = (new_key(), new_key());
    write_keys(&key_file, &[&old_key]);
    let tables = format!("[secrets]\nkey-file = \"{}\"\n", key_file.display());
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        tables: &tables,
        log_to_files: true,
        ..Setup::default()
    });
    let admin = cluster.admin_token.clone();
    let token = |body: serde_json::Value| body["token"].as_str().unwrap().to_string();
    let operator = token(cluster.mint("ops", "operator").await);
    let viewer = token(cluster.mint("eyes", "viewer").await);
    let value = format!("hunter2 {}/x+y&z", weft_testkit::unique("s"));

    // Only an admin sets and lists secrets.
    let (ok, said) = weft_secret(&cluster, &operator, &["set", "API_TOKEN"], &value);
    assert!(!ok && said.contains("admin"), "{said}");
    for who in [&viewer, &operator] {
        let (status, _) = cluster
            .call(Some(who), Method::GET, "/api/secrets", None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (ok, said) = weft_secret(
        &cluster,
        &admin,
        &["set", "API_TOKEN", "--workflow", "deploy-*"],
        &format!("{value}\n"),
    );
    assert!(ok, "{said}");
    let (ok, listed) = weft_secret(&cluster, &admin, &["list"], "");
    assert!(
        ok && listed.contains("API_TOKEN") && listed.contains("deploy-*"),
        "{listed}"
    );
    assert_clean("`weft secret list`", &listed, &value);

    // Used where its scope allows: it reaches both steps' processes (they
    // check its hash), and their logs and outputs hold only the mask.
    let sum = sha256_hex(&value);
    let run = cluster
        .run_as(&operator, WORKFLOW, json!({ "sum": sum }))
        .await;
    assert_eq!(run.run.status, "succeeded", "{run:?}");
    assert_eq!(step(&run, "shell").outputs, Some(json!({"t": "***"})));
    let shell_log = text(
        &cluster,
        &viewer,
        &format!("/api/runs/{}/logs/shell", run.run.id),
    )
    .await;
    assert!(
        shell_log.contains("plain: ***\n***\n***\n***\n"),
        "{shell_log}"
    );
    let box_log = text(
        &cluster,
        &viewer,
        &format!("/api/runs/{}/logs/box", run.run.id),
    )
    .await;
    assert!(box_log.contains("box: ***"), "{box_log}");

    // Out of its scope, or not set: refused at submit, at the line.
    let other = WORKFLOW.replace("deploy-app", "other-app");
    let (status, refused) = cluster
        .call(
            Some(&operator),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": other, "file": "w.toml"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("secret `API_TOKEN` is not for workflow `other-app`")
            && message.contains("w.toml:9:"),
        "{message}"
    );
    let unset = WORKFLOW.replace("API_TOKEN", "NOT_SET");
    let (status, refused) = cluster
        .call(
            Some(&operator),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": unset, "file": "w.toml"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("secret `NOT_SET` is not set"),
        "{refused}"
    );

    // Nowhere else: every API answer a viewer or an admin reads about the
    // run, the audit log, the secrets list ...
    let id = &run.run.id;
    for path in [
        format!("/api/runs/{id}"),
        format!("/api/runs/{id}/states"),
        format!("/api/runs/{id}/graph"),
        format!("/api/runs/{id}/steps/shell"),
        format!("/api/runs/{id}/steps/box"),
        "/api/runs?limit=100".to_string(),
        "/api/workers".to_string(),
    ] {
        assert_clean(&path, &text(&cluster, &viewer, &path).await, &value);
    }
    for path in ["/api/audit", "/api/secrets", "/api/workflows"] {
        assert_clean(path, &text(&cluster, &admin, path).await, &value);
    }
    let audit = text(&cluster, &admin, "/api/audit").await;
    assert!(
        audit.contains("\"set-secret\"") && audit.contains("API_TOKEN"),
        "{audit}"
    );
    // ... the CLI's views ...
    for args in [
        vec!["show", id.as_str()],
        vec!["logs", id.as_str(), "shell"],
        vec!["logs", id.as_str(), "box"],
    ] {
        let out = Command::new(weft_bin())
            .args(["--server", &cluster.url])
            .args(&args)
            .env("WEFT_TOKEN", &viewer)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(
            &format!("weft {args:?}"),
            &String::from_utf8_lossy(&out.stdout),
            &value,
        );
    }
    // ... the dashboard's run page and its logs ...
    let b = open_as(&cluster, &viewer, &format!("runs/{id}")).await;
    for (node, line) in [("shell", "plain: ***"), ("box", "box: ***")] {
        b.wait_for(
            "the run's graph",
            "return document.querySelectorAll('.canvas g.node[data-step]').length === 2",
            Duration::from_secs(30),
        )
        .await;
        b.click(&format!(".canvas g.node[data-step='{node}']"))
            .await;
        b.wait_for(
            "the step's log",
            &format!("return document.querySelector('.log-view')?.textContent.includes({line:?})"),
            Duration::from_secs(30),
        )
        .await;
        let page = b
            .eval("return document.documentElement.outerHTML", json!([]))
            .await;
        assert_clean(
            &format!("the dashboard at {node}"),
            page.as_str().unwrap(),
            &value,
        );
    }
    drop(b);
    // ... everything in Redis (events, the run record, claims with their
    // reports, logs, the secret itself, sealed) ...
    let dump = redis_dump(&cluster).await;
    assert!(
        dump.contains("API_TOKEN"),
        "the secret is stored under its prefix"
    );
    assert_clean("Redis", &dump, &value);
    // ... and every line the server and the worker logged, at debug level.
    assert_clean("the processes' logs", &cluster.logs(), &value);

    // Rotation: a new key first, the old one second; re-seal; the old key
    // goes; the secret still reaches its step. Under the old key alone it
    // no longer opens, and the attempt says why.
    write_keys(&key_file, &[&new_key, &old_key]);
    cluster.kill_serve();
    cluster.start_serve();
    let (ok, said) = weft_secret(&cluster, &admin, &["rotate"], "");
    assert!(ok && said.contains("sealed 1 of 1"), "{said}");
    write_keys(&key_file, &[&new_key]);
    cluster.kill_serve();
    cluster.start_serve();
    cluster.kill_worker(0);
    cluster.restart_worker(0);
    let run = cluster
        .run_as(&operator, WORKFLOW, json!({ "sum": sum }))
        .await;
    assert_eq!(run.run.status, "succeeded", "after rotating: {run:?}");
    write_keys(&key_file, &[&old_key]);
    cluster.kill_worker(0);
    cluster.restart_worker(0);
    let run = cluster
        .run_as(&operator, WORKFLOW, json!({ "sum": sum }))
        .await;
    assert_eq!(run.run.status, "failed");
    let reason = step(&run, "shell").reason.clone().unwrap_or_default();
    assert!(
        reason.contains("which this keyring does not hold"),
        "{reason}"
    );
    let audit = text(&cluster, &admin, "/api/audit").await;
    assert!(audit.contains("\"rotate-secrets\""), "{audit}");
}
