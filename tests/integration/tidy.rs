//! Rules about the source tree, checked as ordinary tests (in the manner of rust-analyzer's `tidy.rs`): each is phrased as something that must be absent.
//!
//! docs/ARCHITECTURE.md states each rule and names the test here that
//! enforces it. The checks read the files as text; they need no build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The host's layers, lowest first, and the modules each may import
/// (`crate::<module>`). A module imports nothing else of the crate.
/// `lib.rs` is the crate root and wires the layers together.
const LAYERS: &[(&str, &[&str])] = &[
    // Leaves: pure, no I/O beyond their own purpose, no Wasm, no sockets.
    ("limits", &[]),
    ("pause", &[]),
    ("router", &[]),
    ("fsutil", &[]),
    ("http", &["limits"]),
    // Configuration and storage.
    ("config", &["router", "limits"]),
    ("storage", &[]),
    ("sessions", &["storage"]),
    // The sandbox (the Wasm runtime) and static files.
    (
        "sandbox",
        &[
            "config", "storage", "sessions", "fsutil", "http", "limits", "pause",
        ],
    ),
    ("static_files", &["http", "limits"]),
    // The network layer: sockets, event loop, admission, workers. It knows
    // the application only through its own `Handler` trait.
    ("net", &["http", "limits", "pause"]),
    // The application layer: what a request means.
    (
        "app",
        &[
            "http",
            "router",
            "config",
            "sandbox",
            "static_files",
            "sessions",
            "storage",
            "limits",
            "net",
        ],
    ),
    // Control: deploy, swap, rollback, watcher, admin API, supervisor.
    (
        "control",
        &[
            "app", "config", "sandbox", "fsutil", "net", "http", "limits", "storage", "sessions",
            "router",
        ],
    ),
];

/// External crates a layer must never name: the leaves and the network
/// layer are built and tested without the Wasm runtime or the database.
const FORBIDDEN_CRATES: &[(&str, &[&str])] = &[
    ("limits", &["wasmtime", "mio", "rusqlite", "redis"]),
    ("router", &["wasmtime", "mio", "rusqlite", "redis"]),
    ("fsutil", &["wasmtime", "mio", "rusqlite", "redis"]),
    (
        "http",
        &["wasmtime", "mio", "rusqlite", "redis", "threadpool"],
    ),
    ("config", &["wasmtime", "mio", "rusqlite", "redis"]),
    ("static_files", &["wasmtime", "mio", "rusqlite", "redis"]),
    ("net", &["wasmtime", "rusqlite", "redis"]),
    ("storage", &["wasmtime", "mio"]),
    ("sessions", &["wasmtime", "mio", "rusqlite", "redis"]),
    // The sandbox and the application reach storage through its trait only.
    ("sandbox", &["mio", "rusqlite", "redis", "r2d2"]),
    ("app", &["rusqlite", "redis", "r2d2"]),
];

/// The only files that may write an HTTP status code as a number: each
/// layer's status table (and the HTTP layer's reason phrases).
const STATUS_TABLES: &[&str] = &[
    "host/src/http/error.rs",
    "host/src/http/error_page.rs",
    "host/src/http/response.rs",
    "host/src/net/status.rs",
    "host/src/app/failure.rs",
    "host/src/static_files/refusal.rs",
    "host/src/control/admin/status.rs",
];

/// The only file that may contain `unsafe` code.
const UNSAFE_ALLOWED: &[&str] = &["guest-sdk/src/ffi.rs"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_owned()
}

/// Every `.rs` file below `dir` (relative to the workspace), skipping build output.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace().join(dir), &mut out);
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The code of a file without comments, string and character contents, and
/// the trailing `#[cfg(test)] mod tests` (tests may name anything).
fn code_of(text: &str) -> String {
    without_test_modules(&strip_comments_and_literals(text))
}

