//! The agent's top-level modules import each other in one direction only: this test reads every
//! `crate::…` (and `super::…` that climbs to the crate root) path in `sensor/src`, builds the
//! graph of top-level modules, and fails naming every import cycle with the files that make it.
//!
//! Test code is left out (`#[cfg(test)]` items and the files of `#[cfg(test)] mod x;`): tests
//! may reach anywhere. Comments and string literals are left out too, so a doc link is not an
//! import.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Imports between two top-level modules, with the files that make them.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn top_level_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    let graph = module_graph(&files);
    assert!(graph.len() > 10, "the walk found too few modules: {:?}", graph.keys());
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles between sensor/src modules:\n{}", describe(&graph, &cycles));
}

/// The cycle finder itself: a cycle through three modules is found, test code is not an import.
#[test]
fn a_cycle_is_found_and_test_code_is_not_an_import() {
    let files: Vec<(String, String)> = [
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n"),
        ("a.rs", "use crate::{b::X, d};\n// crate::c in a comment\nconst S: &str = \"crate::c\";\n"),
        ("b/mod.rs", "mod inner;\n#[cfg(test)]\nmod tests;\n"),
        ("b/inner.rs", "fn f() { super::super::c::g(); }\n"),
        ("b/tests.rs", "use crate::d;\n"),
        ("c.rs", "pub fn g() { crate::a::h() }\n#[cfg(test)]\nmod tests {\n    use crate::d::{x, y};\n}\n"),
        ("d.rs", "#[cfg(test)]\nfn t() { crate::a::h(); }\npub fn x() {}\n"),
    ]
    .into_iter()
    .map(|(p, s)| (p.to_owned(), s.to_owned()))
    .collect();
    let graph = module_graph(&files);
    let cycles = cycles(&graph);
    assert_eq!(cycles, vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]], "{graph:?}");
    assert_eq!(graph["b"]["c"], BTreeSet::from(["b/inner.rs".to_owned()]));
    assert!(!graph.get("d").is_some_and(|m| m.contains_key("a")), "a #[cfg(test)] fn is test code");
    assert!(!graph["c"].contains_key("d"), "a #[cfg(test)] mod is test code");
    assert!(!graph.get("b").is_some_and(|m| m.contains_key("d")), "tests.rs of b is test code");
    let text = describe(&graph, &cycles);
    assert!(text.contains("a -> b (a.rs)"), "{text}");
}

