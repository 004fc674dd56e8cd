//! The module structure stays a house with floors: no file of `src/` reaches, through
//! `crate::…` paths, a file that reaches back to it (an import circle). Read from the source
//! itself, so CI checks it on every run; `farm-studio look` draws the same picture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`src/store/queue/jobs.rs` → `store::queue::jobs`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut module = prefix.to_vec();
            if !matches!(stem, "mod" | "lib" | "main") {
                module.push(stem.to_string());
            }
            if stem != "main" {
                out.insert(module, path);
            }
        }
    }
}

/// The code of a file without its tests and comments.
fn code_of(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// Every path named after `crate::`, as segments (a `crate::{a, b::c}` group gives `a` and `b::c`).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        out.extend(paths_at(rest));
    }
    out
}

fn paths_at(rest: &str) -> Vec<Vec<String>> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        // Items at depth one of the group.
        let mut out = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(paths_at(&group[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths_at(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        return out;
    }
    let mut segments = Vec::new();
    let mut text = rest;
    loop {
        let (name, after) = ident(text);
        if name.is_empty() {
            break;
        }
        segments.push(name.to_string());
        match after.strip_prefix("::") {
            Some(next) if next.trim_start().starts_with('{') => {
                return paths_at(next)
                    .into_iter()
                    .map(|tail| [segments.clone(), tail].concat())
                    .collect();
            }
            Some(next) => text = next,
            None => break,
        }
    }
    vec![segments]
}

/// The file a path lands in: its longest prefix that is a module.
fn resolve<'a>(
    path: &[String],
    files: &'a BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'a Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// The import graph of `src/`: module → modules its code names through `crate::`.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = BTreeMap::new();
    modules(src, &[], &mut files);
    let mut graph = BTreeMap::new();
    for (module, path) in &files {
        let code = code_of(&std::fs::read_to_string(path).unwrap_or_default());
        let targets: BTreeSet<Vec<String>> = crate_paths(&code)
            .iter()
            .filter_map(|p| resolve(p, &files))
            .filter(|target| *target != module && !target.is_empty())
            .cloned()
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// A circle in `graph`, if there is one, as the modules around it.
fn circle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut around: Vec<String> = stack[from..].iter().map(|m| m.join("::")).collect();
                around.push(node.join("::"));
                return Some(around);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, marks, stack) {
                return Some(found);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(found) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(found);
        }
    }
    None
}

#[test]
fn no_module_of_src_imports_one_that_imports_it_back() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.len() > 20,
        "the source was read: {} modules",
        graph.len()
    );
    assert!(
        graph
            .get(&vec!["store".to_string()])
            .is_some_and(|targets| targets.contains(&vec!["events".to_string()])),
        "crate:: paths are followed"
    );
    if let Some(around) = circle(&graph) {
        panic!("import circle: {}", around.join(" -> "));
    }
}

#[test]
fn the_checker_finds_a_circle_when_there_is_one() {
    let dir = std::env::temp_dir().join(format!("executor-structure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store")).expect("dir");
    std::fs::write(dir.join("lib.rs"), "pub mod events; pub mod store;").expect("lib");
    std::fs::write(dir.join("events.rs"), "use crate::store::Store;").expect("events");
    std::fs::write(
        dir.join("store/mod.rs"),
        "use crate::{events::{Event, Identity}, clock};",
    )
    .expect("store");
    let found = circle(&graph(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let around = found.expect("events -> store -> events");
    assert!(around.contains(&"events".to_string()) && around.contains(&"store".to_string()));
}
