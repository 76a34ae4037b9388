//! The README's flag tables against a binary's `--help`: every flag `--help` lists is in a table
//! row with the same environment variable and the same default, and every row names a flag the
//! binary has. Shared by the server's tests (`tests/server/readme.rs`) and the load generator's
//! (`loadgen/tests/readme/mod.rs` includes this file by path), so both binaries are held to one
//! rule.
//!
//! `--help` is clap's: a flag line (`  -c, --connections <N>`, indented at most 6 spaces), then
//! its description, with `[env: NAME=]` and `[default: VALUE]` at its end (on the same line, or
//! on lines of their own when the description has paragraphs). A README table is a Markdown
//! table whose header has `flag`, `env` and `default` columns; each row belongs to the headings
//! above it. The default cell must hold the help's default as a code span (`` `1MiB` ``, words
//! after it are free); for a flag `--help` shows no default for, the cell must not start with a
//! code span (it says `none`, `off`, `required`, or what is used instead).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// One flag as `--help` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpFlag {
    /// The long name, without dashes (`connect-rate`).
    pub name: String,
    /// The environment variable (`[env: NAME=]`).
    pub env: Option<String>,
    /// The default (`[default: VALUE]`).
    pub default: Option<String>,
}

/// A row of a README flag table, with the headings (`#` to `####`) it is under.
#[derive(Debug, Clone)]
pub struct ReadmeRow {
    /// The headings in force, outermost first.
    pub headings: Vec<String>,
    /// The long flag names the flag cell names (`--a X`, `-b`, `--c`: `a`, `c`).
    pub flags: Vec<String>,
    /// The env cell.
    pub env: String,
    /// The default cell.
    pub default: String,
    /// The line number in the README, for messages.
    pub line: usize,
}

/// Runs `binary` with `args` and `--help`, with no `SSE_*` variable inherited (a set variable
/// would show in `[env: NAME=VALUE]`), and returns what it printed.
pub fn help_text(binary: &Path, args: &[&str]) -> String {
    let mut command = Command::new(binary);
    command.args(args).arg("--help");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SSE_") {
            command.env_remove(name);
        }
    }
    let output = command.output().expect("run the binary's --help");
    assert!(output.status.success(), "{binary:?} {args:?} --help failed");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The subcommands a `Commands:` section lists (`help` left out).
pub fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// The flags of a `--help` text, `--help` and `--version` left out.
pub fn help_flags(help: &str) -> Vec<HelpFlag> {
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let is_flag_line = indent > 0 && indent <= 6 && line.trim_start().starts_with('-');
        if is_flag_line {
            if let Some(name) = long_names(line).into_iter().next() {
                // The description may follow on the same line.
                flags.push((name, format!("{line} ")));
                continue;
            }
        }
        if indent == 0 && !line.is_empty() {
            // A new section (`Exit status:`): the last flag's text has ended.
            flags.push((String::new(), String::new()));
        } else if let Some((_, text)) = flags.last_mut() {
            text.push_str(line);
            text.push(' ');
        }
    }
    flags
        .into_iter()
        .filter(|(name, _)| !name.is_empty() && name != "help" && name != "version")
        .map(|(name, text)| HelpFlag {
            name,
            env: bracketed(&text, "[env: ").map(|env| env.split('=').next().unwrap().to_owned()),
            default: bracketed(&text, "[default: "),
        })
        .collect()
}

/// What follows `open` up to the next `]`.
fn bracketed(text: &str, open: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_owned())
}

/// The long flag names in `text`: each `--name` (letters, digits, dashes).
pub fn long_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after.len());
        if end > 0 {
            names.push(after[..end].to_owned());
        }
        rest = &after[end..];
    }
    names
}

/// Every row of every flag table of `readme`.
pub fn readme_rows(readme: &str) -> Vec<ReadmeRow> {
    let mut rows = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut columns: Option<(usize, usize, usize)> = None;
    let mut in_code = false;
    for (index, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(level) = heading_level(line) {
            headings.retain(|(outer, _)| *outer < level);
            headings.push((level, line.to_owned()));
            columns = None;
            continue;
        }
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells
            .iter()
            .all(|cell| cell.chars().all(|c| "-: ".contains(c)))
        {
            continue; // the separator row
        }
        let Some((flag, env, default)) = columns else {
            let find = |name: &str| cells.iter().position(|cell| *cell == name);
            columns = find("flag")
                .zip(find("env"))
                .zip(find("default"))
                .map(|((f, e), d)| (f, e, d));
            continue;
        };
        let cell = |i: usize| cells.get(i).copied().unwrap_or_default().to_owned();
        rows.push(ReadmeRow {
            headings: headings.iter().map(|(_, h)| h.clone()).collect(),
            flags: long_names(&cell(flag)),
            env: cell(env),
            default: cell(default),
            line: index + 1,
        });
    }
    rows
}

/// `Some(n)` for a Markdown heading of level `n`.
fn heading_level(line: &str) -> Option<usize> {
    let level = line.chars().take_while(|&c| c == '#').count();
    (level > 0 && line[level..].starts_with(' ')).then_some(level)
}

/// What is wrong between the flags of one `--help` (`what` names it in messages) and the README
/// rows that document it: a flag with no row, a row whose env or default differs, a flag with
/// no environment twin, and a row naming a flag the help does not have.
pub fn mismatches(what: &str, flags: &[HelpFlag], rows: &[&ReadmeRow]) -> Vec<String> {
    let mut problems = Vec::new();
    for flag in flags {
        let name = &flag.name;
        let Some(row) = rows.iter().find(|row| row.flags.contains(name)) else {
            problems.push(format!(
                "{what}: --{name} is in --help but in no README row"
            ));
            continue;
        };
        let at = format!("{what}: --{name} (README line {})", row.line);
        match &flag.env {
            None => problems.push(format!("{at}: --help shows no environment variable")),
            Some(env) if !row.env.contains(&format!("`{env}`")) => problems.push(format!(
                "{at}: env is {env} in --help, {:?} in the README",
                row.env
            )),
            Some(_) => {}
        }
        match &flag.default {
            Some(default) if !row.default.starts_with(&format!("`{default}`")) => {
                problems.push(format!(
                    "{at}: default is {default} in --help, {:?} in the README",
                    row.default
                ))
            }
            None if row.default.starts_with('`') => problems.push(format!(
                "{at}: --help shows no default, the README shows {:?}",
                row.default
            )),
            _ => {}
        }
    }
    for row in rows {
        for name in &row.flags {
            if !flags.iter().any(|flag| &flag.name == name) {
                problems.push(format!(
                    "{what}: README line {} documents --{name}, which --help does not list",
                    row.line
                ));
            }
        }
    }
    problems
}

/// Reads the workspace's README.md.
pub fn workspace_readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"))
}
