//! The README against the binary: its flags table lists every flag `sse-server --help` shows,
//! with the same environment variable and default, and no flag the binary lacks.

use std::path::Path;

use crate::util::readme_flags::{
    HelpFlag, ReadmeRow, help_flags, help_text, mismatches, readme_rows, workspace_readme,
};

/// The rows of the server's table: under `### Flags` in the `sse-server` API section.
fn server_rows(rows: &[ReadmeRow]) -> Vec<&ReadmeRow> {
    rows.iter()
        .filter(|row| {
            row.headings
                .iter()
                .any(|h| h.starts_with("## HTTP API of `sse-server`"))
                && row
                    .headings
                    .last()
                    .is_some_and(|h| h.starts_with("### Flags"))
        })
        .collect()
}

/// Every flag of `sse-server --help` has a row in the README's flags table with its
/// environment variable and its default, and every row names a real flag. (Issue 15, defect
/// 11: `--history-bytes` was documented as 4MiB while the code said 1MiB, and `--max-topics`
/// was missing.)
#[test]
fn readme_flags_table_matches_the_help() {
    let help = help_text(Path::new(env!("CARGO_BIN_EXE_sse-server")), &[]);
    let flags = help_flags(&help);
    assert!(
        flags.len() >= 25,
        "only {} flags read from:\n{help}",
        flags.len()
    );
    let readme = workspace_readme();
    let rows = readme_rows(&readme);
    let problems = mismatches("sse-server", &flags, &server_rows(&rows));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself fails on each kind of mismatch: a default that differs, a flag with no row,
/// a variable that differs, a default the help does not have, a row for a flag that does not
/// exist; and reads both layouts of clap's help (details on the flag's lines, or after a
/// paragraph).
#[test]
fn readme_flag_check_catches_each_kind_of_mismatch() {
    let help = "Usage: x [OPTIONS]\n\nOptions:\n      --size <SIZE>\n          Bytes [env: X_SIZE=] [default: 1MiB]\n      --wait <WAIT>\n          How long.\n\n          More.\n\n          [env: X_WAIT=]\n          [default: 5s]\n      --name <NAME>\n          A name [env: X_NAME=]\n  -h, --help\n          Print help\n\nExit status:\n  0  fine\n";
    let flags = help_flags(help);
    let flag = |name: &str, env: &str, default: Option<&str>| HelpFlag {
        name: name.into(),
        env: Some(env.into()),
        default: default.map(Into::into),
    };
    assert_eq!(
        flags,
        [
            flag("size", "X_SIZE", Some("1MiB")),
            flag("wait", "X_WAIT", Some("5s")),
            flag("name", "X_NAME", None),
        ]
    );
    let table = |rows: &str| {
        format!(
            "### Flags\n\n| flag | env | default | meaning |\n| --- | --- | --- | --- |\n{rows}"
        )
    };
    let good = "| `--size B` | `X_SIZE` | `1MiB` | bytes |\n| `--wait DUR` | `X_WAIT` | `5s` (or less) | wait |\n| `--name N` | `X_NAME` | none | name |\n";
    let check = |readme: &str| {
        let rows = readme_rows(readme);
        mismatches("x", &flags, &rows.iter().collect::<Vec<_>>())
    };
    assert_eq!(check(&table(good)), Vec::<String>::new());
    for (wrong, want) in [
        (
            good.replace("`1MiB`", "`4MiB`"),
            "default is 1MiB in --help",
        ),
        (
            good.replace("| `--wait DUR` | `X_WAIT` | `5s` (or less) | wait |\n", ""),
            "--wait is in --help but in no README row",
        ),
        (
            good.replace("`X_NAME`", "`X_NAMES`"),
            "env is X_NAME in --help",
        ),
        (
            good.replace("| none |", "| `anon` |"),
            "--help shows no default",
        ),
        (
            format!("{good}| `--gone` | `X_GONE` | none | stale |\n"),
            "documents --gone, which --help does not list",
        ),
    ] {
        let problems = check(&table(&wrong));
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want:?} not in {problems:?}"
        );
    }
}
