//! Every file the repository cites exists: a path such as `spec/PROTOCOL.md` or
//! `client/src/session/mod.rs` in a source file or a document resolves from the workspace root, from
//! the citing crate's root, or from the citing file's directory.

use std::path::{Path, PathBuf};

const ROOTS: [&str; 8] = [
    "spec/",
    "client/",
    "mock-cloud/",
    "tests/",
    ".ci/",
    "src/",
    "benches/",
    "examples/",
];
const CITED: [&str; 3] = [".rs", ".md", ".toml"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the conformance crate sits in the workspace")
        .to_owned()
}

/// Source and documentation files, outside build output and installed packages.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                files(&p, out);
            }
        } else if CITED.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// Path-like tokens that start at a known root and end in a cited extension.
fn citations(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
        .filter(|t| ROOTS.iter().any(|r| t.starts_with(r)))
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| CITED.iter().any(|x| t.ends_with(x)))
        .map(str::to_owned)
        .collect()
}

/// The crate directory a file belongs to (the nearest ancestor with a Cargo.toml).
fn crate_root(file: &Path) -> Option<&Path> {
    file.ancestors()
        .skip(1)
        .find(|d| d.join("Cargo.toml").is_file())
}

fn unresolved(root: &Path) -> Vec<String> {
    let mut all = Vec::new();
    files(root, &mut all);
    let mut missing = Vec::new();
    for f in &all {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for c in citations(&text) {
            let bases = [Some(root), crate_root(f), f.parent()];
            if !bases.into_iter().flatten().any(|b| b.join(&c).exists()) {
                let rel = f.strip_prefix(root).unwrap_or(f);
                missing.push(format!("{}: {c}", rel.display()));
            }
        }
    }
    missing
}

#[test]
fn every_cited_file_exists() {
    let missing = unresolved(&workspace());
    assert!(
        missing.is_empty(),
        "citations that resolve nowhere:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_citation_of_a_missing_file_is_reported() {
    let dir = std::env::temp_dir().join(format!("hubswap-citations-{}", std::process::id()));
    let src = dir.join("spec/src");
    std::fs::create_dir_all(&src).expect("temp dir");
    std::fs::write(dir.join("spec/Cargo.toml"), "[package]\n").expect("write");
    std::fs::write(
        src.join("lib.rs"),
        "//! See spec/SPEC.md and src/lib.rs, and spec/PROTOCOL.md.\n",
    )
    .expect("write");
    std::fs::write(dir.join("spec/SPEC.md"), "").expect("write");
    let missing = unresolved(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        missing,
        vec!["spec/src/lib.rs: spec/PROTOCOL.md".to_owned()]
    );
}
