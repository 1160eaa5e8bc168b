//! The check that [`super::ALL`] is what `infra/` deploys: a reader for the subset of HCL
//! the `aws_dynamodb_table` resources use (one-line arguments and nested blocks), which
//! fails loudly on anything else rather than guess, and a comparison of the two shapes.
//! No emulator and no Terraform binary needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{ALL, Table};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A block body: its one-line arguments (value text as written) and nested blocks.
#[derive(Debug, Default)]
struct Block {
    args: BTreeMap<String, String>,
    blocks: Vec<(String, Block)>,
}

impl Block {
    fn nested<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, b)| b)
    }
}

/// The line without its comment, and the brace depth change, ignoring both inside
/// strings (which hold `${...}` and `/*`).
fn scan(line: &str) -> (&str, i32) {
    let (mut depth, mut in_string, mut escaped) = (0, false, false);
    let bytes = line.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'#' => return (&line[..i], depth),
            b'/' if bytes.get(i + 1) == Some(&b'/') => return (&line[..i], depth),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                panic!("block comments are not read: {line}")
            }
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {}
        }
    }
    (line, depth)
}

/// The body of every `resource "aws_dynamodb_table" "<name>"` in `text`.
fn tables_in(text: &str) -> BTreeMap<String, Block> {
    let mut tables = BTreeMap::new();
    let mut lines = text.lines();
    let mut depth = 0;
    while let Some(line) = lines.next() {
        let (code, change) = scan(line);
        if let Some(marker) = code.split("<<").nth(1) {
            // A heredoc (elsewhere in the module): skip to its closing word.
            let word = marker.trim_start_matches('-').trim();
            lines.by_ref().find(|l| l.trim() == word);
            continue;
        }
        let header = code
            .trim()
            .strip_prefix("resource \"aws_dynamodb_table\" \"");
        match header.and_then(|h| h.strip_suffix("\" {")) {
            Some(name) if depth == 0 => {
                let body = read_body(&mut lines, name);
                assert!(
                    tables.insert(name.to_owned(), body).is_none(),
                    "aws_dynamodb_table.{name} declared twice"
                );
            }
            _ => depth += change,
        }
    }
    tables
}

/// Reads a block body up to its closing brace.
fn read_body<'a>(lines: &mut impl Iterator<Item = &'a str>, context: &str) -> Block {
    let mut body = Block::default();
    while let Some(line) = lines.next() {
        let (code, change) = scan(line);
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        if code == "}" {
            return body;
        }
        if let Some(name) = code.strip_suffix('{') {
            let name = name.trim().to_owned();
            let nested = read_body(lines, &format!("{context}.{name}"));
            body.blocks.push((name, nested));
            continue;
        }
        let (key, value) = code
            .split_once('=')
            .unwrap_or_else(|| panic!("{context}: not an argument: {line}"));
        assert_eq!(
            change, 0,
            "{context}: multi-line values are not read: {line}"
        );
        body.args
            .insert(key.trim().to_owned(), value.trim().to_owned());
    }
    panic!("{context}: no closing brace")
}

/// A literal string argument without its quotes; any other expression as written.
fn literal(value: &str) -> String {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.contains("${"))
        .unwrap_or(value)
        .to_owned()
}

/// What the Rust definition and the Terraform must agree on.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    name: String,
    billing_mode: String,
    hash_key: String,
    range_key: Option<String>,
    attributes: BTreeMap<String, String>,
    /// Index name to its arguments (keys, projection, anything else written).
    indexes: BTreeMap<String, BTreeMap<String, String>>,
    ttl: Option<String>,
}

/// Arguments and blocks of a table resource that are deployment concerns, not shape.
const DEPLOYMENT_ARGS: [&str; 1] = ["deletion_protection_enabled"];
const DEPLOYMENT_BLOCKS: [&str; 2] = ["point_in_time_recovery", "server_side_encryption"];
const SHAPE_ARGS: [&str; 4] = ["name", "billing_mode", "hash_key", "range_key"];
const SHAPE_BLOCKS: [&str; 3] = ["attribute", "global_secondary_index", "ttl"];

