//! Headless Chromium through chromedriver's W3C WebDriver API, spoken with
//! reqwest: enough to open pages, click, type, run scripts and take
//! screenshots. Each `Browser` has its own driver, port and profile.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::repo;

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so dropping the browser ends Chromium too.
            .process_group(0)
            .spawn()
            .expect("chromedriver (scripts/test installs Debian's chromium-driver)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        // The network events are logged so that a failed fetch can be named
        // with Chromium's own error (`net::ERR_…`), not just a status 0.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
                "perfLoggingPrefs": {"enableNetwork": true, "enablePage": false},
            },
            "goog:loggingPrefs": {"performance": "ALL"},
            "unhandledPromptBehavior": "ignore",
        }}});
        let reply: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        Self {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let mut req = self.http.request(method, &url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let reply: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(error) = reply["value"]["error"].as_str() {
            panic!(
                "webdriver {path}: {error}: {}",
                reply["value"]["message"].as_str().unwrap_or("")
            );
        }
        reply["value"].clone()
    }

    /// Opens `url`; reloads it once if the dashboard's scripts did not
    /// load (its `.load-failed` box), said on stderr with what the page
    /// fetched and how each failed fetch failed, so one dropped connection
    /// on a loaded CI machine fails no test, and two in a row still do.
    pub async fn goto(&self, url: &str) {
        // Only this page's network events are wanted below; the last page's
        // failed fetches (the dashboard reloads itself once after one) are
        // said, for a failure that comes later.
        let before = self.network_failures().await;
        if !before.is_empty() {
            eprintln!("fetches that failed before {url} was opened:\n{before}");
        }
        self.navigate(url).await;
        if self.scripts_failed().await {
            eprintln!(
                "the dashboard's scripts did not load from {url}; reloading it. {}",
                self.what_it_fetched().await
            );
            // Not the same URL again: with a fragment, that is a jump within
            // the page, not a new load.
            self.call(reqwest::Method::POST, "/refresh", json!({}))
                .await;
            if self.scripts_failed().await {
                eprintln!("they did not load again. {}", self.what_it_fetched().await);
            }
        }
    }

    /// What the page fetched, and which fetches failed since the last
    /// look and why: for a failure's message.
    async fn what_it_fetched(&self) -> String {
        format!(
            "It fetched:\n{}\nfailed fetches:\n{}",
            self.fetched().await,
            self.network_failures().await
        )
    }

    /// Whether the dashboard says its scripts did not load.
    pub async fn scripts_failed(&self) -> bool {
        self.eval("return !!document.querySelector('.load-failed')", json!([]))
            .await
            == json!(true)
    }

    /// The fetches that failed since the last call, from Chromium's network
    /// log: each URL with its error (`net::ERR_…`) and the status, if any,
    /// its answer had. Fetches cancelled (by leaving their page) are not.
    pub async fn network_failures(&self) -> String {
        let entries = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                json!({"type": "performance"}),
            )
            .await;
        let mut urls = std::collections::HashMap::new();
        let mut statuses = std::collections::HashMap::new();
        let mut failures = Vec::new();
        for entry in entries.as_array().into_iter().flatten() {
            let Some(message) = entry["message"]
                .as_str()
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
            else {
                continue;
            };
            let event = &message["message"];
            let params = &event["params"];
            let id = params["requestId"].as_str().unwrap_or("").to_string();
            match event["method"].as_str().unwrap_or("") {
                "Network.requestWillBeSent" => {
                    let url = params["request"]["url"].as_str().unwrap_or("?");
                    urls.insert(id, url.to_string());
                }
                "Network.responseReceived" => {
                    statuses.insert(id, params["response"]["status"].to_string());
                }
                // What a page left running as the next one opened.
                "Network.loadingFailed" if params["canceled"] == json!(true) => {}
                "Network.loadingFailed" => failures.push(format!(
                    "{} {} (answer status: {}, blocked: {})",
                    urls.get(&id).map_or("?", String::as_str),
                    params["errorText"].as_str().unwrap_or("?"),
                    statuses.get(&id).map_or("none", String::as_str),
                    params["blockedReason"].as_str().unwrap_or("no"),
                )),
                _ => {}
            }
        }
        failures.join("\n")
    }

    /// Opens `url`, nothing more.
    pub async fn navigate(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// What the page fetched: each resource's status, time and name.
    async fn fetched(&self) -> String {
        let entries = self
            .eval(
                "return performance.getEntriesByType('resource').map((r) => \
                 `${r.responseStatus} ${Math.round(r.duration)} ms ${r.name}`).join('\\n')",
                json!([]),
            )
            .await;
        entries.as_str().unwrap_or("").to_string()
    }

    /// A Chrome DevTools Protocol command (`Network.setBlockedURLs`, say).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": cmd, "params": params}),
        )
        .await
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs `script` asynchronously: it calls its last argument with the
    /// answer (a frame later, for example). The benches time frames with it.
    #[allow(dead_code)]
    pub async fn eval_async(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Polls `script` until it returns something truthy; returns that.
    pub async fn wait_for(&self, what: &str, script: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(script, json!([])).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let page = self
                    .eval("return document.body.innerText.slice(0, 3000)", json!([]))
                    .await;
                self.screenshot(&format!("failed-{}", what.replace(' ', "-")))
                    .await;
                panic!(
                    "timed out waiting for {what}; page says:\n{}\n{}",
                    page.as_str().unwrap_or(""),
                    self.what_it_fetched().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// A real click (the driver moves the pointer), not `el.click()`.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Types `text` into the element, as keystrokes.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Whether an alert, confirm or prompt is open (a script ran that should not have).
    pub async fn alert_open(&self) -> bool {
        let url = format!("{}/alert/text", self.session);
        let reply: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["value"]["error"].as_str() != Some("no such alert")
    }

    /// Saves a PNG of the window as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let url = format!("{}/screenshot", self.session);
        let Ok(reply) = self.http.get(url).send().await else {
            return;
        };
        let Ok(reply) = reply.json::<Value>().await else {
            return;
        };
        let Some(data) = reply["value"].as_str() else {
            return;
        };
        let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) else {
            return;
        };
        let dir = repo().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
