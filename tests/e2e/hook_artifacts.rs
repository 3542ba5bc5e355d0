//! Hooks read artifacts without a file system (`read-artifact`, WIT
//! 0.1.1): the example `csv-check` post hook checks a CSV a step left, and
//! one the step used from upstream; a missing column fails the step with
//! the hook's reason.

use serde_json::json;

use crate::support::{newest_embedded_run, text, weft};

const WORKFLOW: &str = r#"
[workflow]
name = "csv"
[steps.report]
run = 'printf "name,score\na,1\nb,2\nc,3\n" > report.csv'
artifacts = { report = "report.csv" }
hooks = { post = [{ plugin = "csv-check@0.1.0", config = { artifact = "report", columns = ["name", "score"] } }] }
[steps.use]
needs = ["report"]
run = 'test -s {{ steps.report.artifacts.report }}'
hooks = { post = [{ plugin = "csv-check@0.1.0", config = { artifact = "report/report", columns = ["score"] } }] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_hook_checks_a_csv_artifact_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pushed = weft(
        &[
            "plugin",
            "push",
            "plugins/dist/csv-check.wasm",
            "--name",
            "csv-check",
            "--version",
            "0.1.0",
        ],
        &data,
    );
    assert!(pushed.status.success(), "{}", text(&pushed));
    let file = dir.path().join("csv.toml");
    std::fs::write(&file, WORKFLOW).unwrap();

    let out = weft(&["run", "--plain", file.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out));
    let (_, _, state) = newest_embedded_run(&data).await;
    let report = json!({"rows": 3, "columns": ["name", "score"]});
    assert_eq!(state.steps[0].outputs.as_ref().unwrap()["report"], report);
    assert_eq!(
        state.steps[1].outputs.as_ref().unwrap()["report/report"],
        report
    );

    // A column the CSV lacks fails the step that left it, with the reason.
    std::fs::write(
        &file,
        WORKFLOW.replacen("[\"name\", \"score\"]", "[\"name\", \"total\"]", 1),
    )
    .unwrap();
    let out = weft(&["run", "--plain", file.to_str().unwrap()], &data);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("artifact `report` has no column total"),
        "{said}"
    );
}
