//! Story files: read the YAML frontmatter; patch named fields in place,
//! keeping every other byte; write atomically.
//!
//! The file is never re-serialized from parsed YAML: that would lose
//! comments, key order and quoting that ai-sdlc or a person wrote.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

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

/// Parse the frontmatter into a YAML mapping.
pub fn parse(text: &str) -> Result<Yaml, String> {
    let yaml = yaml_text(text)?;
    let docs = YamlLoader::load_from_str(&yaml).map_err(|e| {
        let m = e.marker();
        // The marker counts from 1 inside the YAML; +1 for the opening `---` line.
        format!("invalid YAML at line {}: {}", m.line() + 1, e.info())
    })?;
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
    Null,
    /// Written in flow style on one line: `{outcome: done, exit_code: 0}`.
    Map(Vec<(String, Value)>),
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

fn flow_scalar(s: &str) -> String {
    let plain = scalar(s);
    if plain.starts_with(['\'', '"']) || !s.contains([',', '{', '}', '[', ']']) {
        plain
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::Str(s) => scalar(s),
        Value::Int(n) => n.to_string(),
        Value::Null => "null".to_string(),
        Value::Map(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Str(s) => flow_scalar(s),
                        other => render(other),
                    };
                    format!("{k}: {v}")
                })
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
    }
}

/// Does `line` start the top-level field `key`?
fn starts_field(line: &str, key: &str) -> bool {
    let rest = line
        .strip_prefix(key)
        .or_else(|| line.strip_prefix(&format!("'{key}'")))
        .or_else(|| line.strip_prefix(&format!("\"{key}\"")));
    match rest.and_then(|r| r.strip_prefix(':')) {
        Some(after) => after.is_empty() || after.starts_with([' ', '\t', '\r', '\n']),
        None => false,
    }
}

/// Is `line` part of the value of the field above it (indented, or a
/// block-sequence item at column 0)?
fn continues_field(line: &str) -> bool {
    line.starts_with([' ', '\t']) || line.starts_with("- ") || line.trim_end() == "-"
}

/// The line range `[start, end)` of field `key` inside the frontmatter.
fn field_range(lines: &[&str], close: usize, key: &str) -> Option<(usize, usize)> {
    let start = (1..close).find(|&i| starts_field(lines[i], key))?;
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

/// Apply `changes` to a story file's text. Every other byte is kept.
pub fn patch(text: &str, changes: &[Change]) -> Result<String, String> {
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
                let line = format!("{key}: {}{ending}", render(v));
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

/// Write `contents` to `path` so that a crash leaves the old or the new file:
/// a temporary file in the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

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
            "---\n---\n",
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
    fn atomic_write_replaces_the_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("ai-sdlc-fm-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("story.md");
        fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
