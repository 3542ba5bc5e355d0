//! The dashboard in headless Chromium against a real server and worker:
//! write a workflow in the editor, run it, watch it go green live, read a
//! step's log, upload a plugin, and see hostile text shown as text.
//! Screenshots of each page land in `target/screenshots/`.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::cluster::Cluster;
use crate::support::repo;

const WORKFLOW: &str = r#"[workflow]
name = "browser-demo"

[params]
who = "nobody"

[steps.greet]
run = "echo 'hello, {{ params.who }}'; echo '{\"n\": 3}' > \"$WEFT_OUTPUTS\""

[steps.slow]
needs = ["greet"]
run = "sleep 2; echo slow done"

[steps.hostile]
name = "<script>alert(1)</script>"
needs = ["greet"]
run = "echo '<img src=x onerror=alert(2)>'"

[steps.done]
needs = ["slow", "hostile"]
run = "echo done"
"#;

const LONG: Duration = Duration::from_secs(60);

async fn open(cluster: &Cluster, page: &str) -> Browser {
    open_as(cluster, &cluster.admin_token, page).await
}

/// A browser on the dashboard's `page`, signed in with `token`.
pub(crate) async fn open_as(cluster: &Cluster, token: &str, page: &str) -> Browser {
    let browser = Browser::start().await;
    // Same origin, no dashboard: set the token before any page asks for it.
    browser.goto(&format!("{}/healthz", cluster.url)).await;
    browser
        .eval(
            "localStorage.clear(); localStorage.setItem('weft.token', arguments[0])",
            json!([token]),
        )
        .await;
    browser.goto(&format!("{}/#/{page}", cluster.url)).await;
    browser
}

/// Run `run`'s page, as the admin, with step `step` chosen (its node
/// clicked once the graph is drawn).
pub(crate) async fn open_step(cluster: &Cluster, run: &str, step: &str) -> Browser {
    let b = open_as(cluster, &cluster.admin_token, &format!("runs/{run}")).await;
    let node = format!(".canvas g.node[data-step='{step}']");
    b.wait_for(
        "the step",
        &format!("return document.querySelector({node:?})"),
        Duration::from_secs(60),
    )
    .await;
    b.click(&node).await;
    b
}

