//! The README against the binary: the load generator's flag tables list every flag of each
//! subcommand's `--help`, with the same environment variable and default, and no flag the
//! subcommand lacks. The rule and its parser are the server's tests' own
//! (`server/tests/util/readme_flags.rs`), included here so both binaries are held to one rule.

use std::path::Path;

#[path = "../../../server/tests/util/readme_flags.rs"]
mod readme_flags;

use readme_flags::{
    ReadmeRow, help_flags, help_text, mismatches, readme_rows, subcommands, workspace_readme,
};

/// The rows documenting `subcommand`: under `### Flags of `sse-loadgen``, in a table whose
/// heading names the subcommand (`` #### `fanout` and `scale` `` serves both).
fn rows_of<'a>(rows: &'a [ReadmeRow], subcommand: &str) -> Vec<&'a ReadmeRow> {
    let named = format!("`{subcommand}`");
    rows.iter()
        .filter(|row| {
            row.headings
                .iter()
                .any(|h| h.starts_with("### Flags of `sse-loadgen`"))
                && row
                    .headings
                    .last()
                    .is_some_and(|h| h.starts_with("#### ") && h.contains(&named))
        })
        .collect()
}

/// Every subcommand's flags are in the README's tables with their `SSE_LOADGEN_*` variable and
/// their default, and every row names a flag the subcommand has. (Issue 15, defect 11: the
/// README claimed env-var twins the load generator did not have, and no table listed its
/// flags.)
#[test]
fn readme_flag_tables_match_every_subcommand_help() {
    let binary = Path::new(env!("CARGO_BIN_EXE_sse-loadgen"));
    let names = subcommands(&help_text(binary, &[]));
    assert_eq!(names, ["watch", "fanout", "scale", "report", "soak"]);
    let readme = workspace_readme();
    let rows = readme_rows(&readme);
    let mut problems = Vec::new();
    for name in &names {
        let flags = help_flags(&help_text(binary, &[name]));
        assert!(!flags.is_empty(), "no flags read from `{name} --help`");
        let documented = rows_of(&rows, name);
        problems.extend(mismatches(
            &format!("sse-loadgen {name}"),
            &flags,
            &documented,
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
