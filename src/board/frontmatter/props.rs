//! Generated inputs for the patcher: random frontmatter (quoting styles,
//! comments, block and flow lists, nested maps, blank lines, CRLF, a BOM,
//! a missing final newline) built from a model, with yaml-rust2 as the
//! oracle. Whatever the patcher writes must read back as intended, and
//! every byte it does not own must stay.

use super::*;
use proptest::prelude::*;

/// Strings a field may hold: mostly plain words, some YAML traps, any
/// printable Unicode, and control characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9 -]{0,20}",
        1 => prop::sample::select(vec![
            "yes", "No", "~", "null", "2024-01-02", "- x", "a: b", "# c", "12", "1.5",
            "true", "[x]", "{y}", "'", "\"", "", " lead", "trail ", ":", "-", "?x",
            "!tag", "&a", "*a", "@x", "`x", "%x", "---", "...", "a #b", "0x1F", ".inf",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,20}",
        1 => "[a-z \t\u{1}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{feff}]{0,12}",
    ]
}

#[derive(Debug, Clone)]
enum Style {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone)]
enum Field {
    Scalar(String, Style),
    Int(i64),
    Block(Vec<String>),
    Flow(Vec<String>),
    Map(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
struct Doc {
    fields: Vec<(String, Field, Option<String>)>,
    /// A comment line (or a blank line) before each field.
    before: Vec<u8>,
    crlf: bool,
    bom: bool,
    final_newline: bool,
    body: String,
}

/// A field name; `id` is the one field every story has, left alone.
fn key() -> impl Strategy<Value = String> {
    "[a-z][a-z_]{0,11}".prop_filter("id is fixed", |k| k != "id")
}

fn field() -> impl Strategy<Value = Field> {
    let style = prop_oneof![Just(Style::Plain), Just(Style::Single), Just(Style::Double)];
    prop_oneof![
        3 => (text(), style).prop_map(|(s, st)| Field::Scalar(s, st)),
        1 => any::<i64>().prop_map(Field::Int),
        1 => prop::collection::vec(text(), 0..4).prop_map(Field::Block),
        1 => prop::collection::vec("[a-z0-9]{1,8}", 0..4).prop_map(Field::Flow),
        1 => prop::collection::vec(("[a-z]{1,6}", text()), 1..3).prop_map(|kv| {
            // Keys of a map are unique.
            let mut seen = std::collections::HashSet::new();
            Field::Map(kv.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect())
        }),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop::collection::vec(
            (key(), field(), prop::option::weighted(0.2, "[a-z ]{0,10}")),
            1..8,
        ),
        prop::collection::vec(0u8..6, 8),
        any::<bool>(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.9),
        "(# [a-z]{0,8}\n|---\n|[a-z: ]{0,12}\n){0,4}",
    )
        .prop_map(|(fields, before, crlf, bom, final_newline, body)| {
            let mut seen = std::collections::HashSet::new();
            let fields = fields
                .into_iter()
                .filter(|(k, _, _)| seen.insert(k.clone()))
                .collect();
            Doc {
                fields,
                before,
                crlf,
                bom,
                final_newline,
                body,
            }
        })
}

/// `s` in the given quoting style, when that style can hold it.
fn quoted(s: &str, style: &Style) -> String {
    match style {
        Style::Single if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', "''")),
        Style::Double => serde_json::to_string(s).unwrap(),
        _ => scalar(s),
    }
}

impl Doc {
    fn eol(&self) -> &'static str {
        if self.crlf { "\r\n" } else { "\n" }
    }

    fn render(&self) -> String {
        let nl = self.eol();
        let mut out = String::new();
        if self.bom {
            out.push('\u{feff}');
        }
        out.push_str("---");
        out.push_str(nl);
        out.push_str("id: S-1");
        out.push_str(nl);
        for (i, (k, f, comment)) in self.fields.iter().enumerate() {
            match self.before[i % self.before.len()] {
                0 => out.push_str(&format!("# about {k}{nl}")),
                1 => out.push_str(nl),
                _ => {}
            }
            let c = comment
                .as_ref()
                .map(|c| format!("  # {c}"))
                .unwrap_or_default();
            match f {
                Field::Scalar(s, st) => out.push_str(&format!("{k}: {}{c}{nl}", quoted(s, st))),
                Field::Int(n) => out.push_str(&format!("{k}: {n}{c}{nl}")),
                Field::Block(items) if items.is_empty() => out.push_str(&format!("{k}: []{c}{nl}")),
                Field::Block(items) => {
                    out.push_str(&format!("{k}:{c}{nl}"));
                    for item in items {
                        out.push_str(&format!("  - {}{nl}", scalar(item)));
                    }
                }
                Field::Flow(items) => out.push_str(&format!("{k}: [{}]{c}{nl}", items.join(", "))),
                Field::Map(kv) => {
                    out.push_str(&format!("{k}:{c}{nl}"));
                    for (mk, mv) in kv {
                        out.push_str(&format!("  {mk}: {}{nl}", scalar(mv)));
                    }
                }
            }
        }
        out.push_str("---");
        out.push_str(nl);
        let body = self.body.replace('\n', nl);
        out.push_str(&body);
        if !self.final_newline && out.ends_with(nl) {
            out.truncate(out.len() - nl.len());
        }
        out
    }

    /// What the frontmatter means.
    fn yaml(&self, field: &Field) -> Yaml {
        match field {
            Field::Scalar(s, _) => Yaml::String(s.clone()),
            Field::Int(n) => Yaml::Integer(*n),
            Field::Block(items) => Yaml::Array(items.iter().cloned().map(Yaml::String).collect()),
            Field::Flow(items) => Yaml::Array(
                items
                    .iter()
                    .map(|i| YamlLoader::load_from_str(&format!("[{i}]")).unwrap()[0][0].clone())
                    .collect(),
            ),
            Field::Map(kv) => Yaml::Hash(
                kv.iter()
                    .map(|(k, v)| (Yaml::String(k.clone()), Yaml::String(v.clone())))
                    .collect(),
            ),
        }
    }
}

/// A change: set a field (existing or new) to a string, a number, a flag or
/// a list of maps, or remove it.
fn changes(keys: Vec<String>) -> impl Strategy<Value = Vec<(String, Option<Value>)>> {
    let value = prop_oneof![
        3 => text().prop_map(|s| Some(Value::Str(s))),
        1 => any::<i64>().prop_map(|n| Some(Value::Int(n))),
        1 => any::<bool>().prop_map(|b| Some(Value::Bool(b))),
        1 => prop::collection::vec(text(), 0..3).prop_map(|v| Some(Value::List(
            v.into_iter()
                .map(|s| Value::Map(vec![("phase".into(), Value::Str(s))]))
                .collect()
        ))),
        1 => Just(None),
    ];
    let existing = if keys.is_empty() {
        Just(String::from("x")).boxed()
    } else {
        prop::sample::select(keys).boxed()
    };
    let name = prop_oneof![existing, key()];
    prop::collection::vec((name, value), 0..4).prop_map(|cs| {
        // One change per field.
        let mut seen = std::collections::HashSet::new();
        cs.into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect()
    })
}

fn after_frontmatter(text: &str) -> &str {
    let mut count = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if line
            .trim_end_matches(['\r', '\n'])
            .trim_start_matches('\u{feff}')
            == "---"
        {
            count += 1;
            if count == 2 {
                return &text[at..];
            }
        }
    }
    ""
}

