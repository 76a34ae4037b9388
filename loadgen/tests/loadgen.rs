//! Integration tests of sse-loadgen: against the real `sse-server`, against small misbehaving
//! servers, across worker processes, and of the command line. By concern, in modules: `cli`
//! (options and their `SSE_LOADGEN_*` twins reach the settings), `cluster` (several nodes,
//! `--reconnect`, several server pids), `nothing` (runs that measured nothing), `overload` (the
//! `--overload` burst), `rate_search` (its figures), `readme` (the README's flag tables against
//! every subcommand's `--help`), `scripts` (the compare tables, run with jq), `server_metrics`
//! (`--metrics-url` against `sse-server`'s own `/metrics`); `util` holds the servers.

mod cli;
mod cluster;
mod nothing;
mod overload;
mod rate_search;
mod readme;
mod scripts;
mod server_metrics;
mod util;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use sse_loadgen::error::Error;
use sse_loadgen::fanout::{FanoutReport, run_fanout};
use util::*;

/// 500 subscribers x 50 events through the real server: 25,000 deliveries, none lost,
/// duplicated or out of order, and no failure of any kind.
#[test]
fn real_server_delivers_every_event_exactly_once() {
    let server = RealServer::start();
    let run = run_fanout(&small_run(&server.url(), 500, 50)).unwrap();
    let r = &run.report;
    assert_eq!(r.connections_open, 500, "{r:#?}");
    assert_eq!(r.deliveries, 25_000);
    assert_eq!(r.expected_deliveries, 25_000);
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.published, 50);
    assert_eq!(run.latency.len(), 25_000);
    assert!(r.latency_p50_us > 0 && r.latency_max_us >= r.latency_p99_us);
    assert!(r.last_subscriber_max_ms > 0.0);
    assert!(r.deliveries_per_sec > 0.0);
}

/// `--url` repeatable: subscribers are spread round-robin over two nodes of a cluster that
/// share a Redis; publishing to one node, every subscriber on both gets every event once.
#[test]
fn subscribers_spread_over_several_urls() {
    let redis = Redis::start();
    let nodes = [
        RealServer::start_with_redis(Some(redis.url.clone())),
        RealServer::start_with_redis(Some(redis.url.clone())),
    ];
    let mut settings = small_run(&nodes[0].url(), 40, 20);
    settings.urls.push(nodes[1].url());
    let run = run_fanout(&settings).unwrap();
    let r = &run.report;
    assert_eq!(r.connections_open, 40, "{r:#?}");
    assert_eq!(r.deliveries, 800);
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    assert_eq!(r.urls, [nodes[0].url(), nodes[1].url()]);
    // Each node served half of the subscribers (they are gone now; each counted its accepts).
    for node in &nodes {
        let metrics = get_text(node.addr, "/metrics");
        let accepted: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix("sse_connections_accepted_total "))
            .and_then(|value| value.trim().parse().ok())
            .expect("sse_connections_accepted_total");
        assert!(accepted >= 20.0, "{}: {accepted} accepted", node.addr);
    }
}

/// The rate search runs bounded phases on the open connections and reports the last passing
/// rate times the connections. At most three phases: doubling from 100/s to the 400/s cap
/// takes three, and on a loaded machine a missed schedule at 200/s starts a bisection that
/// `--max-search-phases` must end.
#[test]
fn rate_search_is_bounded_and_reports_the_last_passing_phase() {
    let server = RealServer::start();
    let mut s = small_run(&server.url(), 20, 20);
    s.rate_search = true;
    s.search_events = 20;
    s.rate = 100.0;
    s.max_rate = 400.0;
    // Generous, so a busy machine does not fail the first phase: the test is about the search.
    s.max_p99 = Duration::from_secs(5);
    s.max_search_phases = 3;
    let r = run_fanout(&s).unwrap().report;
    assert!(
        r.rate_search_phases.len() <= 3,
        "{:?}",
        r.rate_search_phases
    );
    let best = r.rate_search_phases.iter().rfind(|p| p.passed);
    // 100 events/s to 20 subscribers is well within a real server: a search in which every
    // phase failed is a broken instrument, not a result.
    let best = best.unwrap_or_else(|| panic!("no search phase passed: {:?}", r.rate_search_phases));
    assert_eq!(r.max_sustained_rate, Some(best.rate));
    assert_eq!(r.max_sustained_deliveries_per_sec, Some(best.rate * 20.0));
    // Main-phase counts are not polluted by the search phases.
    assert_eq!(r.deliveries, 400);
}

