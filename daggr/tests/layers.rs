//! The runtime's layers point one way. Reads `src/` and fails when a module names a module
//! of a higher layer (through `crate::…`, `daggr::…` or a name `lib.rs` re-exports), so
//! the shape the folders show stays the shape the code has.
//!
//! Bottom to top: errors; values and media; the cache; the node contract and its events;
//! the graph; the executor; the node kinds; sheets; the inspector. `lib.rs` and the
//! macros' support module sit on top of everything and may name any layer, and so may a
//! module's own unit tests (`#[cfg(test)] mod tests`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers by their top-level module, lowest first.
const LAYERS: &[&str] = &[
    "error",
    "value",
    "cache",
    "node",
    "graph",
    "exec",
    "kinds",
    "sheet",
    "inspector",
];

/// Modules above every layer: the crate root and the macros' re-exports.
const TOP: &[&str] = &["lib", "macro_support"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file belongs to: its first path component under `src/`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code without comments, string and char literals (so prose naming a module does not
/// count as an import).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(len) = raw_string_len(rest) {
            i += len;
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if let Some(len) = char_literal_len(rest) {
            i += len;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"…"`, `r#"…"#`, `br"…"`: its length, when `s` starts with one.
fn raw_string_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("br").or_else(|| s.strip_prefix('r'))?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let after = body[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = after.find(&close)?;
    Some(s.len() - after.len() + end + close.len())
}

/// `'x'`, `'\n'`, `'\''` (not a lifetime): its length, when `s` starts with one.
fn char_literal_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('\'')?;
    if let Some(escaped) = rest.strip_prefix('\\') {
        let end = escaped.find('\'')?;
        return Some(2 + end + 1);
    }
    let c = rest.chars().next()?;
    rest[c.len_utf8()..]
        .starts_with('\'')
        .then(|| 2 + c.len_utf8())
}

/// The names `lib.rs` re-exports at the crate root, by the top-level module they come from
/// (`pub use exec::{Pipeline, …}` makes `crate::Pipeline` a name of `exec`).
fn root_names() -> BTreeMap<String, String> {
    let lib = code_only(&std::fs::read_to_string(src().join("lib.rs")).unwrap());
    let mut names = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = path.split("::").next().unwrap().trim().to_string();
        if !LAYERS.contains(&module.as_str()) {
            continue;
        }
        let items = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => path[open + 1..close].to_string(),
            _ => path.rsplit("::").next().unwrap().to_string(),
        };
        for item in items.split(',') {
            let item = item.trim();
            let name = item
                .rsplit(" as ")
                .next()
                .unwrap()
                .rsplit("::")
                .next()
                .unwrap();
            let name = name.trim();
            if !name.is_empty() && name != "self" {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

/// Every top-level module or root name the code reaches through `crate::` or `daggr::`,
/// with its line.
fn named_modules(code: &str, root: &BTreeMap<String, String>) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for prefix in ["crate::", "daggr::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix) {
            let start = from + at;
            from = start + prefix.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let line = code[..start].matches('\n').count() + 1;
            let rest = &code[from..];
            let heads: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                group_heads(group)
            } else {
                vec![ident(rest)]
            };
            for head in heads {
                let module = if LAYERS.contains(&head.as_str()) {
                    Some(head)
                } else {
                    root.get(&head).cloned()
                };
                if let Some(module) = module {
                    found.push((line, module));
                }
            }
        }
    }
    found
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of each path in a `{…}` group (nested groups included).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => {
                depth += 1;
            }
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if c.is_whitespace() => {}
            _ if at_start && depth == 0 => {
                heads.push(ident(&group[i..]));
                at_start = false;
            }
            _ => {}
        }
    }
    heads
}

#[test]
fn no_module_names_a_higher_layer() {
    let root = root_names();
    assert!(
        root.contains_key("Pipeline") && root.contains_key("Error"),
        "lib.rs's re-exports were not read: {root:?}"
    );
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(file);
        if TOP.contains(&module.as_str()) {
            continue;
        }
        let rank = LAYERS
            .iter()
            .position(|l| *l == module)
            .unwrap_or_else(|| panic!("{}: `{module}` is in no layer", file.display()));
        let text = std::fs::read_to_string(file).unwrap();
        // A module's unit tests may use any layer (they test, they are not the structure).
        let text = text.split("\n#[cfg(test)]\nmod tests").next().unwrap();
        let code = code_only(text);
        for (line, named) in named_modules(&code, &root) {
            let named_rank = LAYERS.iter().position(|l| *l == named).unwrap();
            if named_rank > rank {
                wrong.push(format!(
                    "{}:{line}: `{module}` names `{named}`, a higher layer",
                    file.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_what_it_must() {
    let root: BTreeMap<String, String> = [("Pipeline".to_string(), "exec".to_string())].into();
    let code = code_only(
        "use crate::{graph::Graph, Pipeline};\n// crate::inspector in a comment\nlet s = \"crate::sheet\";\nlet c = '{';\nfn f<'a>(x: &'a str) { daggr::kinds::gradio::x(); }\n",
    );
    let named: Vec<(usize, String)> = named_modules(&code, &root);
    assert_eq!(
        named,
        vec![
            (1, "graph".to_string()),
            (1, "exec".to_string()),
            (5, "kinds".to_string())
        ]
    );
}