// 256 cases each by default; PROPTEST_CASES=N for more.
proptest! {

    #[test]
    fn any_string_written_reads_back(s in text()) {
        let out = patch("---\nid: S-1\n---\n", &[("f", Some(Value::Str(s.clone())))]).unwrap();
        let back = parse(&out).unwrap();
        prop_assert_eq!(back["f"].as_str(), Some(s.as_str()));
    }

    #[test]
    fn patched_fields_read_back_and_every_other_byte_stays(
        (d, cs) in doc().prop_flat_map(|d| {
            let keys = d.fields.iter().map(|(k, _, _)| k.clone()).collect();
            (Just(d), changes(keys))
        })
    ) {
        let text = d.render();
        let before = parse(&text).expect("the generated frontmatter parses");
        for (k, f, _) in &d.fields {
            prop_assert_eq!(&before[k.as_str()], &d.yaml(f), "the oracle disagrees on {}:\n{}", k, text);
        }
        prop_assert_eq!(patch(&text, &[]).unwrap(), text.clone());
        let changes: Vec<Change> = cs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let new = patch(&text, &changes).expect("a plain frontmatter is always patchable");
        let after = parse(&new).unwrap();
        for (k, v) in &cs {
            match v {
                Some(v) => prop_assert_eq!(&after[k.as_str()], &expected(v)),
                None => prop_assert!(after[k.as_str()].is_badvalue()),
            }
        }
        for (k, f, _) in &d.fields {
            if !cs.iter().any(|(c, _)| c == k) {
                prop_assert_eq!(&after[k.as_str()], &d.yaml(f));
            }
        }
        prop_assert_eq!(after_frontmatter(&new), after_frontmatter(&text));
        if d.crlf {
            prop_assert!(!new.replace("\r\n", "").contains('\n'), "a bare LF in a CRLF file:\n{:?}", new);
        }
        prop_assert_eq!(patch(&new, &changes).unwrap(), new.clone(), "not idempotent");
    }
}
