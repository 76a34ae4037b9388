//! Runs that measured nothing: they neither publish nor pass as results.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sse_loadgen::error::Error;
use sse_loadgen::fanout::run_fanout;

use crate::util::*;

/// A server that answers subscribes with a page that is not an event stream and counts the
/// publishes it gets.
fn not_a_stream() -> (FakeServer, Arc<AtomicU64>) {
    let posts = Arc::new(AtomicU64::new(0));
    let counted = posts.clone();
    let server = FakeServer::start(move |stream, req| {
        if req.method == "POST" {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        );
        After::KeepAlive
    });
    (server, posts)
}

/// A fanout in which no subscriber connected publishes nothing: the server gets no event, and
/// the reason says so. Regression test for issue 15, defect 2 (it still published its events
/// to a server nobody listened to).
#[test]
fn fanout_without_subscribers_does_not_publish() {
    let (server, posts) = not_a_stream();
    let mut s = small_run(&server.url(), 3, 5);
    s.rate_search = true;
    let r = run_fanout(&s).unwrap().report;
    assert_eq!(posts.load(Ordering::SeqCst), 0);
    assert_eq!((r.connections_open, r.published), (0, 0));
    assert!(r.rate_search_phases.is_empty());
    assert!(
        r.errors.keys().all(|k| !k.starts_with("publish_")),
        "{:?}",
        r.errors
    );
    let why = r.nothing_measured().unwrap();
    assert!(why.contains("no subscriber connected") && why.contains("nothing was published"));
    assert!(!why.contains("every publish failed"), "{why}");
}

/// `scale` stops at a step that measured nothing: an error naming the step and the reason
/// (exit 1, one line), no JSON line for it, and no later step. Regression test for issue 15
/// (a step of zeros went into the table and the JSON as a result).
#[test]
fn scale_stops_at_a_step_that_measured_nothing() {
    let (server, posts) = not_a_stream();
    let mut base = small_run(&server.url(), 0, 2);
    base.quiet = true;
    let dir = std::env::temp_dir().join(format!("sse-loadgen-nothing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("scale.jsonl");
    let _ = std::fs::remove_file(&json);
    let settings = sse_loadgen::scale::ScaleSettings {
        base,
        steps: vec![2, 3],
        json: Some(json.clone()),
        settle_timeout: std::time::Duration::from_millis(10),
        overload_steps: None,
    };
    let mut table = Vec::new();
    let err = sse_loadgen::scale::run_scale(&settings, &mut table).unwrap_err();
    assert!(matches!(err, Error::NothingMeasured(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("step 2 connections") && text.contains("no subscriber connected"),
        "{text}"
    );
    assert!(!json.exists(), "a JSON line was written");
    assert_eq!(posts.load(Ordering::SeqCst), 0);

    let out = loadgen(&[
        "scale",
        "--url",
        &server.url(),
        "--steps",
        "2,3",
        "--events",
        "2",
        "--settle",
        "0s",
        "--settle-timeout",
        "10ms",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "sse-loadgen: error: nothing was measured: step 2 connections: no subscriber connected"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("\"ok\""), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
