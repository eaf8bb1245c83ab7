//! Comments in the imported config: why a rule admits no one.

use super::*;

/// Puts each reason of `why` as a comment above the line that holds the
/// n-th [`ADMITS_NO_ONE`] rule. Should the lines not match the reasons one
/// for one, the reasons go to the top of the file instead: the comment may
/// move, it is never lost.
pub(super) fn comment_nobody(yaml: &str, why: &[String]) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let at: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(ADMITS_NO_ONE))
        .map(|(i, _)| i)
        .collect();
    let mut out =
        String::with_capacity(yaml.len() + why.iter().map(|w| w.len() + 8).sum::<usize>());
    if at.len() != why.len() {
        for w in why {
            push_comment(&mut out, w);
        }
        out.push_str(yaml);
        return out;
    }
    let mut reasons = why.iter();
    for (i, line) in lines.iter().enumerate() {
        if at.contains(&i) {
            if let Some(w) = reasons.next() {
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push_str(indent);
                push_comment(&mut out, w);
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `# text` and a line break. The text names hosts and Ingresses from the
/// input: a line break in it would end the comment and let the input write
/// configuration, so every control or line-separating character is escaped.
pub(super) fn push_comment(out: &mut String, text: &str) {
    out.push_str("# ");
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}
