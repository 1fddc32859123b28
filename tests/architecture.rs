//! The house rules of ARCHITECTURE.md that a machine can check: no module
//! imports its way back to itself (each `crate::` path followed
//! transitively), only the command layer prints to stdout, and no
//! function needs `too_many_arguments`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, with its module path (`runner::child`).
fn modules(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(dir).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod") {
                    parts.pop();
                }
                let name = parts.join("::");
                if name != "lib" && name != "main" {
                    out.insert(name, p);
                }
            }
        }
    }
    out
}

/// The code of a file without its `#[cfg(test)] mod tests`.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The modules a file names with `crate::a::b` (also inside `use
/// crate::{a, b::c}`) and `super::x`, as the longest known module path.
fn imports(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut paths = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            paths.extend(group.split(',').map(|p| p.trim().to_string()));
        } else {
            paths.push(rest[..rest.find(|c| !word(c)).unwrap_or(rest.len())].to_string());
        }
    }
    let parent: Vec<&str> = module.split("::").collect();
    for (i, _) in text.match_indices("super::") {
        let rest = &text[i + 7..];
        let p = &rest[..rest.find(|c| !word(c)).unwrap_or(rest.len())];
        let mut full: Vec<&str> = parent[..parent.len() - 1].to_vec();
        full.push(p);
        paths.push(full.join("::"));
    }
    paths
        .iter()
        .filter_map(|p| {
            let parts: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|m| known.contains_key(m))
        })
        .collect()
}

/// Module -> the modules it imports, at `depth` path components, leaving
/// out a module's own children and parents (a folder is one unit).
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let known = modules(&src());
    let cut = |m: &str| m.split("::").take(depth).collect::<Vec<_>>().join("::");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, path) in &known {
        let from = cut(m);
        for to in imports(m, &code(path), &known) {
            let to = cut(&to);
            let related =
                to.starts_with(&format!("{from}::")) || from.starts_with(&format!("{to}::"));
            if to != from && !related {
                g.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle_from(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in g.get(&at).into_iter().flatten() {
            if next == start {
                let mut p = path.clone();
                p.push(start.to_string());
                return Some(p);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    for depth in [1, 2] {
        let g = graph(depth);
        assert!(g.len() > 10, "the import graph looks empty: {g:?}");
        for m in g.keys() {
            if let Some(c) = cycle_from(&g, m) {
                panic!("import circle: {}", c.join(" -> "));
            }
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let g = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(cycle_from(&g, "a").unwrap(), ["a", "b", "a"]);
}

#[test]
fn only_the_command_layer_prints_to_stdout() {
    // The executor's stdout is its IPC channel to the runner.
    let allowed = |m: &str| m.starts_with("cmd") || m == "term" || m == "executor";
    for (m, path) in modules(&src()) {
        let text = code(&path);
        if !allowed(&m) {
            assert!(
                !text.contains("outln!(") && !text.contains("io::stdout()"),
                "{m} prints to stdout; return what to print to its command in src/cmd/"
            );
        }
    }
}

#[test]
fn no_function_takes_too_many_arguments() {
    for (m, path) in modules(&src()) {
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("too_many_arguments"),
            "{m} allows clippy::too_many_arguments: group the arguments"
        );
    }
}
