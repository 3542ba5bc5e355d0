//! The dashboard and the CLI as a person uses them every day, in headless
//! Chromium against a real server and worker: a failed fan-out opens on
//! its failed task, named with its item and its log's last lines; waiting
//! and running are shown apart; a 100,000-line log opens at its end, is
//! searched, and a line's link reopens it; a 300-step graph is searched and
//! a step's upstream and downstream lit; cancel asks first; every text has
//! 4.5:1 contrast in both themes. Screenshots land in `target/screenshots/`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::browser::Browser;
use crate::cluster::Cluster;
use crate::dashboard::open_as;
use crate::support::text;

const LONG: Duration = Duration::from_secs(90);
const LOG_LINES: usize = 100_000;

/// 40 shards; `region-25` prints 100,000 lines, then a red line on
/// stderr, and exits 3.
fn failing_fan_out() -> String {
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
    let data = tempfile::tempdir().unwrap();
    let show = std::process::Command::new(crate::support::weft_bin())
        .args(["show", &id, "--server", &cluster.url])
        .env("WEFT_TOKEN", &cluster.admin_token)
        .env("WEFT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let said = text(&show);
    assert!(
        said.contains("failed at shard[25] (item region-25): exited with code 3"),
        "{said}"
    );
    assert!(said.contains("│ \u{1b}[31mboom: disk full"), "{said}");
    assert!(said.contains("WAITED") && said.contains("RAN"), "{said}");
    let json = std::process::Command::new(crate::support::weft_bin())
        .args(["show", &id, "--json", "--server", &cluster.url])
        .env("WEFT_TOKEN", &cluster.admin_token)
        .env("WEFT_DATA_DIR", data.path())
        .output()
        .unwrap();
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
    let logs = std::process::Command::new(crate::support::weft_bin())
        .args(["logs", &id, "shard[25]", "--server", &cluster.url])
        .env("WEFT_TOKEN", &cluster.admin_token)
        .env("WEFT_DATA_DIR", data.path())
        .output()
        .unwrap();
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
    drop(data);

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

/// Every element's text against the background it sits on: those under
/// 4.5:1 (3:1 for large text), as `tag.class "text" ratio`.
const CONTRAST: &str = r#"
const rgba = (s) => {
  const m = (s.match(/[\d.]+/g) || [0, 0, 0, 0]).map(Number);
  // color-mix() computes to `color(srgb r g b / a)`, each from 0 to 1.
  const rgb = s.startsWith('color(') ? m.slice(0, 3).map((c) => c * 255) : m.slice(0, 3);
  return rgb.concat([m.length > 3 ? m[3] : 1]);
};
const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const over = (top, under) => { const a = top[3]; return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]); };
function background(el) {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = [255, 255, 255, 1];
  for (const c of layers.reverse()) bg = over(c, bg);
  return bg;
}
const bad = [];
for (const el of document.querySelectorAll('body *')) {
  if (el.closest('svg, [hidden], dialog:not([open]), .log-view')) continue;
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.getClientRects().length) continue;
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden' || Number(st.opacity) < 1) continue;
  const fg = over(rgba(st.color), background(el));
  const [a, b] = [lum(fg), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) bad.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
}
return bad;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_text_has_4_5_contrast_in_both_themes_and_cancel_asks_first() {
    let cluster = Cluster::start(1);
    let failed = cluster.submit_text(&failing_fan_out()).await;
    cluster.wait(&failed, LONG).await;
    cluster
        .client()
        .save_workflow(&failing_fan_out(), None)
        .await
        .unwrap();
    let running = cluster
        .submit_text("[workflow]\nname = \"daily-slow\"\n[steps.wait]\nrun = \"sleep 60\"\n")
        .await;
    let b = open_as(&cluster, &cluster.admin_token, "runs").await;
    let pages = [
        ("runs", "runs".to_string(), "return document.querySelectorAll('tbody tr[data-run]').length >= 2"),
        ("run-failed", format!("runs/{failed}"), "return document.querySelector('.failed-banner pre') && document.querySelector('.log-line')"),
        ("run-running", format!("runs/{running}"), "return document.querySelector('.canvas g.node.st-running')"),
        ("run-timeline", format!("runs/{failed}?view=timeline"), "return document.querySelector('.gantt-row .bar-fill.wait')"),
        ("editor", "editor".to_string(), "return document.querySelector('.check-state.ok')"),
        ("workflows", "workflows?name=daily-fan-out".to_string(), "return document.querySelector('form.run-form')"),
        ("plugins", "plugins".to_string(), "return document.querySelector('h1')"),
        ("workers", "workers".to_string(), "return document.querySelector('h1')"),
        ("schedules", "schedules".to_string(), "return document.querySelector('h1')"),
    ];
    for theme in ["light", "dark"] {
        b.eval(
            "localStorage.setItem('weft.theme', arguments[0])",
            json!([theme]),
        )
        .await;
        for (name, page, ready) in &pages {
            // A query of its own makes each a fresh load, in the theme set.
            b.goto(&format!("{}/?{name}-{theme}#/{page}", cluster.url))
                .await;
            b.wait_for(name, ready, LONG).await;
            let bad = b.eval(CONTRAST, json!([])).await;
            b.screenshot(&format!("page-{name}-{theme}")).await;
            assert_eq!(
                bad,
                json!([]),
                "{name} in the {theme} theme: text under 4.5:1"
            );
        }
    }

    // Cancel asks first; "No" leaves the run running; "Yes" cancels it.
    b.goto(&format!("{}/?cancel#/runs/{running}", cluster.url))
        .await;
    b.wait_for("the run", "return [...document.querySelectorAll('.run-head button')].find((x) => x.textContent === 'Cancel')", LONG)
        .await;
    b.eval("[...document.querySelectorAll('.run-head button')].find((x) => x.textContent === 'Cancel').click()", json!([]))
        .await;
    b.wait_for(
        "the question",
        "return document.querySelector('.confirm [data-confirm]')",
        LONG,
    )
    .await;
    b.eval("[...document.querySelectorAll('.confirm button')].find((x) => x.textContent === 'No').click()", json!([]))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cluster.client().run(&running).await.unwrap().run.status,
        "running"
    );
    b.eval("[...document.querySelectorAll('.run-head button')].find((x) => x.textContent === 'Cancel').click()", json!([]))
        .await;
    b.click(".confirm [data-confirm]").await;
    let view = cluster.wait(&running, LONG).await;
    assert_eq!(view.run.status, "cancelled");
}