/// Events of other topics or non-loadgen data are ignored, not counted as errors; a
/// well-behaved fake broker gives exact counts.
#[test]
fn fake_broker_honest_counts_exactly() {
    let (server, published) = fake_broker(Mode::Honest);
    let r = run_fanout(&small_run(&server.url(), 30, 20))
        .unwrap()
        .report;
    assert_eq!(published.load(std::sync::atomic::Ordering::SeqCst), 20);
    assert_eq!(
        (r.deliveries, r.lost, r.duplicated, r.out_of_order),
        (600, 0, 0, 0)
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// Events of another type, with a non-numeric id, and events of an earlier run are ignored:
/// no error, no loss, no duplicate.
#[test]
fn foreign_events_are_ignored() {
    let (server, _) = fake_broker(Mode::WithForeign);
    let r = run_fanout(&small_run(&server.url(), 10, 10))
        .unwrap()
        .report;
    assert_eq!((r.deliveries, r.lost, r.duplicated, r.late), (100, 0, 0, 0));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// `--source-ips` spreads connections over the local addresses in turn.
#[test]
fn source_ips_are_used_in_turn() {
    let (server, _, peers) = fake_broker_with_peers(Mode::Honest);
    let mut s = small_run(&server.url(), 6, 2);
    s.source_ips = sse_loadgen::units::parse_ip_range("127.0.0.2-127.0.0.4").unwrap();
    let r = run_fanout(&s).unwrap().report;
    assert_eq!((r.connections_open, r.lost), (6, 0));
    let mut ips: Vec<String> = peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.ip().to_string())
        .collect();
    ips.sort();
    assert_eq!(
        ips,
        [
            "127.0.0.2",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.4"
        ]
    );
}

/// Every `scale` and `fanout` option parses and reaches the run (guards against clap
/// treating a list value as repeated values).
#[test]
fn cli_accepts_every_option() {
    let (server, _) = fake_broker(Mode::Honest);
    let publish = format!("http://{}/publish", server.addr);
    let dir = std::env::temp_dir().join(format!("sse-loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("scale.jsonl");
    let hgrm = dir.join("fanout.hgrm");
    let common = [
        "--url",
        &server.url(),
        "--publish-url",
        &publish,
        "--header",
        "X-Sub: 1",
        "--publish-header",
        "X-Pub: 2",
        "--connect-rate",
        "1k",
        "--threads",
        "2",
        "--processes",
        "1",
        "--source-ips",
        "127.0.0.1-127.0.0.2",
        "--events",
        "5",
        "--rate",
        "100/s",
        "--payload",
        "1KiB",
        "--publishers",
        "0",
        "--drain-timeout",
        "500ms",
        "--response-timeout",
        "2s",
        "--settle",
        "10ms",
        "--reconnect",
        "--retry",
        "100ms",
        "--metrics-url",
        &format!("http://{}/metrics", server.addr),
        "--rate-search",
        "--search-events",
        "5",
        "--max-p99",
        "1s",
        "--max-rate",
        "200",
        "--max-search-phases",
        "2",
        "--label",
        "fake",
        "--scenario",
        "cli",
        "--quiet",
    ];
    let mut args = vec![
        "scale",
        "--steps",
        "3,4",
        "--settle-timeout",
        "1s",
        "--json",
    ];
    args.push(json.to_str().unwrap());
    args.extend(common);
    let out = loadgen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let reports: Vec<FanoutReport> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        reports.iter().map(|r| r.connections).collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(
        reports
            .iter()
            .all(|r| r.lost == 0 && r.deliveries == r.connections * 5)
    );
    assert!(
        reports
            .iter()
            .all(|r| r.label == "fake" && r.scenario == "cli" && r.reconnect)
    );
    let mut args = vec!["fanout", "-c", "2", "--fail-on-loss", "--hdr-log"];
    args.push(hgrm.to_str().unwrap());
    args.extend(common);
    let out = loadgen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deliveries           10 of 10"));
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Percentile")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--fail-on-loss` turns a lossy run into exit status 3 (2 is a usage error, as clap has it).
#[test]
fn fail_on_loss_exits_3() {
    let (server, _) = fake_broker(Mode::Silent);
    let out = loadgen(&[
        "fanout",
        "--url",
        &server.url(),
        "-c",
        "2",
        "--events",
        "2",
        "--drain-timeout",
        "100ms",
        "--settle",
        "0s",
        "--quiet",
        "--fail-on-loss",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that writes every event twice: every second copy counts as duplicated.
#[test]
fn duplicates_are_counted() {
    let (server, _) = fake_broker(Mode::Duplicate);
    let r = run_fanout(&small_run(&server.url(), 10, 10))
        .unwrap()
        .report;
    assert_eq!((r.deliveries, r.duplicated, r.lost), (100, 100, 0));
}

/// A server that swaps two events: one out-of-order delivery per connection, nothing lost.
#[test]
fn out_of_order_is_counted() {
    let (server, _) = fake_broker(Mode::SwapFirstTwo);
    let r = run_fanout(&small_run(&server.url(), 10, 10))
        .unwrap()
        .report;
    assert_eq!((r.deliveries, r.out_of_order, r.lost), (100, 10, 0));
}

/// A server that drops half the connections after event 4: each dropped connection is
/// counted, by kind, and its missing events are lost, exactly.
#[test]
fn dropped_connections_are_counted_and_their_events_lost() {
    let (server, _) = fake_broker(Mode::DropOddAfter(4));
    let r = run_fanout(&small_run(&server.url(), 20, 10))
        .unwrap()
        .report;
    assert_eq!(r.dropped_connections, 10, "{r:#?}");
    assert_eq!(r.errors.get("closed_by_server"), Some(&10));
    assert_eq!(r.lost, 10 * 5);
    assert_eq!(r.connections_with_loss, 10);
    assert_eq!(r.deliveries, 20 * 10 - 50);
}

/// A server that accepts the stream but sends nothing: all lost after the drain timeout.
#[test]
fn silent_server_loses_everything_within_the_drain_timeout() {
    let (server, _) = fake_broker(Mode::Silent);
    let start = std::time::Instant::now();
    let r = run_fanout(&small_run(&server.url(), 5, 10)).unwrap().report;
    assert_eq!((r.deliveries, r.lost), (0, 50));
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Status 500 on every request: the run completes and counts each failure by kind. With no
/// subscriber connected, nothing is published, so no publish fails (issue 15).
#[test]
fn server_error_statuses_are_counted() {
    let server =
        canned_server(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops");
    let r = run_fanout(&small_run(&server.url(), 8, 5)).unwrap().report;
    assert_eq!(r.connections_open, 0);
    assert_eq!(r.connections_failed, 8);
    assert_eq!(r.errors.get("status_500"), Some(&8));
    assert_eq!(r.errors.get("publish_status_500"), None);
    assert_eq!(r.published, 0);
}

/// Garbage instead of HTTP, and a 200 with the wrong content type: failures by kind.
#[test]
fn garbage_and_wrong_content_type_are_counted() {
    let server = canned_server(b"garbage garbage garbage\r\n\r\n");
    let r = run_fanout(&small_run(&server.url(), 6, 2)).unwrap().report;
    assert_eq!(
        r.errors.get("bad_response_head"),
        Some(&6),
        "{:?}",
        r.errors
    );
    let server = canned_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
    );
    let r = run_fanout(&small_run(&server.url(), 6, 2)).unwrap().report;
    assert_eq!(r.errors.get("bad_content_type"), Some(&6), "{:?}", r.errors);
}

/// A server that never answers subscribes: each connection fails with `response_timeout`
/// and the run still completes.
#[test]
fn stalled_responses_time_out() {
    let server = FakeServer::start(|stream, req| {
        if req.method == "GET" {
            std::thread::sleep(Duration::from_secs(3));
            return After::Close;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        After::KeepAlive
    });
    let mut s = small_run(&server.url(), 5, 2);
    s.response_timeout = Duration::from_millis(300);
    let r = run_fanout(&s).unwrap().report;
    assert_eq!(r.errors.get("response_timeout"), Some(&5), "{:?}", r.errors);
    assert_eq!(r.connections_failed, 5);
}

/// An unreachable server is an error (not a report), and names the address.
#[test]
fn refused_connection_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = run_fanout(&small_run(&format!("http://127.0.0.1:{port}/events"), 1, 1)).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}

/// The same run split over two worker processes gives the same exact totals as one process.
#[test]
fn worker_processes_merge_into_exact_totals() {
    let server = RealServer::start();
    let dir = std::env::temp_dir().join(format!("sse-loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut reports = Vec::new();
    for processes in ["1", "2"] {
        let json = dir.join(format!("p{processes}.jsonl"));
        let _ = std::fs::remove_file(&json);
        let out = loadgen(&[
            "fanout",
            "--url",
            &server.url(),
            "-c",
            "60",
            "--events",
            "30",
            "--rate",
            "300",
            "--threads",
            "2",
            "--processes",
            processes,
            "--settle",
            "50ms",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&json).unwrap();
        let r: FanoutReport = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(r.processes.to_string(), processes);
        reports.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    for r in &reports {
        assert_eq!(
            (
                r.connections_open,
                r.deliveries,
                r.lost,
                r.duplicated,
                r.out_of_order
            ),
            (60, 1800, 0, 0, 0),
            "{r:#?}"
        );
        assert!(r.errors.is_empty());
    }
}

/// Bad values clap cannot judge (URLs, zero counts, unreachable servers, missing files): one
/// line `sse-loadgen: error: ...` on stderr, exit status 1, no panic.
#[test]
fn bad_cli_input_gives_one_line_and_status_1() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("http://127.0.0.1:{port}/events");
    let cases: &[&[&str]] = &[
        &["fanout", "--url", "not a url"],
        &["fanout", "--url", "https://127.0.0.1/events"],
        &["fanout", "--url", "http://127.0.0.1:1/", "-c", "0"],
        &["fanout", "--url", &unreachable],
        &["watch", &unreachable],
        &[
            "report",
            "--input",
            "/nonexistent.jsonl",
            "--out-dir",
            "/tmp/x",
        ],
    ];
    for args in cases {
        let out = loadgen(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("sse-loadgen: error: "),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Usage errors show clap's whole message, which names the missing argument, lists allowed
/// values, suggests a near flag and shows the usage, and exit with clap's status 2. Regression
/// test for issue 15, defect 1 (only the first line was shown, with status 1).
#[test]
fn usage_errors_show_the_whole_message_and_exit_2() {
    let url = "http://127.0.0.1:1/events";
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["Usage:", "fanout", "watch"]),
        (&["fanout"], &["--url <URL>", "Usage:"]),
        (&["watch", url, "--method", "PUT"], &["PUT", "GET", "POST"]),
        (
            &["fanout", "--url", url, "--conections", "5"],
            &["--conections", "--connections"],
        ),
        (
            &["fanout", "--url", url, "-c", "ten"],
            &["\"ten\"", "--connections"],
        ),
        (&["bogus"], &["bogus", "Usage:"]),
        (
            &["fanout", "--url", url, "--rate", "0"],
            &["--rate", "greater than 0"],
        ),
        (
            &["scale", "--url", url, "--steps", "1k,0"],
            &["--steps", "positive counts"],
        ),
    ];
    for (args, wants) in cases {
        let out = loadgen(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for want in *wants {
            assert!(
                stderr.contains(want),
                "{args:?}: {want:?} missing in {stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `--help` documents every exit status (issue 15, defect 1).
#[test]
fn help_documents_exit_statuses() {
    for args in [&["--help"][..], &["fanout", "--help"][..]] {
        let out = loadgen(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        for want in ["Exit status", "0 ", "1 ", "2 ", "3 ", "--fail-on-loss"] {
            assert!(
                stdout.contains(want),
                "{args:?}: {want:?} missing in {stdout}"
            );
        }
    }
}

/// A fanout run that measured nothing is an error: pointed at a page that is not an event
/// stream, no subscriber connects; with a publish URL the server refuses, every publish fails.
/// Either exits 1 with one line quoting the server's first reply. Regression test for issue
/// 15, defect 2 (both exited 0).
#[test]
fn fanout_that_measured_nothing_exits_1_quoting_the_server() {
    let server = RealServer::start();
    let base = format!("http://{}", server.addr);
    let healthz = format!("{base}/healthz");
    let events = server.url();
    let no_topic = format!("{base}/publish");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--url", &healthz],
            &[
                "no subscriber connected",
                "bad_content_type=3",
                "200 OK",
                "text/plain",
                "\"ok\"",
            ],
        ),
        (
            &["--url", &events, "--publish-url", &no_topic],
            &[
                "every publish failed",
                "publish_status_400=2",
                "400",
                "missing topic",
            ],
        ),
    ];
    for (args, wants) in cases {
        let mut all = vec![
            "fanout", "-c", "3", "--events", "2", "--settle", "0s", "--quiet",
        ];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--drain-timeout", "200ms"]);
        let out = loadgen(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("sse-loadgen: error: "),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        for want in *wants {
            assert!(
                stderr.contains(want),
                "{args:?}: {want:?} missing in {stderr}"
            );
        }
    }
}

/// A publish that gets no answer waits `--response-timeout`, not a fixed 10 s, and a run whose
/// stderr is not a terminal says what it is doing in plain lines. Regression test for issue
/// 15, defect 3 (four unanswered publishes took 40 s, without a word).
#[test]
fn unanswered_publishes_time_out_and_progress_shows_in_plain_lines() {
    let server = RealServer::start();
    // The kernel completes connections to this listener, which never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let publish_url = format!(
        "http://{}/publish?topic=bench",
        silent.local_addr().unwrap()
    );
    let start = std::time::Instant::now();
    let out = loadgen(&[
        "fanout",
        "--url",
        &server.url(),
        "--publish-url",
        &publish_url,
        "-c",
        "2",
        "--events",
        "4",
        "--response-timeout",
        "300ms",
        "--drain-timeout",
        "100ms",
        "--settle",
        "0s",
    ]);
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("publish_timeout=4"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("sse-loadgen: main phase: ")
                && l.contains("0/4 published")
                && l.contains("4 failed")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("sse-loadgen: ramp: ") && l.contains("2/2 open")),
        "{stderr}"
    );
    drop(silent);
}

/// A `--payload` below the stamp every event carries is refused, naming the minimum, on the
/// command line (usage error) and in the library. Regression test for issue 15, defect 5
/// (`--payload 10` was recorded as 10 B while 54 B were sent).
#[test]
fn payload_below_the_minimum_is_refused() {
    let out = loadgen(&[
        "fanout",
        "--url",
        "http://127.0.0.1:1/events",
        "--payload",
        "10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--payload") && stderr.contains("at least 63 bytes"),
        "{stderr}"
    );
    let mut settings = small_run("http://127.0.0.1:1/events", 1, 1);
    settings.payload = 62;
    match run_fanout(&settings) {
        Err(Error::Config(m)) => assert!(m.contains("at least 63 bytes"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        loadgen(&["fanout", "--url", "x", "--payload", "63", "--help"])
            .status
            .success()
    );
}

/// `report` on an input without a single report is an error, not empty plots. Regression test
/// for issue 15, defect 6.
#[test]
fn report_on_empty_input_is_an_error() {
    let dir = std::env::temp_dir().join(format!("sse-loadgen-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("empty.jsonl");
    std::fs::write(&input, "\n").unwrap();
    let out = loadgen(&[
        "report",
        "--input",
        input.to_str().unwrap(),
        "--out-dir",
        dir.join("out").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no fanout report"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--metrics-url` pointing at a page without process metrics warns instead of silently
/// reporting `n/a`. Regression test for issue 15, defect 6.
#[test]
fn metrics_url_without_metrics_warns() {
    let server = RealServer::start();
    let healthz = format!("http://{}/healthz", server.addr);
    let out = loadgen(&[
        "fanout",
        "--url",
        &server.url(),
        "-c",
        "2",
        "--events",
        "2",
        "--settle",
        "0s",
        "--quiet",
        "--metrics-url",
        &healthz,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --metrics-url")
            && stderr.contains("process_resident_memory_bytes"),
        "{stderr}"
    );
}

/// `watch` says on stderr when the server closed the stream. Regression test for issue 15,
/// defect 6 (it exited without a word).
#[test]
fn watch_says_when_the_server_closed_the_stream() {
    let server = FakeServer::start(|stream, _| {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b\n\n",
        );
        After::Close
    });
    let out = loadgen(&["watch", &server.url()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[message] a\n[message] b\n"
    );
    assert!(
        stderr.contains("the server closed the stream after 2 events"),
        "{stderr}"
    );
}

/// `watch --json` prints exactly one object per dispatch, decoding a chunked body split at
/// awkward places, and exits 0 at the end of the stream.
#[test]
fn watch_prints_json_lines() {
    let server = FakeServer::start(|stream, _| {
        let body: &[&[u8]] = &[
            b"\xEF\xBB\xBFretry: 1500\r\n:comment\r\nid: 7\r\nevent: tick\r",
            b"\ndata: a\r\ndata: b\r\n\r\ndata: \xE2\x82",
            b"\xAC\n\n",
            b"data: unterminated",
        ];
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for chunk in body {
            let _ = write!(stream, "{:x}\r\n", chunk.len());
            let _ = stream.write_all(chunk);
            let _ = stream.write_all(b"\r\n");
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        After::Close
    });
    let out = loadgen(&["watch", "--json", &server.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        concat!(
            "{\"retry\":1500}\n",
            "{\"event\":\"tick\",\"data\":\"a\\nb\",\"id\":\"7\"}\n",
            "{\"event\":\"message\",\"data\":\"\u{20ac}\",\"id\":\"7\"}\n",
        )
    );
}

/// `watch --reconnect` waits `retry` and sends `Last-Event-ID` with the last id seen.
#[test]
fn watch_reconnects_with_last_event_id() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let server = FakeServer::start(move |stream, req| {
        seen2
            .lock()
            .unwrap()
            .push(req.header("last-event-id").map(str::to_string));
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 50\nid: 41\ndata: x\n\n");
        After::Close
    });
    let out = loadgen(&[
        "watch",
        "--reconnect",
        "--max-events",
        "2",
        "--last-event-id",
        "40",
        &server.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some("40".to_string()), Some("41".to_string())]
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.matches("[message id=41] x").count(), 2, "{stdout}");
}

/// `watch` reports a non-200 status with a body excerpt, and a wrong content type.
#[test]
fn watch_reports_status_and_content_type() {
    let server = canned_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno topic!");
    let out = loadgen(&["watch", &server.url()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("404") && stderr.contains("no topic!"),
        "{stderr}"
    );
    let server =
        canned_server(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi");
    let out = loadgen(&["watch", &server.url()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("text/html"), "{stderr}");
}

/// `scale` appends one JSON line per step; `report` turns them into summary.md and plots.
#[test]
fn scale_then_report() {
    let server = RealServer::start();
    let dir = std::env::temp_dir().join(format!("sse-loadgen-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("runs.jsonl");
    let mut base = small_run(&server.url(), 0, 10);
    base.label = "ours".into();
    base.server_pids = vec![std::process::id()];
    let settings = sse_loadgen::scale::ScaleSettings {
        base,
        steps: vec![10, 30],
        json: Some(json.clone()),
        settle_timeout: Duration::from_secs(1),
        overload_steps: None,
    };
    let mut table = Vec::new();
    let reports = sse_loadgen::scale::run_scale(&settings, &mut table).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(String::from_utf8(table).unwrap().lines().count(), 3);
    let lines = std::fs::read_to_string(&json).unwrap();
    assert_eq!(lines.lines().count(), 2);
    let v: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    for field in [
        "label",
        "connections",
        "server_rss_per_conn_bytes",
        "kernel_sock_mem_per_conn_bytes",
        "latency_p50_us",
        "latency_p999_us",
        "last_subscriber_p99_ms",
        "deliveries_per_sec",
        "lost",
        "errors",
        "server_cpu_s_per_million_deliveries",
        "loadgen_cpu_s",
        "loadgen_rss_bytes",
        "connect_rate_achieved",
        "max_sustained_rate",
        "started_unix_s",
    ] {
        assert!(v.get(field).is_some(), "missing {field}");
    }
    assert_eq!(v["connections"], 30);
    let out_dir = dir.join("report");
    let out = loadgen(&[
        "report",
        "--input",
        json.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(summary.contains("| ours | 30 |"), "{summary}");
    for svg in [
        "memory_per_conn.svg",
        "latency_p99.svg",
        "deliveries_per_sec.svg",
    ] {
        let text = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("ours"), "{svg}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A short soak against a real server passes: every kind of traffic ran, good subscribers lost
/// and repeated nothing, bad requests were refused, and the server kept answering.
#[test]
fn soak_against_a_real_server_passes() {
    let server = RealServer::start();
    let out = std::env::temp_dir().join(format!("sse-soak-test-{}", std::process::id()));
    let settings = sse_loadgen::soak::SoakSettings {
        base: sse_loadgen::url::HttpUrl::parse(&format!("http://{}", server.addr)).unwrap(),
        duration: Duration::from_secs(8),
        warmup: Duration::from_secs(3),
        sample_every: Duration::from_secs(1),
        server_pid: None,
        busy_topics: 2,
        good_subscribers: 4,
        busy_rate: 100.0,
        busy_payload: 256,
        fresh_rate: 50.0,
        fresh_threads: 2,
        churn_threads: 1,
        churn_rate: 50.0,
        stuck: 10,
        slow: 5,
        out_dir: out.clone(),
    };
    let report = sse_loadgen::soak::run_soak(&settings).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    for name in [
        "good_events",
        "churn_cycles",
        "bad_requests",
        "fresh_published",
        "stuck_opened",
    ] {
        assert!(report.counts[name] > 0, "{name}: {:?}", report.counts);
    }
    for file in ["samples.jsonl", "summary.json", "summary.md", "soak.svg"] {
        assert!(out.join(file).exists(), "{file}");
    }
    let _ = std::fs::remove_dir_all(out);
}