/// The text with every `#[cfg(test)] mod name { … }` (or `mod name;`) removed.
fn without_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = test_module_start(&out) {
        let rest = &out[at..];
        let end = match (rest.find('{'), rest.find(';')) {
            (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                let mut depth = 0usize;
                let mut end = rest.len();
                for (i, c) in rest[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (_, Some(semi)) => semi + 1,
            _ => rest.len(),
        };
        out.replace_range(at..at + end, "");
    }
    out
}

/// The text without comments and with string and character contents emptied.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let ident = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        // Raw strings: r"..", r#".."#.
        if c == 'r' && !ident(i.checked_sub(1).and_then(|p| chars.get(p))) {
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) == Some(&'"') {
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                i += 2 + hashes;
                while i < chars.len() && !chars[i..].starts_with(&close) {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
                continue;
            }
        }
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
            continue;
        }
        // Character literals ('x', '\n', '\''); a lifetime has no closing quote.
        if c == '\'' {
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
                continue;
            }
            if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Where a file's `#[cfg(test)] mod ...` begins, if it has one.
fn test_module_start(text: &str) -> Option<usize> {
    text.match_indices("#[cfg(test)]").find_map(|(at, marker)| {
        let after = text[at + marker.len()..].trim_start();
        after.starts_with("mod ").then_some(at)
    })
}