fn shape_of_terraform(resource: &str, body: &Block) -> Shape {
    for arg in body.args.keys() {
        assert!(
            SHAPE_ARGS.contains(&arg.as_str()) || DEPLOYMENT_ARGS.contains(&arg.as_str()),
            "aws_dynamodb_table.{resource}: argument {arg} is not compared with tables.rs; \
             model it there (or list it as a deployment concern here)"
        );
    }
    for (block, _) in &body.blocks {
        assert!(
            SHAPE_BLOCKS.contains(&block.as_str()) || DEPLOYMENT_BLOCKS.contains(&block.as_str()),
            "aws_dynamodb_table.{resource}: block {block} is not compared with tables.rs"
        );
    }
    let arg = |b: &Block, k: &str| b.args.get(k).map(|v| literal(v));
    let attributes = body
        .nested("attribute")
        .map(|a| (arg(a, "name").unwrap(), arg(a, "type").unwrap()))
        .collect();
    let indexes = body
        .nested("global_secondary_index")
        .map(|g| {
            let mut args: BTreeMap<String, String> = g
                .args
                .iter()
                .map(|(k, v)| (k.clone(), literal(v)))
                .collect();
            (args.remove("name").unwrap(), args)
        })
        .collect();
    let ttl = body
        .nested("ttl")
        .find(|t| arg(t, "enabled").as_deref() == Some("true"))
        .map(|t| arg(t, "attribute_name").unwrap());
    Shape {
        name: body.args["name"].clone(),
        billing_mode: arg(body, "billing_mode").unwrap_or_else(|| "PROVISIONED".into()),
        hash_key: arg(body, "hash_key").unwrap(),
        range_key: arg(body, "range_key"),
        attributes,
        indexes,
        ttl,
    }
}

fn shape_of_rust(t: &Table) -> Shape {
    let indexes = t
        .indexes
        .iter()
        .map(|i| {
            let mut args = BTreeMap::from([
                ("hash_key".to_owned(), i.hash_key.to_owned()),
                ("projection_type".to_owned(), "ALL".to_owned()),
            ]);
            if let Some(range) = i.range_key {
                args.insert("range_key".to_owned(), range.to_owned());
            }
            (i.name.to_owned(), args)
        })
        .collect();
    Shape {
        // How TableNames::with_prefix names it.
        name: format!("\"${{var.name_prefix}}-{}\"", t.resource),
        billing_mode: "PAY_PER_REQUEST".into(),
        hash_key: t.hash_key.into(),
        range_key: t.range_key.map(Into::into),
        attributes: t
            .attributes
            .iter()
            .map(|(n, ty)| ((*n).to_owned(), ty.as_str().to_owned()))
            .collect(),
        indexes,
        ttl: t.ttl.map(Into::into),
    }
}

fn infra_text() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap() + "\n")
        .collect()
}

/// The differences between the Rust tables and the Terraform ones, as messages.
fn disagreements(text: &str) -> Vec<String> {
    let tf = tables_in(text);
    let mut out = Vec::new();
    let ours: BTreeSet<&str> = ALL.iter().map(|t| t.resource).collect();
    let theirs: BTreeSet<&str> = tf.keys().map(String::as_str).collect();
    if ours != theirs {
        out.push(format!(
            "tables: tables.rs has {ours:?}, infra/ has {theirs:?}"
        ));
    }
    for table in ALL {
        if let Some(body) = tf.get(table.resource) {
            let (rust, terraform) = (
                shape_of_rust(&table),
                shape_of_terraform(table.resource, body),
            );
            if rust != terraform {
                out.push(format!(
                    "{}:\n  tables.rs: {rust:?}\n  infra/:    {terraform:?}",
                    table.resource
                ));
            }
        }
    }
    out
}

#[test]
fn the_tables_are_the_ones_infra_deploys() {
    let found = disagreements(&infra_text());
    assert!(
        found.is_empty(),
        "store/dynamodb/tables.rs and infra/ disagree:\n{}",
        found.join("\n")
    );
}

/// The comparison sees what matters: a changed index key, attribute type or TTL in the
/// Terraform is a disagreement.
#[test]
fn a_changed_index_key_type_or_ttl_is_a_disagreement() {
    let text = infra_text();
    for (from, to) in [
        (
            "hash_key        = \"provider\"",
            "hash_key        = \"model\"",
        ),
        (
            "range_key       = \"timestamp\"",
            "range_key       = \"sk\"",
        ),
        (
            "projection_type = \"ALL\"",
            "projection_type = \"KEYS_ONLY\"",
        ),
        (
            "attribute_name = \"expires_at\"",
            "attribute_name = \"expiry\"",
        ),
        (
            "name = \"month\"\n    type = \"S\"",
            "name = \"month\"\n    type = \"N\"",
        ),
    ] {
        assert!(text.contains(from), "infra/ no longer has {from:?}");
        let changed = text.replacen(from, to, 1);
        assert!(
            !disagreements(&changed).is_empty(),
            "changing {from:?} to {to:?} went unnoticed"
        );
    }
}

#[test]
fn strings_keep_their_braces_and_comment_marks() {
    assert_eq!(
        scan(r#"  a = "${x}/*/*" # c { "#),
        (r#"  a = "${x}/*/*" "#, 0)
    );
    assert_eq!(scan(r#"b "c" { // {"#), (r#"b "c" { "#, 1));
    assert_eq!(literal("\"user_id\""), "user_id");
    assert_eq!(literal("\"${var.p}-x\""), "\"${var.p}-x\"");
}
