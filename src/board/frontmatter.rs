//! Story files: read the YAML frontmatter within bounds; patch named
//! fields in place, keeping every other byte, and prove the result reads
//! back as intended before anyone writes it.
//!
//! The file is never re-serialized from parsed YAML: that would lose
//! comments, key order and quoting that ai-sdlc or a person wrote.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

/// Nesting deeper than this is refused before it is parsed into a tree
/// (whose recursive drop would overflow a thread's stack).
pub const MAX_DEPTH: usize = 64;
/// Values in the frontmatter, counting each alias as the size of what it
/// repeats (an alias bomb expands exponentially).
pub const MAX_NODES: usize = 100_000;

/// Where the frontmatter is, as line indexes into `text.split_inclusive('\n')`.
struct Bounds {
    /// The index of the closing `---` line.
    close: usize,
}

fn is_delimiter(line: &str) -> bool {
    let t = line.trim_end_matches(['\n', '\r', ' ', '\t']);
    t == "---"
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn bounds(lines: &[&str]) -> Result<Bounds, String> {
    match lines.first() {
        Some(first) if is_delimiter(strip_bom(first)) => {}
        _ => return Err("no frontmatter: the file must start with a `---` line".to_string()),
    }
    let close = lines
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| is_delimiter(l) || l.trim_end_matches(['\n', '\r', ' ']) == "...")
        .map(|(i, _)| i)
        .ok_or("the frontmatter has no closing `---` line")?;
    Ok(Bounds { close })
}

/// The frontmatter's YAML text.
pub fn yaml_text(text: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let b = bounds(&lines)?;
    Ok(lines[1..b.close].concat())
}

fn yaml_error(e: &yaml_rust2::ScanError) -> String {
    // The marker counts from 1 inside the YAML; +1 for the opening `---` line.
    format!(
        "invalid YAML at line {}: {}",
        e.marker().line() + 1,
        e.info()
    )
}

/// Walk the YAML's events (no tree is built) and refuse what would take
/// unbounded stack or memory to load: deep nesting, alias bombs.
fn check_bounds(yaml: &str) -> Result<(), String> {
    let mut parser = Parser::new_from_str(yaml);
    let mut nodes = 0usize;
    // Open collections: their anchor, and the node count when they opened.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut anchored: HashMap<usize, usize> = HashMap::new();
    loop {
        let (event, _) = parser.next_token().map_err(|e| yaml_error(&e))?;
        match event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(_, _, anchor, _) => {
                nodes += 1;
                if anchor > 0 {
                    anchored.insert(anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                open.push((anchor, nodes));
                if open.len() > MAX_DEPTH {
                    return Err(format!(
                        "the frontmatter nests deeper than {MAX_DEPTH} levels"
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, from)) = open.pop()
                    && anchor > 0
                {
                    anchored.insert(anchor, nodes - from + 1);
                }
            }
            Event::Alias(anchor) => {
                nodes = nodes.saturating_add(anchored.get(&anchor).copied().unwrap_or(1));
            }
            _ => {}
        }
        if nodes > MAX_NODES {
            return Err(format!(
                "the frontmatter holds more than {MAX_NODES} values (aliases counted as what they repeat)"
            ));
        }
    }
}

/// Parse the frontmatter into a YAML mapping.
pub fn parse(text: &str) -> Result<Yaml, String> {
    let yaml = yaml_text(text)?;
    check_bounds(&yaml)?;
    let docs = YamlLoader::load_from_str(&yaml).map_err(|e| yaml_error(&e))?;
    match docs.into_iter().next() {
        Some(map @ Yaml::Hash(_)) => Ok(map),
        None | Some(Yaml::Null) => Err("the frontmatter is empty".to_string()),
        Some(_) => Err("the frontmatter is not a mapping of fields".to_string()),
    }
}

/// A value written into a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    /// Written with a decimal point, rounded to six places (a cost in USD).
    Float(f64),
    Null,
    Bool(bool),
    /// Written in flow style on one line: `{outcome: done, exit_code: 0}`.
    Map(Vec<(String, Value)>),
    /// Written in flow style on one line: `[{phase: plan}, {phase: review}]`.
    List(Vec<Value>),
}

/// One change to a story file: set a field, or remove it (`None`).
pub type Change<'a> = (&'a str, Option<Value>);

