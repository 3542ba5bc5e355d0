//! The dashboard and the CLI as a person uses them every day, in headless
//! Chromium against a real server and worker: a failed fan-out opens on
//! its failed task, named with its item and its log's last stderr lines;
//! waiting and running are shown apart; a 100,000-line log opens at its
//! end, is searched, and a line's link reopens it; a 300-step graph is
//! searched and a step's upstream and downstream lit (the other pages:
//! `dashboard_pages.rs`). Screenshots land in `target/screenshots/`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::browser::Browser;
use crate::cluster::Cluster;
use crate::dashboard::open_as;
use crate::support::text;

pub(crate) const LONG: Duration = Duration::from_secs(90);
const LOG_LINES: usize = 100_000;

/// 40 shards; `region-25` prints 100,000 lines, then a red line on
/// stderr, and exits 3.
pub(crate) fn failing_fan_out() -> String {
    let items: Vec<String> = (0..40).map(|i| format!("\"region-{i:02}\"")).collect();
    format!(
        r#"[workflow]
name = "daily-fan-out"

[steps.prep]
run = "echo prep"

[steps.shard]
needs = ["prep"]
for-each = [{}]
run = """
if [ "{{{{ item }}}}" = region-25 ]; then
  seq 1 {LOG_LINES} | sed 's/^/line /'
  # Two pipes are read apart: let stdout's last lines arrive first.
  sleep 0.5
  printf '\\033[31mboom: disk full\\033[0m\\n' >&2
  exit 3
fi
echo '{{"rows": 1}}' > "$WEFT_OUTPUTS"
"""
"#,
        items.join(", ")
    )
}

