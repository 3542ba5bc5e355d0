//! The dashboard's pages in headless Chromium against a real server and
//! worker: every text has 4.5:1 contrast in both themes on every page (a
//! screenshot of each in `target/screenshots/`), cancel asks first, a saved
//! workflow runs from its typed form and its versions diff, and the editor
//! highlights, completes keys from the schema and checks plugins; a page
//! whose scripts did not load says so and reloads.

use std::time::Duration;

use serde_json::json;

use crate::cluster::Cluster;
use crate::dashboard::open_as;
use crate::dashboard_daily::{failing_fan_out, LONG};
use crate::support::text;

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
    let out = cluster.weft(&[
        "workflows",
        "run",
        "daily-train@1",
        "--param",
        "epochs=5",
        "--wait",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("(daily-train@1)") && said.contains(&format!("{}/#/runs/", cluster.url)),
        "{said}"
    );
    assert!(said.contains("train succeeded"), "progress: {said}");
    let out = cluster.weft(&[
        "submit",
        "--saved",
        "daily-train",
        "-p",
        "dry=true",
        "--wait",
    ]);
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

#[tokio::test(flavor = "multi_thread")]
async fn the_log_viewer_searches_a_growing_log_and_marks_stderr() {
    let cluster = Cluster::start(0);
    let b = open_as(&cluster, &cluster.admin_token, "runs").await;
    b.wait_for("the page", "return document.querySelector('h1')", LONG)
        .await;
    // The viewer by itself, fed as a live log feeds it: in pieces that cut
    // lines, a match growing across two pieces, stderr lines marked.
    let got = b
        .eval_async(
            "const done = arguments[arguments.length - 1];
             import('/ui/log.js').then(({ logViewer }) => {
               const v = logViewer();
               document.querySelector('main').append(v.element);
               const said = () => v.element.querySelector('.log-found').textContent;
               v.append('a x\\nb\\nx c');
               v.search('x');
               const first = said();
               v.append('d\\n\\u001ex e\\n\\u001eplain err\\n');
               v.end();
               requestAnimationFrame(() => done({
                 first, then: said(), lines: v.lineCount(),
                 stderr: [...v.element.querySelectorAll('.log-line.stderr')].map((l) => l.querySelector('.lt').textContent),
               }));
             }, (e) => done({ error: String(e) }));",
            json!([]),
        )
        .await;
    assert_eq!(got["first"], "1 of 2", "{got}");
    assert_eq!(got["then"], "1 of 3", "{got}");
    assert_eq!(got["lines"], 5, "{got}");
    assert_eq!(got["stderr"], json!(["x e", "plain err"]), "{got}");
}

/// A dashboard one of whose scripts cannot be fetched says so, with a
/// Reload that tries again, instead of staying blank.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_whose_scripts_did_not_load_says_so_and_reloads() {
    let cluster = Cluster::start(0);
    let b = open_as(&cluster, &cluster.admin_token, "runs").await;
    b.cdp("Network.enable", json!({})).await;
    b.cdp(
        "Network.setBlockedURLs",
        json!({"urls": ["*/ui/pages/plugins.js"]}),
    )
    .await;
    b.navigate(&format!("{}/?blocked#/plugins", cluster.url))
        .await;
    let said = b
        .wait_for(
            "the failure",
            "return document.querySelector('#page .load-failed[role=alert]')?.textContent",
            LONG,
        )
        .await;
    assert!(
        said.as_str().unwrap_or("").contains("did not load"),
        "{said}"
    );
    assert_eq!(
        b.eval("return document.querySelector('h1')", json!([]))
            .await,
        json!(null)
    );
    // What the harness prints when a page's scripts fail names the fetch
    // and Chromium's reason.
    let failures = b.network_failures().await;
    assert!(
        failures.contains("/ui/pages/plugins.js") && failures.contains("blocked: inspector"),
        "{failures}"
    );
    // The page had reloaded itself once before it said so.
    assert_eq!(
        b.eval(
            "return performance.getEntriesByType('navigation')[0].type",
            json!([])
        )
        .await,
        json!("reload")
    );
    // The harness's second try loads the page again, not a jump within it
    // (as opening the same URL with a fragment would be).
    let origin = "return performance.timeOrigin";
    let first = b.eval(origin, json!([])).await;
    b.goto(&format!("{}/?blocked#/plugins", cluster.url)).await;
    assert_ne!(b.eval(origin, json!([])).await, first);
    assert!(b.scripts_failed().await);
    b.cdp("Network.setBlockedURLs", json!({"urls": []})).await;
    b.click("#page .load-failed button").await;
    b.wait_for(
        "the plugins page",
        "return document.querySelector('h1')?.textContent === 'Plugins'",
        LONG,
    )
    .await;
}
