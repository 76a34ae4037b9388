//! The command line as clap parses it: options, and their `SSE_LOADGEN_*` twins, reach the
//! settings they configure.

use clap::Parser;
use sse_loadgen::cli::{Cli, Command};
use sse_loadgen::fanout::FanoutReport;

use crate::util::{RealServer, loadgen_with_env};

/// `-H` adds a subscribe header for `fanout` and `scale`, as it does for `watch`.
/// Regression test for issue 15, defect 6 (`-H` worked for `watch` only).
#[test]
fn dash_h_adds_a_header_for_every_subcommand() {
    let table: &[&[&str]] = &[
        &["sse-loadgen", "watch", "http://a/", "-H", "X-A: b"],
        &[
            "sse-loadgen",
            "fanout",
            "--url",
            "http://a/",
            "-H",
            "X-A: b",
        ],
        &["sse-loadgen", "scale", "--url", "http://a/", "-H", "X-A: b"],
    ];
    for args in table {
        let cli = Cli::try_parse_from(*args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let headers = match cli.command {
            Command::Watch(a) => a.headers,
            Command::Fanout(a) => a.run.headers,
            Command::Scale(a) => a.run.headers,
            other => panic!("{other:?}"),
        };
        assert_eq!(headers, [("X-A".to_string(), "b".to_string())], "{args:?}");
    }
}

/// `--url` and `--publish-url` are repeatable and keep their order; one `--url` is one node.
#[test]
fn url_and_publish_url_repeat() {
    let args = [
        "sse-loadgen",
        "fanout",
        "--url",
        "http://a/",
        "--url",
        "http://b/",
    ];
    let more = ["--publish-url", "http://c/", "--publish-url", "http://d/"];
    for (args, urls, publish) in [
        (&args[..4], &["http://a/"][..], &[][..] as &[&str]),
        (&args[..], &["http://a/", "http://b/"], &[]),
        (
            &[&args[..], &more].concat()[..],
            &["http://a/", "http://b/"],
            &["http://c/", "http://d/"],
        ),
    ] {
        let Command::Fanout(a) = Cli::try_parse_from(args).unwrap().command else {
            panic!("{args:?}");
        };
        let s = a.run.settings(1);
        assert_eq!(s.urls, urls, "{args:?}");
        assert_eq!(s.publish_urls, publish, "{args:?}");
    }
}

/// `--server-pid` is repeatable: every pid reaches the settings, in order.
#[test]
fn server_pid_repeats() {
    let args = [
        "sse-loadgen",
        "scale",
        "--url",
        "http://a/",
        "--server-pid",
        "7",
        "--server-pid",
        "9",
    ];
    let Command::Scale(a) = Cli::try_parse_from(args).unwrap().command else {
        panic!("{args:?}");
    };
    assert_eq!(a.run.settings(1).server_pids, [7, 9]);
}

/// The JSON lines a run appended to `path`.
fn reports_in(path: &std::path::Path) -> Vec<FanoutReport> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The `SSE_LOADGEN_*` twins configure a run as their flags do: a fanout set up by variables
/// alone runs against the real server with their values; the command line wins over a
/// variable; a variable's value passes its flag's own check (a payload under the minimum is a
/// usage error). (Issue 15, defect 11: the README claimed twins the load generator lacked.)
#[test]
fn environment_twins_configure_a_run() {
    let server = RealServer::start();
    let dir = std::env::temp_dir().join(format!("sse-loadgen-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("env.jsonl");
    let _ = std::fs::remove_file(&json);
    let url = server.url();
    let env = [
        ("SSE_LOADGEN_URL", url.as_str()),
        ("SSE_LOADGEN_CONNECTIONS", "3"),
        ("SSE_LOADGEN_EVENTS", "2"),
        ("SSE_LOADGEN_SETTLE", "0s"),
        ("SSE_LOADGEN_DRAIN_TIMEOUT", "2s"),
        ("SSE_LOADGEN_QUIET", "1"),
        ("SSE_LOADGEN_LABEL", "from-env"),
        ("SSE_LOADGEN_JSON", json.to_str().unwrap()),
    ];
    for (args, label, connections) in [
        (&["fanout"][..], "from-env", 3),
        (
            &["fanout", "-c", "4", "--label", "from-cli"][..],
            "from-cli",
            4,
        ),
    ] {
        let out = loadgen_with_env(args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        let reports = reports_in(&json);
        let report = reports.last().expect("a JSON line");
        assert_eq!(report.label, label, "{args:?}");
        assert_eq!(report.connections, connections, "{args:?}");
        assert_eq!(report.events, 2, "{args:?}");
        assert_eq!(report.deliveries, 2 * connections, "{args:?}");
    }
    let out = loadgen_with_env(&["fanout"], &[env[0], ("SSE_LOADGEN_PAYLOAD", "10")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--payload") && stderr.contains("63"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--overload`, `--overload-in-flight` and `--overload-drain` reach the settings (off by
/// default), and `scale --overload-steps` takes a step list.
#[test]
fn overload_options_reach_the_settings() {
    let Command::Fanout(a) = Cli::try_parse_from(["sse-loadgen", "fanout", "--url", "http://a/"])
        .unwrap()
        .command
    else {
        panic!("fanout");
    };
    let s = a.run.settings(1);
    assert_eq!(s.overload, None);
    assert_eq!(s.overload_in_flight, 1);
    let args = [
        "sse-loadgen",
        "scale",
        "--url",
        "http://a/",
        "--steps",
        "1k,15k",
        "--overload",
        "5s",
        "--overload-in-flight",
        "4",
        "--overload-drain",
        "1m",
        "--overload-steps",
        "15k",
    ];
    let Command::Scale(a) = Cli::try_parse_from(args).unwrap().command else {
        panic!("{args:?}");
    };
    let s = a.run.settings(1);
    assert_eq!(s.overload, Some(std::time::Duration::from_secs(5)));
    assert_eq!(s.overload_in_flight, 4);
    assert_eq!(s.overload_drain, std::time::Duration::from_secs(60));
    assert_eq!(a.overload_steps.map(|s| s.0), Some(vec![15_000]));
}