/// Every `.rs` file below `src`, as (path relative to `src`, text).
fn read_tree(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("below src").to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file (`enrich/process_table/seed.rs` → `enrich`, `process_table`,
/// `seed`; `enrich/mod.rs` → `enrich`; `lib.rs` → nothing).
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// Where the files of a module's children live (`a/mod.rs`, `a.rs` → `a/`; `lib.rs` → ``).
fn children_dir(rel: &str) -> String {
    let path = module_path(rel);
    if path.is_empty() { String::new() } else { format!("{}/", path.join("/")) }
}

fn module_graph(files: &[(String, String)]) -> Graph {
    let code: Vec<(String, String)> =
        files.iter().map(|(p, s)| (p.clone(), strip_test_items(&blank(s)))).collect();
    let top: BTreeSet<String> =
        files.iter().filter_map(|(p, _)| module_path(p).first().cloned()).filter(|m| m != "main").collect();
    // Files of `#[cfg(test)] mod x;` declarations (and everything below them).
    let mut test_prefixes = Vec::new();
    for (p, s) in files {
        for name in test_mod_decls(&blank(s)) {
            let dir = children_dir(p);
            test_prefixes.push(format!("{dir}{name}.rs"));
            test_prefixes.push(format!("{dir}{name}/"));
        }
    }
    let mut graph = Graph::new();
    for (rel, text) in &code {
        let path = module_path(rel);
        let Some(from) = path.first() else { continue };
        if from == "main" || test_prefixes.iter().any(|t| rel.starts_with(t.as_str())) {
            continue;
        }
        for to in references(text, &path) {
            if &to != from && top.contains(&to) {
                graph.entry(from.clone()).or_default().entry(to).or_default().insert(rel.clone());
            }
        }
    }
    graph
}

/// The source with comments and the contents of string and char literals blanked out (lengths
/// and newlines kept), so only code is left.
fn blank(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let keep_nl = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep_nl(b[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(b, i) {
            // r"…", r#"…"#, br"…": up to the quote and as many hashes.
            let open = b[i..].iter().position(|&c| c == b'"').expect("quote") + 1;
            out.extend(std::iter::repeat_n(b' ', open));
            i += open;
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            while i < b.len() && !b[i..].starts_with(&close) {
                out.push(keep_nl(b[i]));
                i += 1;
            }
            out.extend(std::iter::repeat_n(b' ', close.len().min(b.len() - i)));
            i += close.len();
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                let n = if b[i] == b'\\' { 2 } else { 1 };
                for _ in 0..n.min(b.len() - i) {
                    out.push(keep_nl(b[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' && char_literal_len(&b[i..]).is_some() {
            let n = char_literal_len(&b[i..]).expect("checked");
            out.extend(std::iter::repeat_n(b' ', n));
            i += n;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out.truncate(b.len());
    String::from_utf8_lossy(&out).into_owned()
}

/// `Some(hashes)` when a raw (byte) string literal starts at `i`.
fn raw_string_start(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    (b.get(j + hashes) == Some(&b'"')).then_some(hashes)
}

/// Length of a char literal at the start of `b` (`'a'`, `'\n'`, `'\u{1F600}'`, `'é'`), or
/// `None` for a lifetime.
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let end = b[2..].iter().take(12).position(|&c| c == b'\'')?;
        return Some(end + 3);
    }
    let s = std::str::from_utf8(&b[1..b.len().min(6)])
        .unwrap_or_else(|e| std::str::from_utf8(&b[1..1 + e.valid_up_to()]).expect("valid prefix"));
    let c = s.chars().next()?;
    (s[c.len_utf8()..].starts_with('\'')).then(|| c.len_utf8() + 2)
}

/// Names of `#[cfg(test)] mod x;` declarations.
fn test_mod_decls(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = skip_attributes(rest);
        let words: Vec<&str> = item.split_whitespace().take(3).collect();
        let name_at = match words.as_slice() {
            ["mod", ..] => 1,
            [vis, "mod", ..] if vis.starts_with("pub") => 2,
            _ => continue,
        };
        if let Some(name) = words.get(name_at).and_then(|w| w.strip_suffix(';')) {
            names.push(name.to_owned());
        } else if words.get(name_at + 1) == Some(&";") {
            names.push(words[name_at].to_owned());
        }
    }
    names
}

fn skip_attributes(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if !s.starts_with("#[") {
            return s;
        }
        let mut depth = 0;
        for (i, c) in s.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        s = &s[i + 1..];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
}

/// The code with every `#[cfg(test)]` item blanked: up to its `;` or its closing brace.
fn strip_test_items(code: &str) -> String {
    let mut out = code.to_owned();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|a| a + from) {
        let b = out.as_bytes();
        let mut i = at;
        let mut depth = 0usize;
        let mut opened = false;
        while i < b.len() {
            match b[i] {
                b'{' => {
                    depth += 1;
                    opened = true;
                }
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if opened && depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if !opened && depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let blanked: String = out[at..i].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
        out.replace_range(at..i, &blanked);
        from = at + blanked.len();
    }
    out
}

/// Top-level modules named by `crate::…` paths (each name of a `crate::{…}` group) and by
/// `super::…` paths that climb out of the file's top-level module, in the code of the module at
/// `path`.
fn references(code: &str, path: &[String]) -> BTreeSet<String> {
    let b = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let ident_at = |i: usize| {
        let end = b[i..].iter().position(|&c| !is_ident(c)).map_or(b.len(), |n| i + n);
        &code[i..end]
    };
    let skip_ws = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    // After `word` at `i` and `::`: where the next path segment starts.
    let after = |i: usize, word: &str| -> Option<usize> {
        let j = skip_ws(i + word.len());
        code[j..].starts_with("::").then(|| skip_ws(j + 2))
    };
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b'$') {
            i += 1;
            continue;
        }
        let start = if code[i..].starts_with("crate") {
            after(i, "crate")
        } else if code[i..].starts_with("super") {
            // `super` in `a/b.rs` (path a, b) is `a`; in `a/mod.rs` (path a) the crate root.
            let mut ups = 0;
            let mut j = i;
            let mut next = None;
            while code[j..].starts_with("super") {
                let Some(k) = after(j, "super") else { break };
                ups += 1;
                j = k;
                next = Some(k);
            }
            next.filter(|_| ups >= path.len())
        } else {
            None
        };
        let Some(mut j) = start else {
            i += 1;
            continue;
        };
        if b.get(j) == Some(&b'{') {
            // A group: the first name of each element at depth one.
            let mut depth = 0;
            let mut expect_name = true;
            while j < b.len() {
                match b[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => expect_name = true,
                    c if depth == 1 && expect_name && is_ident(c) => {
                        out.insert(ident_at(j).to_owned());
                        expect_name = false;
                    }
                    c if depth == 1 && !c.is_ascii_whitespace() => expect_name = false,
                    _ => {}
                }
                j += 1;
            }
        } else if b.get(j).is_some_and(|&c| is_ident(c)) {
            out.insert(ident_at(j).to_owned());
        }
        i = j.max(i + 1);
    }
    out
}

/// Strongly connected components with more than one module, each sorted, in name order.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph.keys().chain(graph.values().flat_map(BTreeMap::keys)).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in graph.get(&n).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reachable[n].contains(*n) {
            continue;
        }
        let comp: Vec<String> = nodes
            .iter()
            .filter(|m| reachable[n].contains(**m) && reachable[**m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        done.extend(comp.iter().cloned());
        out.push(comp);
    }
    out
}

/// Each cycle with the imports inside it and the files that make them.
fn describe(graph: &Graph, cycles: &[Vec<String>]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for comp in cycles {
        let _ = writeln!(s, "cycle: {}", comp.join(", "));
        for from in comp {
            for (to, files) in graph.get(from).into_iter().flatten() {
                if comp.contains(to) {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    let _ = writeln!(s, "  {from} -> {to} ({})", files.join(", "));
                }
            }
        }
    }
    s
}
