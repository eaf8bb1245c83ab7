//! Fenced blocks of a Markdown page, with their line numbers and the
//! `docs-test` markers written right before them.

/// What a marker line says about the block that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// `<!-- docs-test: skip (WHY) -->`: the commands of this `sh` block are
    /// parsed by the real CLI but not run.
    Skip(String),
    /// `<!-- docs-test: not-built-yet (WHY) -->`: this whole configuration
    /// must be refused by `check` with "not supported yet".
    NotBuiltYet(String),
    /// `<!-- docs-test: file NAME -->`: the block is also written, as it
    /// is, to NAME in the page's working directory before the `sh` blocks
    /// after it run.
    File(String),
}

/// A fenced block.
#[derive(Debug)]
pub struct Block {
    /// The first word of the info string (`yaml`, `sh`, …; empty if none).
    pub lang: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The content, without the fence's own indentation.
    pub lines: Vec<String>,
    /// The markers right above the fence, in order.
    pub markers: Vec<Marker>,
}

impl Block {
    /// The content as one string, each line ending in a newline.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// The 1-based page line of content line `i` (0-based).
    pub fn line_of(&self, i: usize) -> usize {
        self.line + 1 + i
    }

    /// The reason of a `skip` marker, if there is one.
    pub fn skip(&self) -> Option<&str> {
        self.markers.iter().find_map(|m| match m {
            Marker::Skip(why) => Some(why.as_str()),
            _ => None,
        })
    }

    /// Whether the block is marked `not-built-yet`.
    pub fn not_built_yet(&self) -> bool {
        self.markers
            .iter()
            .any(|m| matches!(m, Marker::NotBuiltYet(_)))
    }

    /// The file names of `file` markers.
    pub fn files(&self) -> Vec<&str> {
        self.markers
            .iter()
            .filter_map(|m| match m {
                Marker::File(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// The blocks of a page, and the mistakes in its markers as (line, what).
pub fn blocks(text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut problems = Vec::new();
    let mut pending: Vec<(usize, Marker)> = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if let Some((mut block, indent)) = open.take() {
            if trimmed.starts_with("```") && trimmed.trim_start_matches('`').trim().is_empty() {
                blocks.push(block);
            } else {
                block.lines.push(strip_indent(raw, indent).to_string());
                open = Some((block, indent));
            }
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            let indent = raw.len() - raw.trim_start().len();
            let block = Block {
                lang: info.split_whitespace().next().unwrap_or("").to_string(),
                line: n,
                lines: Vec::new(),
                markers: pending.drain(..).map(|(_, m)| m).collect(),
            };
            open = Some((block, indent));
            continue;
        }
        if trimmed.starts_with("<!-- docs-test") {
            match marker(trimmed) {
                Ok(m) => pending.push((n, m)),
                Err(e) => problems.push((n, e)),
            }
            continue;
        }
        for (line, _) in pending.drain(..) {
            problems.push((
                line,
                "a docs-test marker must be right before a fence (no line between)".to_string(),
            ));
        }
    }
    if let Some((block, _)) = open {
        problems.push((block.line, "fence never closed".to_string()));
    }
    for (line, _) in pending {
        problems.push((
            line,
            "a docs-test marker at the end of the page".to_string(),
        ));
    }
    (blocks, problems)
}

fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(indent)..]
}

/// Reads `<!-- docs-test: KIND ARGUMENT -->`.
fn marker(line: &str) -> Result<Marker, String> {
    let body = line
        .strip_prefix("<!-- docs-test:")
        .and_then(|s| s.strip_suffix("-->"))
        .map(str::trim)
        .ok_or_else(|| format!("malformed marker {line:?}: write <!-- docs-test: KIND … -->"))?;
    let (kind, arg) = body.split_once(' ').unwrap_or((body, ""));
    let arg = arg.trim();
    let reason = || {
        arg.strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("marker {line:?} needs a reason in parentheses"))
    };
    match kind {
        "skip" => Ok(Marker::Skip(reason()?)),
        "not-built-yet" => Ok(Marker::NotBuiltYet(reason()?)),
        "file" if !arg.is_empty() && !arg.contains(char::is_whitespace) => {
            Ok(Marker::File(arg.to_string()))
        }
        _ => Err(format!(
            "unknown marker {line:?}: expected skip (WHY), not-built-yet (WHY) or file NAME"
        )),
    }
}

#[test]
fn fences_markers_and_line_numbers_are_read() {
    let page = "# t\n\n<!-- docs-test: skip (needs a cluster) -->\n```sh\nportcullis x\n```\n\n  ```yaml\n  a: 1\n  ```\n<!-- docs-test: nope -->\n\n```\nplain\n```\n";
    let (blocks, problems) = blocks(page);
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0].lang, "sh");
    assert_eq!(blocks[0].line, 4);
    assert_eq!(blocks[0].skip(), Some("needs a cluster"));
    assert_eq!(blocks[0].line_of(0), 5);
    assert_eq!(blocks[1].lines, vec!["a: 1"]);
    assert_eq!(blocks[2].lang, "");
    assert!(blocks[2].markers.is_empty());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, 11);
}
