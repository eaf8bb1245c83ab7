//! The examples in README.md and docs/*.md work with the binary they
//! document (issue 13). Fenced blocks are read from the pages
//! (`markdown`) and judged by their language:
//!
//! - ```` ```yaml ````: a whole configuration (one with a top-level
//!   `listeners:` key) is written into a temporary directory with every
//!   file it names, made with rcgen in the layout it shows (`material`), and
//!   the real binary's `check` must accept it. Any other YAML block is a
//!   fragment and must parse.
//! - ```` ```json ````: must parse, as one document or one per line.
//! - ```` ```sh ````: the blocks of a page run in order, in one temporary
//!   directory, so a page's examples build on each other (`ca init`, then
//!   `cert issue`, then `secret …`). Each line that starts with
//!   `portcullis` (after `NAME=VALUE` prefixes; `\` continuations joined)
//!   runs the real binary and must exit 0; `> FILE` and `>> FILE` keep its
//!   output; `export NAME=VALUE` sets a variable for the page's later
//!   commands. `portcullis run` runs under the Gateway helper on port 0 and
//!   must become ready and exit 0 on SIGTERM. Other commands (`kubectl`,
//!   `curl`, `openssl`, `cargo`, …) are not run. What a reader brings
//!   themselves and no earlier example made — a CSR, a password file, the
//!   manifests `import` reads — is made by the test (`shell::stand_ins`).
//!
//! Markers are HTML comment lines (invisible on the rendered page) right
//! before a fence; several may be stacked:
//!
//! - `<!-- docs-test: skip (WHY) -->`: the block needs what a test cannot
//!   provide (a running gateway at a real address, a cluster). Its
//!   commands are only parsed: each runs with `--help` appended, so clap
//!   checks every subcommand, option and value and then does nothing.
//!   There is no per-line skip: split such a command into a block of its
//!   own.
//! - `<!-- docs-test: not-built-yet (issue N) -->`: a whole configuration
//!   that uses what is not built yet; `check` must refuse it with "not
//!   supported yet". Once it is built, the test fails until the marker
//!   goes.
//! - `<!-- docs-test: file NAME -->`: the block is also written as it is to
//!   NAME in the page's `sh` directory, for the commands after it (the
//!   README's `portcullis.yaml`).
//!
//! Every failing example is reported, with FILE:LINE, in one panic.

mod markdown;
mod material;
mod shell;

use std::fmt::Display;
use std::path::{Path, PathBuf};

use markdown::Block;

/// Failures as `FILE:LINE: what`, and what was covered.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    counts: std::collections::BTreeMap<&'static str, usize>,
}