fn needs_quotes(s: &str) -> bool {
    const RESERVED: [&str; 12] = [
        "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "-",
    ];
    if RESERVED.contains(&s.to_ascii_lowercase().as_str()) {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if first.is_ascii_digit() || "+-.".contains(first) {
        // Might read as a number or a date; quote to keep it a string.
        return true;
    }
    if !(first.is_alphanumeric() || first == '_' || first == '/') {
        return true;
    }
    s.ends_with(' ')
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars()
            .any(|c| c.is_control() || "{}[],&*!|>'\"%@`".contains(c))
}

/// A scalar as YAML: plain when that reads back as the same string, else quoted.
pub fn scalar(s: &str) -> String {
    if !needs_quotes(s) {
        s.to_string()
    } else if s.chars().any(char::is_control) {
        // A JSON string is a valid double-quoted YAML scalar and escapes control characters.
        serde_json::to_string(s).unwrap_or_else(|_| "''".to_string())
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A string inside a flow collection: plain only when it is a simple word
/// (`succeeded`, `ai-sdlc/S-1-x`), since flow context reads `,[]{}` and a
/// ` -` before them differently; quoted otherwise.
fn flow_scalar(s: &str) -> String {
    let plain = scalar(s);
    let simple = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    if plain.starts_with(['\'', '"']) || simple {
        plain
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::Str(s) => scalar(s),
        Value::Int(n) => n.to_string(),
        Value::Float(x) => float_text(*x),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Map(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k}: {}", flow_item(v)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(flow_item).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// A value inside a flow collection.
fn flow_item(v: &Value) -> String {
    match v {
        Value::Str(s) => flow_scalar(s),
        other => render(other),
    }
}

/// When `line` starts the top-level field `key` (`key:`, `'key':`,
/// `key   :`), the text after its colon.
fn field_value<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    let rest = line
        .strip_prefix(key)
        .or_else(|| line.strip_prefix(&format!("'{key}'")))
        .or_else(|| line.strip_prefix(&format!("\"{key}\"")))?;
    let after = rest.trim_start_matches([' ', '\t']).strip_prefix(':')?;
    (after.is_empty() || after.starts_with([' ', '\t', '\r', '\n'])).then_some(after)
}

/// The ` # comment` at the end of a field's first line (with the blanks
/// before it, without the line ending), if it has one. Quote-aware: a `#`
/// inside a quoted scalar is not a comment.
fn trailing_comment(value: &str) -> Option<&str> {
    let value = value.trim_end_matches(['\r', '\n']);
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut last_significant = ':';
    let mut chars = value.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => {
                if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some('"') if c == '"' => quote = None,
            Some(_) => {}
            None if (c == '\'' || c == '"') && "[{,:".contains(last_significant) => {
                quote = Some(c);
            }
            None if c == '#' && (prev == ' ' || prev == '\t') => {
                let start = value[..i].trim_end_matches([' ', '\t']).len();
                return Some(&value[start..]);
            }
            None => {}
        }
        if !c.is_whitespace() {
            last_significant = c;
        }
        prev = c;
    }
    None
}

/// Is `line` part of the value of the field above it (indented, or a
/// block-sequence item at column 0)?
fn continues_field(line: &str) -> bool {
    line.starts_with([' ', '\t']) || line.starts_with("- ") || line.trim_end() == "-"
}

/// The line range `[start, end)` of field `key` inside the frontmatter.
fn field_range(lines: &[&str], close: usize, key: &str) -> Option<(usize, usize)> {
    let start = (1..close).find(|&i| field_value(lines[i], key).is_some())?;
    let mut end = start + 1;
    let mut k = start + 1;
    while k < close {
        let line = lines[k];
        if continues_field(line) {
            end = k + 1;
        } else if !line.trim().is_empty() {
            break;
        }
        // A blank line belongs to the field only if the field goes on after it.
        k += 1;
    }
    Some((start, end))
}

/// Apply `changes` to a story file's text, line by line: every other byte
/// is kept, and so is a trailing `# comment` on a replaced field's line.
/// Unchecked: `patch` is the one to call.
fn patch_lines(text: &str, changes: &[Change]) -> Result<String, String> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    let eol = if lines.first().is_some_and(|l| l.ends_with("\r\n")) {
        "\r\n"
    } else {
        "\n"
    };
    for (key, value) in changes {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let b = bounds(&refs)?;
        let range = field_range(&refs, b.close, key);
        match (range, value) {
            (Some((start, end)), Some(v)) => {
                // Keep the line ending the field's last line had (the file's last
                // line may have none, but a field line is never the last).
                let ending = if refs[end - 1].ends_with("\r\n") {
                    "\r\n"
                } else {
                    "\n"
                };
                let comment = field_value(refs[start], key)
                    .and_then(trailing_comment)
                    .unwrap_or("");
                let line = format!("{key}: {}{comment}{ending}", render(v));
                lines.splice(start..end, [line]);
            }
            (Some((start, end)), None) => {
                lines.drain(start..end);
            }
            (None, Some(v)) => {
                lines.insert(b.close, format!("{key}: {}{eol}", render(v)));
            }
            (None, None) => {}
        }
    }
    Ok(lines.concat())
}

/// A finite float as YAML reads it back as a float: `0.25`, `3.0`.
fn float_text(x: f64) -> String {
    let x = if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    };
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// What `value` reads back as, once written.
fn expected(value: &Value) -> Yaml {
    match value {
        Value::Str(s) => Yaml::String(s.clone()),
        Value::Int(n) => Yaml::Integer(*n),
        Value::Float(x) => Yaml::Real(float_text(*x)),
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::List(items) => Yaml::Array(items.iter().map(expected).collect()),
        Value::Map(pairs) => Yaml::Hash(
            pairs
                .iter()
                .map(|(k, v)| (Yaml::String(k.clone()), expected(v)))
                .collect(),
        ),
    }
}

/// Apply `changes` to a story file's text, and prove the result: it parses,
/// every changed field reads back as written (or is gone), and every other
/// field reads as before. When the line patcher cannot guarantee that (a
/// flow-style or indented frontmatter, an anchor on a changed field, ...),
/// the answer is an error and nothing should be written.
pub fn patch(text: &str, changes: &[Change]) -> Result<String, String> {
    let before = parse(text)?;
    let new = patch_lines(text, changes)?;
    let after = parse(&new).map_err(|e| format!("the update would break the frontmatter ({e})"))?;
    let (Yaml::Hash(old), Yaml::Hash(now)) = (&before, &after) else {
        return Err("the frontmatter is not a mapping of fields".into());
    };
    for (key, value) in changes {
        let got = now.get(&Yaml::String(key.to_string()));
        let ok = match value {
            Some(v) => got == Some(&expected(v)),
            None => got.is_none(),
        };
        if !ok {
            return Err(format!(
                "field `{key}` would not read back as written; write it as one `{key}: value` line"
            ));
        }
    }
    for (k, v) in old {
        let changed = k
            .as_str()
            .is_some_and(|k| changes.iter().any(|(c, _)| *c == k));
        if !changed && now.get(k) != Some(v) {
            return Err(format!(
                "the update would also change field {}",
                k.as_str()
                    .map_or_else(|| format!("{k:?}"), |s| format!("`{s}`"))
            ));
        }
    }
    if let Some(extra) = now.keys().find(|k| {
        !old.contains_key(k)
            && !k
                .as_str()
                .is_some_and(|k| changes.iter().any(|(c, _)| *c == k))
    }) {
        return Err(format!("the update would add field {extra:?}"));
    }
    Ok(new)
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, v: &str) -> (&'static str, Option<Value>) {
        (
            Box::leak(key.to_string().into_boxed_str()),
            Some(Value::Str(v.to_string())),
        )
    }

    #[test]
    fn changes_one_line_and_keeps_the_rest() {
        let text = "---\n# a comment\nid: S-0001\ntitle: \"Quoted: title\"  # trailing\nstatus: ready\nlabels: [a, b]\ncreated: '2024-01-02'\n---\nbody\n";
        let out = patch(text, &[set("status", "in-progress")]).unwrap();
        assert_eq!(out, text.replace("status: ready", "status: in-progress"));
    }

    #[test]
    fn adds_missing_fields_before_the_closing_line() {
        let text = "---\nid: S-1\n---\n# body\n";
        let out = patch(text, &[set("branch", "ai-sdlc/S-1-x")]).unwrap();
        assert_eq!(out, "---\nid: S-1\nbranch: ai-sdlc/S-1-x\n---\n# body\n");
    }

    #[test]
    fn replaces_block_lists_and_nested_maps_whole() {
        let text = "---\nid: S-1\nlabels:\n- a\n- b\nlast_test_run:\n  passed: true\n  # note\n  count: 3\n\nstatus: ready\n---\n";
        let out = patch(
            text,
            &[
                ("labels", Some(Value::Str("c".into()))),
                (
                    "last_test_run",
                    Some(Value::Map(vec![("passed".into(), Value::Int(0))])),
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "---\nid: S-1\nlabels: c\nlast_test_run: {passed: 0}\n\nstatus: ready\n---\n"
        );
        let y = parse(&out).unwrap();
        assert_eq!(y["last_test_run"]["passed"], Yaml::Integer(0));
    }

    #[test]
    fn keeps_crlf_and_a_missing_trailing_newline() {
        let text = "---\r\nid: S-1\r\nstatus: ready\r\n---\r\nbody without newline";
        let out = patch(text, &[set("status", "done"), set("finished_at", "x")]).unwrap();
        assert_eq!(
            out,
            "---\r\nid: S-1\r\nstatus: done\r\nfinished_at: x\r\n---\r\nbody without newline"
        );
    }

    #[test]
    fn a_body_with_dashes_is_not_frontmatter() {
        let text = "---\nstatus: ready\n---\nintro\n---\nstatus: fake\n---\n";
        let out = patch(text, &[set("status", "done")]).unwrap();
        assert_eq!(
            out,
            "---\nstatus: done\n---\nintro\n---\nstatus: fake\n---\n"
        );
        assert_eq!(parse(text).unwrap()["status"].as_str(), Some("ready"));
    }

    #[test]
    fn removes_a_field_and_its_continuation_lines() {
        let text = "---\nid: S-1\nblocked_reason: >\n  long\n  reason\nstatus: blocked\n---\n";
        let out = patch(text, &[("blocked_reason", None)]).unwrap();
        assert_eq!(out, "---\nid: S-1\nstatus: blocked\n---\n");
    }

    #[test]
    fn similar_keys_are_not_confused() {
        let text = "---\nstatus_note: x\nstatus: ready\n  # indented comment of status\n---\n";
        let out = patch(text, &[set("status", "done")]).unwrap();
        assert_eq!(out, "---\nstatus_note: x\nstatus: done\n---\n");
    }

    #[test]
    fn written_values_read_back_as_written() {
        let tricky = [
            "plain",
            "yes",
            "2024-01-02",
            "12",
            "a: b",
            "it's # here",
            "line\nbreak",
            "-dash",
            "[x]",
            "",
            "ünïcode ok",
            "timed out after 1.0s",
        ];
        for s in tricky {
            let text = patch("---\nid: S-1\n---\n", &[set("f", s)]).unwrap();
            let y = parse(&text).unwrap();
            assert_eq!(y["f"].as_str(), Some(s), "{s:?} -> {text}");
        }
        let text = patch(
            "---\nid: S-1\n---\n",
            &[(
                "m",
                Some(Value::Map(vec![
                    ("log".into(), Value::Str("a, b {c}".into())),
                    ("n".into(), Value::Int(-3)),
                    ("x".into(), Value::Null),
                ])),
            )],
        )
        .unwrap();
        let y = parse(&text).unwrap();
        assert_eq!(y["m"]["log"].as_str(), Some("a, b {c}"), "{text}");
        assert_eq!(y["m"]["n"].as_i64(), Some(-3));
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert!(parse("no frontmatter\n").unwrap_err().contains("---"));
        assert!(parse("---\nid: x\n").unwrap_err().contains("closing"));
        assert!(
            parse("---\nid: [unclosed\n---\n")
                .unwrap_err()
                .contains("invalid YAML")
        );
        assert!(parse("---\n- a\n---\n").unwrap_err().contains("mapping"));
        assert!(parse("\u{feff}---\r\nid: x\r\n---\r\n").is_ok());
    }

    #[test]
    fn odd_but_valid_frontmatter_is_patched_or_refused_never_corrupted() {
        // Spaces before the colon: the field is found, not added twice.
        let out = patch(
            "---\nid: S-1\nstatus   : ready\n---\n",
            &[set("status", "done")],
        )
        .unwrap();
        assert_eq!(out, "---\nid: S-1\nstatus: done\n---\n");
        // A trailing comment stays; a `#` inside quotes is not one.
        let out = patch(
            "---\nstatus: ready  # set by TS\ntitle: 'a # b'\n---\n",
            &[set("status", "done"), set("title", "c")],
        )
        .unwrap();
        assert_eq!(out, "---\nstatus: done  # set by TS\ntitle: c\n---\n");
        // Forms the line patcher cannot change safely are refused, not mangled.
        for text in [
            "---\n{id: S-1, status: ready}\n---\n",
            "---\n  id: S-1\n  status: ready\n---\n",
            "---\nstatus: &s ready\nprevious: *s\n---\n",
        ] {
            let e = patch(text, &[set("status", "done")]).unwrap_err();
            assert!(!e.is_empty(), "{text}");
        }
        // Other fields read back unchanged, even a multi-line folded one.
        let text = "---\nid: S-1\nblocked_reason: >-\n  long\n  reason\nstatus: blocked\n---\n";
        let out = patch(text, &[set("status", "ready")]).unwrap();
        assert_eq!(out, text.replace("status: blocked", "status: ready"));
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_refused_on_a_small_stack() {
        let deep = format!("---\nid: S-1\nx:\n  {}x\n---\n", "- ".repeat(50_000));
        let deep1k = format!("---\nid: S-1\nx:\n  {}x\n---\n", "- ".repeat(1_000));
        let flow = format!(
            "---\nid: S-1\nx: {}{}\n---\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let mut bomb = String::from("---\nid: S-1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        bomb.push_str("---\n");
        let checks = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                [
                    parse(&deep).unwrap_err(),
                    parse(&flow).unwrap_err(),
                    parse(&bomb).unwrap_err(),
                    parse(&deep1k).unwrap_err(),
                ]
            })
            .unwrap()
            .join()
            .expect("parsing a hostile story must not crash its thread");
        // yaml-rust2's scanner has a nesting limit of its own; either refusal will do.
        for c in &checks[..2] {
            assert!(c.contains("deeper") || c.contains("recursion limit"), "{c}");
        }
        assert!(checks[2].contains("aliases"), "{}", checks[2]);
        assert!(checks[3].contains("deeper than 64"), "{}", checks[3]);
        // Modest anchors and aliases are fine.
        assert!(parse("---\nid: S-1\na: &x [1, 2]\nb: *x\n---\n").is_ok());
    }
}
