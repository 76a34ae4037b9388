//! The command line as clap parses it: options reach the settings they configure.

use clap::Parser;
use sse_loadgen::cli::{Cli, Command};

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