/// Milliseconds the page has been showing `script`'s condition for, once true.
async fn wait_ms(b: &Browser, what: &str, script: &str) -> u128 {
    let start = Instant::now();
    b.wait_for(what, script, LONG).await;
    start.elapsed().as_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fan_out_opens_on_its_failed_task_with_its_log_at_the_end_and_links_to_a_line() {
    let cluster = Cluster::start(1);
    let id = cluster.submit_text(&failing_fan_out()).await;
    let view = cluster.wait(&id, LONG).await;
    assert_eq!(view.run.status, "failed");

    // The API names the failed task and its item.
    let failed = view.failed.clone().expect("the view names the failed task");
    assert_eq!(
        (failed.task.as_str(), failed.item.as_deref()),
        ("shard[25]", Some("region-25"))
    );
    assert_eq!(failed.error.as_deref(), Some("exited with code 3"));

    // The CLI says which task and why, with its log's last line.
    let show = cluster.weft(&["show", &id]);
    let said = text(&show);
    assert!(
        said.contains("failed at shard[25] (item region-25): exited with code 3"),
        "{said}"
    );
    assert!(said.contains("│ \u{1b}[31mboom: disk full"), "{said}");
    assert!(said.contains("WAITED") && said.contains("RAN"), "{said}");
    let json = cluster.weft(&["show", &id, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("weft show --json");
    assert_eq!(json["failed"]["task"], "shard[25]");
    let shard = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "shard")
        .unwrap();
    assert_eq!(shard["tasks"][25]["item"], "region-25");
    assert!(shard["running_at"].as_u64() >= shard["started_at"].as_u64());
    // `weft logs` prints the log as the step wrote it, without marks.
    let logs = cluster.weft(&["logs", &id, "shard[25]"]);
    let printed = String::from_utf8_lossy(&logs.stdout);
    assert!(
        printed.ends_with("line 100000\n\u{1b}[31mboom: disk full\u{1b}[0m\n"),
        "{}",
        &printed[printed.len().saturating_sub(200)..]
    );
    assert!(!printed.contains('\u{1e}'));
    // The API's log carries the mark before the stderr line.
    let raw = cluster.client().logs(&id, "shard[25]", None).await.unwrap();
    assert!(raw.ends_with(b"line 100000\n\x1e\x1b[31mboom: disk full\x1b[0m\n"));

    // The page opens on the failed task without being asked.
    let b = open_as(&cluster, &cluster.admin_token, &format!("runs/{id}")).await;
    let opened = wait_ms(
        &b,
        "the log at its end",
        "const last = [...document.querySelectorAll('.log-line')].pop(); return last && last.textContent.includes('boom: disk full')",
    )
    .await;
    println!("a {LOG_LINES}-line failed log: page to its last line shown in {opened} ms");
    let banner = b
        .wait_for(
            "the failure named with its last lines",
            "const b = document.querySelector('.failed-banner'); return b && b.querySelector('pre') && b.textContent",
            LONG,
        )
        .await;
    let banner = banner.as_str().unwrap();
    assert!(
        banner.contains("Failed at shard[25]") && banner.contains("region-25"),
        "{banner}"
    );
    assert!(
        banner.contains("exited with code 3") && banner.contains("boom: disk full"),
        "{banner}"
    );
    assert!(
        !banner.contains('\u{1b}') && !banner.contains("[31m"),
        "escapes shown: {banner}"
    );
    let panel = b
        .eval(
            "return {
               title: document.querySelector('.panel h2').textContent,
               first: document.querySelector('ul.tasks li').dataset.task,
               item: document.querySelector('ul.tasks li .item').textContent,
               filters: [...document.querySelectorAll('.task-filter button')].map((x) => x.textContent),
               waited: document.querySelector('.times .waited').textContent,
               ran: document.querySelector('.times .ran').textContent,
               heads: [...document.querySelectorAll('table.attempts th')].map((x) => x.textContent),
               current: document.querySelector('ul.tasks button.current').textContent,
               url: location.hash,
             }",
            json!([]),
        )
        .await;
    assert!(
        panel["title"].as_str().unwrap().starts_with("shard"),
        "{panel}"
    );
    assert_eq!(panel["first"], "shard[25]", "failed first: {panel}");
    assert_eq!(panel["current"], "shard[25]", "{panel}");
    assert_eq!(panel["item"], "region-25", "{panel}");
    assert!(
        panel["filters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "failed 1"),
        "{panel}"
    );
    assert!(
        panel["waited"].as_str().unwrap() != "—" && panel["ran"].as_str().unwrap() != "—",
        "{panel}"
    );
    let heads = panel["heads"].to_string();
    assert!(heads.contains("Queued") && heads.contains("Ran"), "{panel}");
    assert!(
        panel["url"].as_str().unwrap().contains("step=shard"),
        "{panel}"
    );

    // The log: every line counted, only those in view in the page, colours as spans.
    let log = b
        .eval(
            "const lines = document.querySelectorAll('.log-line');
             const last = lines[lines.length - 1];
             return {
               count: document.querySelector('.log-count').textContent,
               rendered: lines.length,
               last: Number(last.dataset.line),
               red: !!last.querySelector('.a-fg1'),
               stderr: last.classList.contains('stderr') && !lines[lines.length - 2].classList.contains('stderr'),
               mark: last.textContent.includes('\\u001e'),
               raw: last.textContent.includes('\\u001b') || last.textContent.includes('[31m'),
             }",
            json!([]),
        )
        .await;
    assert!(
        log["count"].as_str().unwrap().starts_with("100,00"),
        "{log}"
    );
    assert!(
        log["rendered"].as_u64().unwrap() < 500,
        "only what is in view: {log}"
    );
    assert!(log["last"].as_u64().unwrap() > LOG_LINES as u64, "{log}");
    assert_eq!(
        (log["red"].as_bool(), log["raw"].as_bool()),
        (Some(true), Some(false)),
        "{log}"
    );
    assert_eq!(
        (log["stderr"].as_bool(), log["mark"].as_bool()),
        (Some(true), Some(false)),
        "stderr marked, the mark not shown: {log}"
    );
    b.screenshot("daily-failed-fan-out").await;

    // Search finds one line and shows it; its number's link goes in the URL.
    b.type_into(".log-search", "line 77777").await;
    b.wait_for(
        "the match shown",
        "const hit = document.querySelector('.log-line.hit'); return hit && hit.textContent.includes('line 77777') && document.querySelector('.log-found').textContent === '1 of 1'",
        LONG,
    )
    .await;
    b.click(".log-line.hit a.ln").await;
    let link = b
        .wait_for(
            "the line in the URL",
            "return location.hash.includes('line=') && location.href",
            LONG,
        )
        .await;
    let link = link.as_str().unwrap().to_string();
    let line: u64 = link
        .split("line=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    b.screenshot("daily-log-search").await;

    // Pasted into another browser, the link reopens the same task and line.
    let other = open_as(&cluster, &cluster.admin_token, "runs").await;
    other.goto(&link).await;
    other
        .wait_for(
            "the same line, marked and in view",
            &format!(
                "const t = document.querySelector('.log-line.target'); const v = document.querySelector('.log-view');
                 if (!t || Number(t.dataset.line) !== {line}) return false;
                 const a = t.getBoundingClientRect(), w = v.getBoundingClientRect();
                 return a.top >= w.top && a.bottom <= w.bottom && document.querySelector('ul.tasks button.current').textContent === 'shard[25]'"
            ),
            LONG,
        )
        .await;

    // The step's outputs are a size line and a few lines, after the tasks.
    other.click(".canvas g.node[data-step='prep']").await;
    other
        .wait_for(
            "prep's panel",
            "return document.querySelector('.panel h2')?.textContent.startsWith('prep')",
            LONG,
        )
        .await;
    let url = other.eval("return location.hash", json!([])).await;
    assert!(
        url.as_str().unwrap().contains("step=prep") && !url.as_str().unwrap().contains("line="),
        "{url}"
    );
}

/// 10 layers of 30 chains: step `l{k}_s{i}` needs `l{k-1}_s{i}`.
fn layers() -> String {
    let mut text = String::from("[workflow]\nname = \"daily-layers\"\n");
    for k in 0..10 {
        for i in 0..30 {
            text.push_str(&format!("\n[steps.l{k}_s{i}]\nrun = \"true\"\n"));
            if k > 0 {
                text.push_str(&format!("needs = [\"l{}_s{i}\"]\n", k - 1));
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_step_graph_finds_a_step_and_lights_its_upstream_and_downstream() {
    let cluster = Cluster::start(1);
    let id = cluster.submit_text(&layers()).await;
    let b = open_as(&cluster, &cluster.admin_token, &format!("runs/{id}")).await;
    b.wait_for(
        "the graph",
        "return document.querySelectorAll('.canvas g.node').length === 300",
        LONG,
    )
    .await;
    // It fits the view in both directions.
    let fits = b
        .eval(
            "const svg = document.querySelector('.canvas svg.graph'); const wrap = svg.parentElement;
             return svg.clientWidth <= wrap.clientWidth && svg.clientHeight <= window.innerHeight",
            json!([]),
        )
        .await;
    assert_eq!(fits, json!(true));
    // Too small to draw names: the one under the pointer says its name.
    let tip = b
        .eval(
            "document.querySelector(\"g.node[data-step='l3_s4']\").dispatchEvent(new PointerEvent('pointerover', {bubbles: true}));
             const t = document.querySelector('.node-tip'); return document.querySelector('svg.graph.tiny') && !t.hidden && t.textContent",
            json!([]),
        )
        .await;
    assert!(tip.as_str().unwrap_or("").starts_with("l3_s4 · "), "{tip}");

    // '/' goes to the finder; a name finds its step; Enter opens it.
    b.eval("document.activeElement.blur()", json!([])).await;
    b.eval(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: '/', bubbles: true}))",
        json!([]),
    )
    .await;
    let focused = b
        .eval("return document.activeElement.className", json!([]))
        .await;
    assert_eq!(focused, "graph-find");
    let started = Instant::now();
    b.type_into(".graph-find", "l5_s17").await;
    let found = b
        .wait_for(
            "one step found",
            "return document.querySelector('svg.graph.searching') && [...document.querySelectorAll('g.node.found')].map((g) => g.dataset.step)",
            LONG,
        )
        .await;
    println!(
        "find answered in {} ms (typing and polling included)",
        started.elapsed().as_millis()
    );
    assert_eq!(found, json!(["l5_s17"]));
    b.type_into(".graph-find", "\u{E007}").await; // Enter
    let lit = b
        .wait_for(
            "its upstream and downstream lit",
            "const g = document.querySelector(\"g.node.lit[data-step='l5_s17']\");
             return g && document.querySelector('.panel h2')?.textContent.startsWith('l5_s17') && {
               up: [...document.querySelectorAll('g.node.up')].map((g) => g.dataset.step).sort(),
               down: [...document.querySelectorAll('g.node.down')].map((g) => g.dataset.step).sort(),
               edges: document.querySelectorAll('.edges path.up, .edges path.down').length,
             }",
            LONG,
        )
        .await;
    assert_eq!(
        lit["up"],
        json!(["l0_s17", "l1_s17", "l2_s17", "l3_s17", "l4_s17"])
    );
    assert_eq!(lit["down"], json!(["l6_s17", "l7_s17", "l8_s17", "l9_s17"]));
    assert_eq!(lit["edges"], json!(9));
    let url = b.eval("return location.hash", json!([])).await;
    assert!(url.as_str().unwrap().contains("step=l5_s17"), "{url}");

    // By keyboard alone: a node takes the focus and Enter opens it.
    b.eval(
        "document.querySelector(\"g.node[data-step='l2_s3']\").focus()",
        json!([]),
    )
    .await;
    b.type_into("g.node[data-step='l2_s3']", "\u{E007}").await;
    b.wait_for(
        "the step opened by Enter",
        "return document.querySelector('.panel h2')?.textContent.startsWith('l2_s3')",
        LONG,
    )
    .await;

    // At actual size the graph is wider than the view: the minimap shows.
    b.eval("[...document.querySelectorAll('.zoom button')].find((x) => x.textContent === '1:1').click()", json!([]))
        .await;
    b.wait_for(
        "the minimap",
        "return document.querySelector('.minimap.on')",
        LONG,
    )
    .await;
    b.screenshot("daily-big-graph").await;
    cluster.wait(&id, LONG).await;
}