impl Report {
    fn fail(&mut self, page: &str, line: usize, what: impl Display) {
        self.failures.push(format!("{page}:{line}: {what}"));
    }

    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    /// Prints what was covered and fails with every failure at once.
    fn finish(self) {
        let covered: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        println!("docs examples: {}", covered.join(", "));
        assert!(
            self.failures.is_empty(),
            "{} documentation example(s) fail:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md as (path relative to the repository, text).
fn pages() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root().join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

/// The blocks of a page; marker mistakes are failures.
fn read(page: &str, text: &str, report: &mut Report) -> Vec<Block> {
    let (blocks, problems) = markdown::blocks(text);
    for (line, what) in problems {
        report.fail(page, line, what);
    }
    blocks
}

fn is_sh(block: &Block) -> bool {
    matches!(block.lang.as_str(), "sh" | "bash" | "shell")
}

/// The yaml and json blocks of one page.
fn check_data_blocks(page: &str, text: &str, report: &mut Report) {
    for block in read(page, text, report) {
        if block.skip().is_some() && !is_sh(&block) {
            report.fail(page, block.line, "a skip marker applies to sh blocks only");
        }
        if block.not_built_yet() && block.lang != "yaml" {
            report.fail(
                page,
                block.line,
                "not-built-yet applies to yaml blocks only",
            );
        }
        match block.lang.as_str() {
            "yaml" | "yml" => check_yaml(page, &block, report),
            "json" => check_json(page, &block, report),
            _ => {}
        }
    }
}

fn check_yaml(page: &str, block: &Block, report: &mut Report) {
    let text = block.text();
    // Manifests (a CronJob with its RBAC) come as several documents; a
    // config is one.
    let docs: Vec<serde_json::Value> = match serde_saphyr::from_str_multiple(&text) {
        Ok(v) => v,
        Err(e) => {
            return report.fail(
                page,
                block.line,
                format!("not YAML: {}", e.without_snippet()),
            )
        }
    };
    let value = match docs.as_slice() {
        [one] => one.clone(),
        _ => return report.count("yaml fragments parsed"),
    };
    if value.get("listeners").is_none() {
        if block.not_built_yet() {
            report.fail(
                page,
                block.line,
                "not-built-yet on a fragment (it is not checked)",
            );
        }
        return report.count("yaml fragments parsed");
    }
    let dir = tempfile::tempdir().unwrap();
    let env = match material::provide(dir.path(), &value) {
        Ok(env) => env,
        Err(e) => return report.fail(page, block.line, e),
    };
    std::fs::write(dir.path().join("example.yaml"), &text).unwrap();
    let args = ["check", "-c", "example.yaml"].map(String::from);
    let ran = match shell::portcullis(dir.path(), &env, &args) {
        Ok(r) => r,
        Err(e) => return report.fail(page, block.line, e),
    };
    let stderr = String::from_utf8_lossy(&ran.stderr);
    if block.not_built_yet() {
        report.count("yaml configs marked not-built-yet");
        if ran.status.success() {
            report.fail(
                page,
                block.line,
                "marked not-built-yet, but check accepts it: remove the marker",
            );
        } else if !stderr.contains("not supported yet") {
            report.fail(
                page,
                block.line,
                format!("marked not-built-yet, but check refuses it for another reason: {stderr}"),
            );
        }
        return;
    }
    report.count("yaml configs checked");
    if !ran.status.success() {
        // `check` names lines of the example: report them as page lines.
        let mut any = false;
        for l in stderr.lines() {
            let mut parts = l.splitn(4, ':');
            let (_, _, n, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
            match (n.and_then(|n| n.trim().parse::<usize>().ok()), rest) {
                (Some(n), Some(rest)) => report.fail(page, block.line + n, format!("check:{rest}")),
                _ => report.fail(page, block.line, format!("check: {l}")),
            }
            any = true;
        }
        if !any {
            report.fail(page, block.line, format!("check failed ({})", ran.status));
        }
    }
}

fn check_json(page: &str, block: &Block, report: &mut Report) {
    let text = block.text();
    if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
        return report.count("json blocks parsed");
    }
    for (i, l) in block.lines.iter().enumerate() {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(l) {
            report.fail(page, block.line_of(i), format!("not JSON: {e}"));
        }
    }
    report.count("json blocks parsed");
}

/// The sh blocks of one page, in order, in one directory.
fn run_sh_blocks(page: &str, text: &str, report: &mut Report) {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for block in read(page, text, report) {
        for name in block.files() {
            if let Err(e) = material::put(dir.path(), name, block.text().as_bytes()) {
                report.fail(page, block.line, e);
            }
        }
        if !is_sh(&block) {
            continue;
        }
        report.count(if block.skip().is_some() {
            "sh blocks parsed only (marked skip)"
        } else {
            "sh blocks run"
        });
        for (i, text) in shell::logical_lines(&block) {
            let line = block.line_of(i);
            if let Err(e) = run_line(dir.path(), &mut env, &block, &text, report) {
                report.fail(page, line, format!("`{text}`: {e}"));
            }
        }
    }
}

fn run_line(
    dir: &Path,
    env: &mut Vec<(String, String)>,
    block: &Block,
    text: &str,
    report: &mut Report,
) -> Result<(), String> {
    // Only our own commands are read as shell: others may use any syntax.
    let command = text
        .split_whitespace()
        .find(|w| shell::assignment(w).is_none());
    if !matches!(command, Some("portcullis" | "export")) {
        report.count("other commands not run");
        return Ok(());
    }
    let mut line = shell::parse(text)?;
    if line.words.first().map(String::as_str) == Some("export") {
        for w in &line.words[1..] {
            let (k, v) = w.split_once('=').ok_or("export without a value")?;
            env.push((k.to_string(), v.to_string()));
        }
        return Ok(());
    }
    let mut vars = env.clone();
    vars.append(&mut line.env);
    let args = &line.words[1..];
    if block.skip().is_some() {
        report.count("commands parsed");
        let mut parse_only = args.to_vec();
        parse_only.push("--help".into());
        let ran = shell::portcullis(dir, &vars, &parse_only)?;
        return match ran.status.success() {
            true => Ok(()),
            false => Err(format!("does not parse: {}", shell::tail(&ran))),
        };
    }
    report.count("commands run");
    if args.first().map(String::as_str) == Some("run") {
        line.env = vars;
        return shell::run_gateway(dir, &line);
    }
    for _ in shell::stand_ins(dir, args)? {
        report.count("stand-in inputs made");
    }
    let ran = shell::portcullis(dir, &vars, args)?;
    if !ran.status.success() {
        return Err(format!("failed ({}): {}", ran.status, shell::tail(&ran)));
    }
    if let Some((append, file)) = &line.stdout {
        let path = material::place(dir, file)?;
        let mut bytes = match append {
            true => std::fs::read(&path).unwrap_or_default(),
            false => Vec::new(),
        };
        bytes.extend_from_slice(&ran.stdout);
        material::put(dir, file, &bytes)?;
    }
    Ok(())
}

#[test]
fn config_examples_pass_check() {
    let mut report = Report::default();
    for (page, text) in pages() {
        check_data_blocks(&page, &text, &mut report);
    }
    report.finish();
}

#[test]
fn cli_examples_run() {
    let mut report = Report::default();
    for (page, text) in pages() {
        run_sh_blocks(&page, &text, &mut report);
    }
    report.finish();
}

/// The test of the tests: a page with one mistake of each kind yields one
/// failure each, at its line (a config mistake at the line `check` names),
/// and honoured markers yield none.
#[test]
fn every_broken_example_is_reported_with_its_line() {
    let page = "\
<!-- docs-test: not-built-yet (issue 17) -->
```yaml
sessionTickets: { keyFile: keys }
listeners: [{ name: plain, address: \"127.0.0.1:0\", protocol: http }]
```
```yaml
sessionTickets: { keyFile: keys, secretDir: keys.d }
listeners: [{ name: plain, address: \"127.0.0.1:0\", protocol: http }]
```
```yaml
a: [unclosed
```
<!-- docs-test: skip (a synopsis) -->
```sh
portcullis probe https://api.example.com/ --ca ca.crt
portcullis probe https://api.example.com/ --no-such-option
```
```sh
portcullis ca init --out ca --cn \"Docs CA\"
portcullis cert issue --ca ca --profile server --out srv --dns a.test
portcullis cert issue --ca missing --profile server --out srv --dns a.test
```
<!-- docs-test: skipp (typo) -->
";
    let mut report = Report::default();
    check_data_blocks("t.md", page, &mut report);
    run_sh_blocks("t.md", page, &mut report);
    let lines: Vec<&str> = report
        .failures
        .iter()
        .map(|f| f.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        ["t.md:23", "t.md:2", "t.md:7", "t.md:10", "t.md:23", "t.md:16", "t.md:21"],
        "{:#?}",
        report.failures
    );
}