fn count(css: &str) -> String {
    format!("return document.querySelectorAll({css:?}).length")
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_runs_a_workflow_from_the_editor_live() {
    let cluster = Cluster::start(1);
    let b = open(&cluster, "editor").await;

    // The sample checks clean; then our workflow, typed in.
    b.wait_for(
        "sample checked",
        "return document.querySelector('.check-state.ok')",
        LONG,
    )
    .await;
    b.eval(
        "document.querySelector('textarea.source').value = ''",
        json!([]),
    )
    .await;
    b.type_into(
        "textarea.source",
        "[workflow]\nname = \"broken\"\n[steps.a]\nneeds = [\"nope\"]\nrun = \"true\"\n",
    )
    .await;
    let problem = b
        .wait_for(
            "a diagnostic",
            "return [...document.querySelectorAll('ol.diagnostics li')].map((li) => li.textContent).find((t) => t.includes('nope'))",
            LONG,
        )
        .await;
    assert!(problem.as_str().unwrap().starts_with("4:"), "{problem}");
    b.eval(
        "document.querySelector('textarea.source').value = ''",
        json!([]),
    )
    .await;
    b.type_into("textarea.source", WORKFLOW).await;
    b.type_into("textarea.params", "who=browser").await;
    b.wait_for(
        "a clean check with a preview of 4 steps",
        &format!(
            "return document.querySelector('.check-state.ok') && {} === 4",
            count(".preview g.node").trim_start_matches("return ")
        ),
        LONG,
    )
    .await;
    b.screenshot("editor").await;

    // Run it: the run page comes up and its nodes change without a reload.
    b.eval("window.weftStayed = true", json!([])).await;
    b.click("button.primary").await;
    b.wait_for("the run page", &count(".canvas g.node[data-step]"), LONG)
        .await;
    b.wait_for(
        "a running step",
        "return document.querySelector('.canvas g.node.st-running')",
        LONG,
    )
    .await;
    b.wait_for(
        "every step green",
        "return document.querySelectorAll('.canvas g.node.st-succeeded').length === 4",
        LONG,
    )
    .await;
    assert_eq!(
        b.eval("return window.weftStayed === true", json!([])).await,
        json!(true),
        "the page reloaded"
    );
    b.screenshot("run-graph").await;

    // A step's log and outputs.
    b.click(".canvas g.node[data-step='greet']").await;
    b.wait_for(
        "greet's log",
        "return document.querySelector('.log-view')?.textContent.includes('hello, browser')",
        LONG,
    )
    .await;
    let outputs = b
        .eval(
            "return document.querySelector('pre.outputs').textContent",
            json!([]),
        )
        .await;
    assert!(outputs.as_str().unwrap().contains("\"n\": 3"), "{outputs}");
    b.screenshot("run-step-log").await;

    // Hostile text stays text: in the graph, the panel and the log.
    b.click(".canvas g.node[data-step='hostile']").await;
    b.wait_for(
        "hostile's log",
        "return document.querySelector('.log-view')?.textContent.includes('<img src=x onerror=alert(2)>')",
        LONG,
    )
    .await;
    let label = b
        .eval(
            "return document.querySelector(\".canvas g.node[data-step='hostile'] title\").textContent",
            json!([]),
        )
        .await;
    assert_eq!(label, json!("<script>alert(1)</script> (hostile)"));
    let heading = b
        .eval(
            "return document.querySelector('.panel h2').textContent",
            json!([]),
        )
        .await;
    assert!(
        heading
            .as_str()
            .unwrap()
            .starts_with("<script>alert(1)</script>"),
        "{heading}"
    );
    // The page's own two: boot.js and app.js.
    assert_eq!(
        b.eval(&count("script"), json!([])).await,
        json!(2),
        "a script element was injected"
    );
    assert_eq!(
        b.eval(&count("img"), json!([])).await,
        json!(0),
        "an img element was injected"
    );
    assert!(!b.alert_open().await, "an alert opened");

    // The timeline of the same run, and the dark theme.
    b.click("button.tab[aria-pressed='false']").await;
    b.wait_for(
        "the timeline",
        "return document.querySelectorAll('.gantt-row[data-step]').length === 4",
        LONG,
    )
    .await;
    b.screenshot("run-timeline").await;
    b.click("#theme-button").await;
    b.screenshot("run-timeline-other-theme").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_lists_runs_live_and_shows_plugins_and_workers() {
    let mut cluster = Cluster::start(1);
    // A second worker that says it has a GPU, for the workers page.
    cluster.start_worker_with(&["--gpu", "0:Test GPU"]);
    let first = cluster.submit("workflows/hello.toml", &[]).await;
    let b = open(&cluster, "runs").await;
    b.wait_for(
        "the first run listed",
        &format!("return document.querySelector('tr[data-run=\"{first}\"]')"),
        LONG,
    )
    .await;
    // A run started elsewhere appears without a reload.
    let second = cluster.submit("workflows/hello.toml", &[]).await;
    b.wait_for(
        "the second run listed live",
        &format!("return document.querySelector('tr[data-run=\"{second}\"]')"),
        LONG,
    )
    .await;
    b.wait_for(
        "both runs succeeded",
        "return document.querySelectorAll('tr[data-run] .st-succeeded').length >= 2",
        LONG,
    )
    .await;
    let by = b
        .eval(
            &format!(
                "return document.querySelector('tr[data-run=\"{second}\"] td.by').textContent"
            ),
            json!([]),
        )
        .await;
    assert_eq!(by, json!("first admin"), "who submitted");
    b.screenshot("runs").await;

    // Upload a plugin from a file.
    b.goto(&format!("{}/#/plugins", cluster.url)).await;
    let wasm = repo().join("plugins/dist/text-stats.wasm");
    assert!(wasm.exists(), "build the plugins with plugins/build");
    b.type_into("input[type=file]", wasm.to_str().unwrap())
        .await;
    b.eval(
        "document.querySelector('input[aria-label=\"plugin name\"]').value = ''",
        json!([]),
    )
    .await;
    b.type_into("input[aria-label='plugin name']", "text-stats")
        .await;
    b.type_into("input[aria-label='plugin version']", "1.2.3")
        .await;
    b.click("form.upload button[type=submit]").await;
    let row = b
        .wait_for(
            "the uploaded plugin",
            "return document.querySelector('section[data-plugin=\"text-stats\"] tbody tr')?.textContent",
            LONG,
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(
        row.contains("1.2.3") && row.contains("weft:plugin/step@0.1.1#run"),
        "{row}"
    );
    let listed = cluster
        .client()
        .plugin("text-stats", Some("1.2.3"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, "1.2.3");
    b.screenshot("plugins").await;

    // Workers with their slots.
    b.goto(&format!("{}/#/workers", cluster.url)).await;
    let text = b
        .wait_for(
            "a worker row",
            "return document.querySelector('tr[data-worker]')?.textContent",
            LONG,
        )
        .await;
    assert!(
        text.as_str()
            .unwrap()
            .contains(&format!("{}-w0", cluster.prefix)),
        "{text}"
    );
    let gpu_worker = b
        .wait_for(
            "the GPU worker's row",
            &format!(
                "return document.querySelector('tr[data-worker=\"{}-w1\"]')?.textContent",
                cluster.prefix
            ),
            LONG,
        )
        .await;
    assert!(
        gpu_worker.as_str().unwrap().contains("#0 Test GPU · free"),
        "{gpu_worker}"
    );
    b.screenshot("workers").await;

    // Schedules with their next fire times.
    let nightly = std::fs::read_to_string(repo().join("workflows/nightly.toml")).unwrap();
    cluster
        .client()
        .save_workflow(&nightly, None)
        .await
        .unwrap();
    b.goto(&format!("{}/#/schedules", cluster.url)).await;
    let row = b
        .wait_for(
            "the nightly schedule's row",
            "return document.querySelector('tr[data-schedule=\"nightly#0\"]')?.textContent",
            LONG,
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(
        row.contains("0 2 * * *")
            && row.contains("Europe/Paris")
            && row.contains("skip")
            && row.contains("6h"),
        "{row}"
    );
    let next = b
        .eval(
            "return document.querySelectorAll('tr[data-schedule=\"nightly#0\"] ol.next li').length",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(next, 3, "three next fire times");
    b.screenshot("schedules").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_asks_for_a_token_and_serves_files_under_a_strict_policy() {
    let cluster = Cluster::start(0);
    let page = reqwest::get(format!("{}/", cluster.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let missing = reqwest::get(format!("{}/ui/nope.js", cluster.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("\"error\""));

    let b = Browser::start().await;
    b.goto(&format!("{}/#/runs", cluster.url)).await;
    b.wait_for(
        "the token dialog",
        "return document.querySelector('#token-dialog').open",
        LONG,
    )
    .await;
    b.screenshot("token").await;
    b.type_into("#token-input", &cluster.admin_token).await;
    b.click("#token-save").await;
    b.wait_for(
        "the runs table",
        "return document.querySelector('table.runs') && !document.querySelector('.error') && !document.querySelector('#token-dialog').open",
        LONG,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_sibling_steps_are_one_node_that_lists_them_on_demand() {
    let cluster = Cluster::start(1);
    // 30 distinct steps with the same need and the same dependent.
    let mut source =
        String::from("[workflow]\nname = \"siblings\"\n[steps.prep]\nrun = \"true\"\n");
    for i in 0..30 {
        source.push_str(&format!(
            "[steps.part_{i:02}]\nneeds = [\"prep\"]\nrun = \"echo part {i}\"\n"
        ));
    }
    let parts: Vec<String> = (0..30).map(|i| format!("\"part_{i:02}\"")).collect();
    source.push_str(&format!(
        "[steps.join]\nneeds = [{}]\nrun = \"true\"\n",
        parts.join(", ")
    ));
    let file = cluster.dir.path().join("siblings.toml");
    std::fs::write(&file, source).unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    assert_eq!(cluster.wait(&id, LONG).await.run.status, "succeeded");

    let b = open(&cluster, &format!("runs/{id}")).await;
    b.wait_for(
        "the grouped graph, all green",
        "return document.querySelectorAll('.canvas g.node.st-succeeded').length === 3",
        LONG,
    )
    .await;
    assert_eq!(b.eval(&count(".canvas g.node"), json!([])).await, json!(3));
    let group = "'.canvas g.node.group[data-step=\"group:part_00\"]'";
    let text = b
        .eval(
            &format!("return document.querySelector({group}).textContent"),
            json!([]),
        )
        .await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("part_00 … part_29") && text.contains("30✓ of 30"),
        "{text}"
    );
    assert_eq!(
        b.eval(&count(".canvas .edges path"), json!([])).await,
        json!(2),
        "one edge into the group and one out, not sixty"
    );

    // On demand: the group lists its steps; choosing one opens it.
    b.click(".canvas g.node.group").await;
    b.wait_for(
        "the group's steps",
        "return document.querySelectorAll('.panel ul.tasks li').length === 30",
        LONG,
    )
    .await;
    b.screenshot("run-group").await;
    b.eval(
        "[...document.querySelectorAll('.panel ul.tasks button')].find((e) => e.textContent === 'part_07').click()",
        json!([]),
    )
    .await;
    b.wait_for(
        "part_07's log",
        "return document.querySelector('.log-view')?.textContent.includes('part 7')",
        LONG,
    )
    .await;
}