const SAVED_V1: &str = r#"[workflow]
name = "daily-train"

[params]
epochs = 3
dry = false
regions = ["eu", "us"]
note = "first"

[steps.train]
run = "echo training {{ params.epochs }} epochs, dry {{ params.dry }}, note {{ params.note }}"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_workflow_runs_from_its_typed_form_and_its_versions_diff() {
    let cluster = Cluster::start(1);
    let client = cluster.client();
    client.save_workflow(SAVED_V1, None).await.unwrap();
    let v2 = SAVED_V1.replace("note = \"first\"", "note = \"second\"");
    client.save_workflow(&v2, None).await.unwrap();

    let b = open_as(&cluster, &cluster.admin_token, "workflows?name=daily-train").await;
    let inputs = b
        .wait_for(
            "the run form",
            "const f = document.querySelector('form.run-form'); return f && [...f.querySelectorAll('input, textarea')].map((i) => `${i.name}:${i.type}`)",
            LONG,
        )
        .await;
    assert_eq!(
        inputs,
        json!([
            "dry:checkbox",
            "epochs:number",
            "note:text",
            "regions:textarea"
        ])
    );
    // Version 1 against 2: the changed line, both ways.
    b.eval(
        "const s = document.querySelector('select[aria-label=\"compare with\"]'); s.value = '1'; s.dispatchEvent(new Event('change'))",
        json!([]),
    )
    .await;
    let diff = b
        .wait_for(
            "the diff",
            "const d = document.querySelector('pre.diff'); return d && [...d.querySelectorAll('.add, .del')].map((x) => x.textContent.trim())",
            LONG,
        )
        .await;
    assert_eq!(diff, json!(["- note = \"first\"", "+ note = \"second\""]));
    assert!(b
        .eval("return location.hash", json!([]))
        .await
        .as_str()
        .unwrap()
        .contains("diff=1"));
    b.screenshot("daily-workflows").await;

    // A list that is not a list is refused before anything is sent.
    b.eval(
        "document.querySelector('textarea[name=regions]').value = '{\"a\": 1}'",
        json!([]),
    )
    .await;
    b.eval(
        "document.querySelector('input[name=epochs]').value = '7'",
        json!([]),
    )
    .await;
    b.click("form.run-form button[type=submit]").await;
    b.wait_for(
        "the refusal",
        "const e = document.querySelector('form.run-form .error'); return e && e.textContent.includes('regions: a JSON list')",
        LONG,
    )
    .await;
    b.eval(
        "document.querySelector('textarea[name=regions]').value = '[\"ap\"]'",
        json!([]),
    )
    .await;
    b.click("form.run-form input[name=dry]").await;
    b.click("form.run-form button[type=submit]").await;
    let hash = b
        .wait_for(
            "the new run's page",
            "return location.hash.startsWith('#/runs/') && location.hash",
            LONG,
        )
        .await;
    let id = hash
        .as_str()
        .unwrap()
        .trim_start_matches("#/runs/")
        .to_string();
    let view = cluster.wait(&id, LONG).await;
    assert_eq!(view.run.status, "succeeded");
    assert_eq!(view.run.file, "daily-train@2");
    assert_eq!(view.params["epochs"], json!(7));
    assert_eq!(view.params["dry"], json!(true));
    assert_eq!(view.params["regions"], json!(["ap"]));

    // The CLI runs a saved version by name, with progress and a link.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::support::weft_bin())
        .args([
            "workflows",
            "run",
            "daily-train@1",
            "--param",
            "epochs=5",
            "--wait",
            "--server",
            &cluster.url,
        ])
        .env("WEFT_TOKEN", &cluster.admin_token)
        .env("WEFT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("(daily-train@1)") && said.contains(&format!("{}/#/runs/", cluster.url)),
        "{said}"
    );
    assert!(said.contains("train succeeded"), "progress: {said}");
    let out = std::process::Command::new(crate::support::weft_bin())
        .args([
            "submit",
            "--saved",
            "daily-train",
            "-p",
            "dry=true",
            "--wait",
            "--server",
            &cluster.url,
        ])
        .env("WEFT_TOKEN", &cluster.admin_token)
        .env("WEFT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        out.status.success() && said.contains("(daily-train@2)"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_editor_highlights_completes_keys_from_the_schema_and_checks_plugins() {
    let cluster = Cluster::start(0);
    let b = open_as(&cluster, &cluster.admin_token, "editor").await;
    b.wait_for(
        "the sample, highlighted and checked",
        "return document.querySelector('.check-state.ok') && document.querySelector('.code-layer .tok-table')",
        LONG,
    )
    .await;
    let tokens = b
        .eval(
            "const t = (c) => [...document.querySelectorAll(`.code-layer .${c}`)].map((e) => e.textContent);
             return { table: t('tok-table'), tmpl: t('tok-tmpl'), key: t('tok-key'), str: t('tok-str') }",
            json!([]),
        )
        .await;
    assert!(
        tokens["table"]
            .as_array()
            .unwrap()
            .contains(&json!("[steps.greet]")),
        "{tokens}"
    );
    assert!(
        tokens["tmpl"]
            .as_array()
            .unwrap()
            .contains(&json!("{{ params.who }}")),
        "{tokens}"
    );
    assert!(
        tokens["key"].as_array().unwrap().contains(&json!("needs")),
        "{tokens}"
    );

    // Typing a key's start in a step's table offers the step's keys.
    b.eval(
        "const s = document.querySelector('textarea.source');
         s.value = '[workflow]\\nname = \"w\"\\n\\n[steps.a]\\nrun = \"true\"\\n';
         s.focus(); s.setSelectionRange(s.value.length, s.value.length);",
        json!([]),
    )
    .await;
    b.type_into("textarea.source", "time").await;
    let offered = b
        .wait_for(
            "keys offered",
            "const l = document.querySelector('.completions:not([hidden])'); return l && [...l.querySelectorAll('li')].map((li) => li.dataset.key)",
            LONG,
        )
        .await;
    assert!(
        offered.as_array().unwrap().contains(&json!("timeout")),
        "{offered}"
    );
    b.type_into("textarea.source", "\u{E004}").await; // Tab takes it
    let text = b
        .eval(
            "return document.querySelector('textarea.source').value",
            json!([]),
        )
        .await;
    assert!(text.as_str().unwrap().ends_with("timeout = "), "{text}");
    b.screenshot("daily-editor").await;

    // An unknown plugin is a problem here as in `weft check --server`, its line marked.
    b.eval(
        "const s = document.querySelector('textarea.source');
         s.value = '[workflow]\\nname = \"w\"\\n[steps.a]\\nrun = \"true\"\\nhooks = { post = [{ plugin = \"no-such-plugin@^1\" }] }\\n';
         s.dispatchEvent(new Event('input'));",
        json!([]),
    )
    .await;
    let marked = b
        .wait_for(
            "the plugin refused",
            "return document.querySelector('ol.diagnostics').textContent.includes('no-such-plugin') && [...document.querySelectorAll('.code-line')].findIndex((l) => l.classList.contains('problem')) + 1",
            LONG,
        )
        .await;
    assert_eq!(marked, json!(5));
}
