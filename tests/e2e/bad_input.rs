//! Hostile files never panic the CLI: each gets a clear error and exit 1.

use std::fmt::Write;

use crate::support::{assert_no_panic, text, weft};

fn check_file(name: &str, content: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    let out = weft(&["check", path.to_str().unwrap()], dir.path());
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    text(&out)
}

#[test]
fn malformed_toml_names_line_and_column() {
    let t = check_file(
        "bad.toml",
        b"[workflow]\nname = \"x\n[steps.a]\nrun = 'x'\n",
    );
    assert!(t.contains("bad.toml:2:"), "{t}");
    assert!(t.contains("invalid TOML"), "{t}");
}

#[test]
fn non_utf8_bytes_are_refused_with_their_position() {
    let t = check_file("bin.toml", b"[workflow]\nname = \"\xff\xfe\"\n");
    assert!(t.contains("bin.toml:2:9: the file is not UTF-8"), "{t}");
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let mut s = String::from("[workflow]\nname = 'x'\n[params]\np = ");
    s.push_str(&"[".repeat(100_000));
    s.push_str(&"]".repeat(100_000));
    let t = check_file("deep.toml", s.as_bytes());
    assert!(t.contains("nest more than"), "{t}");
}

#[test]
fn a_cycle_through_ten_thousand_steps_is_reported() {
    let mut s = String::from("[workflow]\nname = 'big-cycle'\n");
    for i in 0..10_000 {
        writeln!(
            s,
            "[steps.s{i}]\nneeds = ['s{}']\nrun = 'true'",
            (i + 1) % 10_000
        )
        .unwrap();
    }
    let t = check_file("cycle.toml", s.as_bytes());
    assert!(t.contains("(10000 steps)"), "{t}");
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let big = vec![b'#'; 33 << 20];
    let t = check_file("huge.toml", &big);
    assert!(t.contains("a workflow may be at most"), "{t}");
}

#[test]
fn empty_and_garbage_files_get_clear_errors() {
    assert!(check_file("empty.toml", b"").contains("missing `[workflow]` table"));
    assert!(check_file("junk.toml", b"\x00\x01 = = [[").contains("invalid TOML"));
}
