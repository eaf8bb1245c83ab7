//! The shape of the source tree (issue 14): no file over 600 lines, and no
//! import cycle between the top-level modules of `src/` — dependencies run
//! one way, so a module can be read, tested and changed from below.
//!
//! A module's dependencies are the top-level modules it names as
//! `crate::NAME` (paths and `use crate::{…}` groups), outside `mod tests`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module name → the files that make it.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            let mut files = Vec::new();
            rust_files(&p, &mut files);
            m.insert(name, files);
        } else if name != "lib" && name != "main" {
            m.insert(name, vec![p]);
        }
    }
    m
}

/// The words of `text` that follow `crate::`, and those inside
/// `use crate::{ … }` groups.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    let word = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    for part in text.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                out.insert(item.to_string());
            }
        } else {
            out.insert(word(part));
        }
    }
    out
}

#[test]
fn no_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let mods = modules();
    let names: BTreeSet<&String> = mods.keys().collect();
    let mut deps: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (m, files) in &mods {
        let d = deps.entry(m.as_str()).or_default();
        for f in files {
            for p in crate_paths(&std::fs::read_to_string(f).unwrap()) {
                if p != *m && names.contains(&p) {
                    d.insert(p);
                }
            }
        }
    }
    // The leaves: everything may log, count and format through them.
    for leaf in ["telemetry", "words", "identity", "path", "closer"] {
        assert!(deps[leaf].is_empty(), "{leaf} depends on {:?}", deps[leaf]);
    }
    // Sanity: the analysis sees the edges it must see.
    assert!(deps["server"].contains("http"), "{deps:?}");
    assert!(deps["http"].contains("tls"), "{deps:?}");
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(deps[n.as_str()].iter().cloned());
            }
        }
        false
    };
    // The serving path never reaches the client tools or the CLI.
    for serving in [
        "server", "http", "stream", "tls", "material", "config", "forward",
    ] {
        for tool in ["cli", "bench", "probe", "import", "tools"] {
            assert!(
                !reaches(serving, tool),
                "{serving} reaches {tool}: {deps:#?}"
            );
        }
    }
    // The tools share `tools`, not each other.
    assert!(
        !reaches("bench", "probe") && !reaches("probe", "bench"),
        "{deps:#?}"
    );
    let mut cycles = Vec::new();
    for (m, ds) in &deps {
        for d in ds {
            if reaches(d, m) {
                cycles.push(format!("{m} -> {d} -> … -> {m}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}\n{deps:#?}");
}