/// The top-level module of a crate a file belongs to (`host/src/net/socket.rs`
/// → `net`); `None` for the crate root.
fn module_in(src: &str, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(workspace().join(src)).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

fn module_of(file: &Path) -> Option<String> {
    module_in("host/src", file)
}

/// The crate modules a file's code names as `crate::<module>` (including
/// `use crate::{a, b::c}` groups).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            // `wasmhost_crate::`, or `$crate::` in a macro: a path resolved
            // where the macro expands, not an import of this module.
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Module → modules it imports (with the files that do), over every file of
/// the crate whose sources are in `src`.
fn import_graph(src: &str) -> Graph {
    let mut graph: Graph = BTreeMap::new();
    for file in rust_files(src) {
        let Some(module) = module_in(src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let entry = graph.entry(module.clone()).or_default();
        for import in crate_imports(&code_of(&text)) {
            if import != module {
                entry.entry(import).or_default().push(relative(&file));
            }
        }
    }
    graph
}

fn host_import_graph() -> Graph {
    import_graph("host/src")
}

/// The first import cycle of a graph, if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_layer_imports_a_layer_its_rule_does_not_allow() {
    let rules: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut violations = Vec::new();
    for (module, imports) in host_import_graph() {
        let Some(allowed) = rules.get(module.as_str()) else {
            violations.push(format!(
                "host/src/{module} is in no layer: add it to LAYERS and to docs/ARCHITECTURE.md"
            ));
            continue;
        };
        for (import, files) in imports {
            if !allowed.contains(&import.as_str()) {
                violations.push(format!(
                    "{module} may not import {import} (in {})",
                    files.join(", ")
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer rule broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_import_cycle_between_the_hosts_modules() {
    if let Some(cycle) = find_cycle(&host_import_graph()) {
        panic!("import cycle in the host: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_import_cycle_between_the_guest_sdks_modules() {
    if let Some(cycle) = find_cycle(&import_graph("guest-sdk/src")) {
        panic!("import cycle in guest-sdk: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_other_sdk_module_is_imported_by_the_ffi_module() {
    let graph = import_graph("guest-sdk/src");
    let imports: Vec<&String> = graph
        .get("ffi")
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
    assert!(
        imports.is_empty(),
        "guest-sdk/src/ffi.rs holds the unsafe code and must import nothing else of the SDK, but imports {imports:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let graph = |edges: &[(&str, &str)]| -> Graph {
        let mut g: Graph = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned(), Vec::new());
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}

#[test]
fn no_low_layer_names_the_wasm_runtime_the_socket_layer_or_the_database() {
    let rules: BTreeMap<&str, &[&str]> = FORBIDDEN_CRATES.iter().copied().collect();
    let mut violations = Vec::new();
    for file in rust_files("host/src") {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let Some(forbidden) = rules.get(module.as_str()) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("readable source"));
        for name in *forbidden {
            if code.contains(&format!("{name}::")) {
                violations.push(format!("{} names {name}", relative(&file)));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Whether a line of code writes a status code as a number: `Response::new(404)`,
/// `error_page(503, ..)`, `status == 301`, `status: 200` and the like.
fn status_literal(line: &str) -> Option<u16> {
    const CALLS: &[&str] = &["Response::new(", "error_page(", "error("];
    const COMPARISONS: &[&str] = &["status ==", "status !=", "status:", "status ="];
    let number = |s: &str| -> Option<u16> {
        let digits: String = s
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: u16 = digits.parse().ok()?;
        (digits.len() == 3 && (100..=599).contains(&n)).then_some(n)
    };
    for marker in CALLS.iter().chain(COMPARISONS) {
        let mut rest = line;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            if let Some(n) = number(rest) {
                return Some(n);
            }
        }
    }
    None
}

#[test]
fn no_status_code_is_chosen_outside_a_status_table() {
    let mut violations = Vec::new();
    for file in rust_files("host/src") {
        let rel = relative(&file);
        // A `tests.rs` is a test module in its own file: tests may name statuses.
        if STATUS_TABLES.contains(&rel.as_str()) || file.ends_with("tests.rs") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("readable source"));
        for (i, line) in code.lines().enumerate() {
            if let Some(n) = status_literal(line) {
                violations.push(format!("{rel}:{}: status {n}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "status codes outside the status tables ({}):\n{}",
        STATUS_TABLES.join(", "),
        violations.join("\n")
    );
}

#[test]
fn the_status_literal_check_sees_what_it_is_meant_to() {
    for (line, found) in [
        ("Response::new(404)", Some(404)),
        ("return Err(error(400, \"x\"))", Some(400)),
        ("if resp.status == 301 {", Some(301)),
        ("Response { status: 200, headers }", Some(200)),
        ("let n = 4096;", None),
        ("Response::new(status)", None),
        ("status: 1000", None),
    ] {
        assert_eq!(status_literal(line), found, "{line}");
    }
}

#[test]
fn no_source_file_lacks_its_opening_doc_line() {
    let mut missing = Vec::new();
    for dir in [
        "host",
        "abi",
        "guest-sdk",
        "guest-web",
        "guest-apps",
        "tests",
        "bench",
        "fuzz",
    ] {
        for file in rust_files(dir) {
            let text = std::fs::read_to_string(&file).expect("readable source");
            if !text.starts_with("//!") {
                missing.push(relative(&file));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files not starting with a `//!` line:\n{}",
        missing.join("\n")
    );
}

/// Whether code uses `unsafe` (a block, fn, impl or attribute).
fn uses_unsafe(code: &str) -> bool {
    code.match_indices("unsafe").any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + "unsafe".len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn no_unsafe_code_outside_the_sdks_ffi_module() {
    let mut violations = Vec::new();
    for dir in [
        "host",
        "abi",
        "guest-sdk",
        "guest-web",
        "guest-apps",
        "fuzz",
    ] {
        for file in rust_files(dir) {
            let rel = relative(&file);
            if UNSAFE_ALLOWED.contains(&rel.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable source");
            // Tests are code too here: no unsafe anywhere else.
            let code = code_of(&text.replace("#[cfg(test)]", "#[cfg(all(test))]"));
            if uses_unsafe(&code) {
                violations.push(rel);
            }
        }
    }
    assert!(
        violations.is_empty(),
        "unsafe outside {}:\n{}",
        UNSAFE_ALLOWED.join(", "),
        violations.join("\n")
    );
}

#[test]
fn no_unsafe_block_in_the_ffi_module_lacks_its_safety_comment() {
    let text = std::fs::read_to_string(workspace().join(UNSAFE_ALLOWED[0])).expect("ffi.rs");
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if code.contains("unsafe {") {
            let window = &lines[i.saturating_sub(4)..i];
            let commented =
                window.iter().any(|l| l.contains("SAFETY:")) || line.contains("SAFETY:");
            if !commented {
                missing.push(format!("{}:{}", UNSAFE_ALLOWED[0], i + 1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "unsafe blocks without a `// SAFETY:` comment just above:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_plain_and_grouped_imports_but_not_comments() {
    let code = code_of(concat!(
        "use crate::http::Request;\nuse crate::{net, app::Site};\n// use crate::control;\n",
        "let s = \"crate::sandbox \\\" crate::config\";\nlet c = '\"'; let r = r#\"crate::storage\"#;\n",
        "fn f<'a>(x: &'a str) { crate::router::x(); }\n/* crate::fsutil */ $crate::sandbox::x!();\n",
        "#[cfg(test)]\nmod tests { fn t() { use crate::control; } }\n",
        "use crate::storage::after_the_tests;\n",
    ));
    let found = crate_imports(&code);
    let expected: BTreeSet<String> = ["http", "net", "app", "router", "storage"]
        .map(String::from)
        .into();
    assert_eq!(found, expected);
}
