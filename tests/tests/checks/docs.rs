//! Every section reference in the code opens a section of a doc in the repository: a section
//! sign is cited as `docs/<name>.md` followed by it and a number (a heading numbered so) or a
//! name (a heading containing it), all on one line, and that file has that heading. The contract
//! and Vexora's API are cited by their file under `docs/`, never by a page outside the repository.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The section sign, written as an escape so this file holds no reference of its own.
const SECTION: char = '\u{a7}';

/// Rust sources live under these folders, Python under those.
const RUST_DIRS: [&str; 6] = [
    "shared",
    "functions",
    "tools",
    "simulation",
    "tests",
    "fuzz",
];
const PYTHON_DIRS: [&str; 2] = ["scripts", "bench"];

/// Docs that must be cited by their path under `docs/` (the contract's old citation,
/// `contract` and a colon, is refused too).
const DOCS_CITED_BY_PATH: [&str; 2] = ["contract.md", "vexora-api.md"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir` whose name ends in `.ext`, build outputs and virtualenvs left out.
fn sources(dir: &Path, ext: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with(".venv") {
                sources(&path, ext, found);
            }
        } else if path.extension().is_some_and(|e| e == ext) {
            found.push(path);
        }
    }
}

/// A doc's Markdown headings (outside code fences), lower-cased, without backticks, with single
/// spaces.
fn headings(doc: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !fenced && (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            found.push(normalized(&line[hashes..]));
        }
    }
    found
}

fn normalized(text: &str) -> String {
    text.replace('`', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The cited section: a number, or a name that a heading must contain.
#[derive(Debug)]
enum Section {
    Number(String),
    Name(String),
}

impl Section {
    /// What follows a section sign: digits, a backticked name, or a name ended on the same line
    /// by `)`, `,`, `;`, `:` or `.`.
    fn parse(after: &str) -> Result<Self, String> {
        let text = after.trim_start();
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return Ok(Self::Number(digits));
        }
        let name = if let Some(quoted) = text.strip_prefix('`') {
            quoted
                .find('`')
                .map(|end| &quoted[..end])
                .ok_or("its backticked name does not close on the line")?
        } else {
            text.find([')', ',', ';', ':', '.'])
                .map(|end| &text[..end])
                .ok_or(
                    "its section name runs past the end of the line (keep a reference on one line)",
                )?
        };
        let name = normalized(name);
        if name.is_empty() {
            return Err("it names no section".into());
        }
        Ok(Self::Name(name))
    }

    fn is_in(&self, headings: &[String]) -> bool {
        headings.iter().any(|h| match self {
            Self::Number(n) => h
                .trim_start_matches(SECTION)
                .trim_start()
                .strip_prefix(n.as_str())
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit())),
            Self::Name(name) => h.contains(name.as_str()),
        })
    }
}

/// The docs paths cited on a line: where each ends, and the path.
fn cited_docs(line: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (start, _) in line.match_indices("docs/") {
        let rest = &line[start + "docs/".len()..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if name_len > 0 && rest[name_len..].starts_with(".md") {
            let end = start + "docs/".len() + name_len + ".md".len();
            found.push((end, line[start..end].to_owned()));
        }
    }
    found
}

/// Every problem with the references on one line.
fn problems(line: &str, docs: &mut BTreeMap<String, Option<Vec<String>>>) -> Vec<String> {
    let mut problems = Vec::new();
    let cited = cited_docs(line);
    let mut headings_of = |doc: &str| {
        docs.entry(doc.to_owned())
            .or_insert_with(|| {
                fs::read_to_string(root().join(doc))
                    .ok()
                    .map(|d| headings(&d))
            })
            .clone()
    };
    for (_, doc) in &cited {
        if headings_of(doc).is_none() {
            problems.push(format!("{doc} is not a file in the repository"));
        }
    }
    for (at, _) in line.match_indices(SECTION) {
        let Some((_, doc)) = cited.iter().rev().find(|(end, _)| *end <= at) else {
            problems.push("a section sign names no docs/<name>.md before it on its line".into());
            continue;
        };
        match Section::parse(&line[at + SECTION.len_utf8()..]) {
            Err(why) => problems.push(format!("a section of {doc}: {why}")),
            Ok(section) => {
                if let Some(headings) = headings_of(doc)
                    && !section.is_in(&headings)
                {
                    problems.push(format!("{doc} has no heading for {section:?}"));
                }
            }
        }
    }
    for name in DOCS_CITED_BY_PATH {
        for (at, _) in line.match_indices(name) {
            if !line[..at].ends_with("docs/") {
                problems.push(format!("{name} is cited without its path docs/{name}"));
            }
        }
    }
    if line.contains("contract:") {
        problems.push("the contract is cited as `contract:`, not by docs/contract.md".into());
    }
    problems
}

#[test]
fn every_section_reference_in_the_code_opens_a_section_of_a_doc_in_the_repo() {
    let root = root();
    let mut files = Vec::new();
    for dir in RUST_DIRS {
        sources(&root.join(dir), "rs", &mut files);
    }
    for dir in PYTHON_DIRS {
        sources(&root.join(dir), "py", &mut files);
    }
    files.retain(|f| !f.ends_with("tests/tests/checks/docs.rs"));
    files.sort();
    assert!(files.len() > 50, "the sources were found: {files:?}");

    let mut docs = BTreeMap::new();
    let mut failures = Vec::new();
    let mut sections = 0;
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (i, line) in text.lines().enumerate() {
            sections += line.matches(SECTION).count();
            for problem in problems(line, &mut docs) {
                failures.push(format!("{shown}:{}: {problem}\n    {}", i + 1, line.trim()));
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} reference(s) do not open a section of a doc in the repository:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sections > 20, "the references were found ({sections})");
}
