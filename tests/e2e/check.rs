//! `weft check` on the invalid workflows: every expected line appears, exit 1.

use crate::support::{assert_no_panic, repo, text, weft};

#[test]
fn invalid_workflows_report_every_expected_diagnostic() {
    let dir = repo().join("workflows/invalid");
    let data = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
        let out = weft(&["check", path.to_str().unwrap()], data.path());
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let got = text(&out);
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                got.contains(line),
                "{}: expected `{line}` in:\n{got}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn valid_examples_check_clean() {
    let data = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo().join("workflows")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            files.push(p.to_string_lossy().to_string());
        }
    }
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = weft(&args, data.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_directory_is_checked_file_by_file() {
    let data = tempfile::tempdir().unwrap();
    let out = weft(&["check", "workflows/invalid"], data.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let files = std::fs::read_dir(repo().join("workflows/invalid"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(
        said.contains(&format!("{files} files checked, {files} with problems")),
        "{said}"
    );
    assert!(
        said.contains("invalid/cycle.toml: 1 problem found"),
        "{said}"
    );

    // Configuration files and hidden entries are not workflows.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("workflows/hello.toml"),
        dir.path().join("hello.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    std::fs::copy(
        repo().join("workflows/retries.toml"),
        dir.path().join("more/retries.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("weft.toml"), "[server]\n").unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::create_dir(dir.path().join(".hidden")).unwrap();
    std::fs::write(dir.path().join(".hidden/x.toml"), "not a workflow").unwrap();
    let out = weft(&["check", dir.path().to_str().unwrap()], data.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("hello.toml: ok (3 steps)"), "{said}");
    assert!(said.contains("retries.toml: ok (1 step)"), "{said}");
    assert!(said.contains("2 files checked, 0 with problems"), "{said}");

    let empty = tempfile::tempdir().unwrap();
    let out = weft(&["check", empty.path().to_str().unwrap()], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no workflow files (*.toml) in this directory"));
}

#[test]
fn schema_is_json_and_names_every_step_key() {
    let data = tempfile::tempdir().unwrap();
    let out = weft(&["schema"], data.path());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &schema["properties"]["steps"]["additionalProperties"]["properties"];
    for key in weft_core::spec::parse::step_keys() {
        assert!(step.get(key).is_some(), "schema lacks step key {key}");
    }
}
