//! The overload phase (`--overload`): a closed-loop burst after the main phase, its accounting
//! (accepted events owed, refused ones not), and its path through worker processes.

use std::time::Duration;

use sse_loadgen::fanout::{FanoutReport, run_fanout};

use crate::util::*;

/// The deliveries of a burst add up: every accepted event is owed to every subscriber, what
/// arrived and what was lost make up exactly that, and each request was accepted, refused or
/// unanswered.
fn assert_accounting(r: &FanoutReport) {
    let o = r.overload.as_ref().expect("the overload phase ran");
    assert_eq!(o.requests, o.accepted + o.refused + o.no_answer, "{o:#?}");
    assert_eq!(o.expected_deliveries, o.accepted * o.connections, "{o:#?}");
    assert_eq!(o.deliveries + o.lost, o.expected_deliveries, "{o:#?}");
    assert_eq!(o.latency_origin, "actual_send_time");
}

/// Against the real server, a 300 ms burst to 10 subscribers: many publishes accepted, every
/// one delivered to every subscriber exactly once, latency from the actual send times, and
/// the main phase's figures untouched by it.
#[test]
fn overload_burst_against_the_real_server_delivers_every_accepted_event() {
    let server = RealServer::start();
    let mut s = small_run(&server.url(), 10, 10);
    s.overload = Some(Duration::from_millis(300));
    s.overload_drain = Duration::from_secs(20);
    let r = run_fanout(&s).unwrap().report;
    assert_accounting(&r);
    let o = r.overload.as_ref().unwrap();
    assert_eq!(o.connections, 10, "{o:#?}");
    // A closed loop outpaces the main phase's 200 events/s by far.
    assert!(o.accepted > 20, "{o:#?}");
    assert_eq!((o.lost, o.duplicated, o.refused), (0, 0, 0), "{o:#?}");
    assert!(
        o.accepted_per_sec > 0.0 && o.deliveries_per_sec > 0.0,
        "{o:#?}"
    );
    assert!(o.latency_p50_us <= o.latency_p99_us && o.latency_p99_us <= o.latency_max_us);
    assert!(o.latency_max_us > 0);
    assert!(!o.stopped_at_cap);
    // The main phase counts its own events only.
    assert_eq!((r.deliveries, r.lost, r.late), (100, 0, 0), "{r:#?}");
}

/// Refused publishes (`503`, as backpressure answers) are refused, not lost: the refused
/// event is posted again, the accepted ones are all delivered, and the refusal is counted by
/// kind and quoted. The run's own failures do not include them: in overload they are expected.
#[test]
fn refused_publishes_are_counted_refused_not_lost() {
    let (server, published) = fake_broker(Mode::RefuseEveryThirdAfter(5));
    let mut s = small_run(&server.url(), 4, 5);
    s.overload = Some(Duration::from_millis(200));
    s.overload_drain = Duration::from_secs(10);
    let r = run_fanout(&s).unwrap().report;
    assert_accounting(&r);
    let o = r.overload.as_ref().unwrap();
    assert!(o.refused > 0, "{o:#?}");
    assert_eq!(o.publish_errors["publish_status_503"], o.refused, "{o:#?}");
    assert_eq!((o.lost, o.duplicated, o.no_answer), (0, 0, 0), "{o:#?}");
    // The fake broker numbers what it accepted: the main phase's five and the burst's.
    assert_eq!(
        published.load(std::sync::atomic::Ordering::SeqCst),
        5 + o.accepted
    );
    assert!(
        o.first_refusal
            .as_deref()
            .is_some_and(|q| q.starts_with("503 Service Unavailable")),
        "{o:#?}"
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// A broker that writes every event twice: the burst's duplicates are counted as such.
#[test]
fn duplicated_burst_deliveries_are_counted() {
    let (server, _) = fake_broker(Mode::Duplicate);
    let mut s = small_run(&server.url(), 3, 5);
    s.overload = Some(Duration::from_millis(100));
    let r = run_fanout(&s).unwrap().report;
    assert_accounting(&r);
    let o = r.overload.as_ref().unwrap();
    assert_eq!(o.duplicated, o.deliveries, "{o:#?}");
    assert_eq!(o.lost, 0);
}

/// Through the command line and two worker processes: the burst's end reaches the workers,
/// which stop waiting for events never published (the run ends well within the drain), and
/// the figures are printed and written to the JSON line.
#[test]
fn overload_through_worker_processes() {
    let server = RealServer::start();
    let dir = std::env::temp_dir().join(format!("sse-loadgen-overload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("overload.jsonl");
    let _ = std::fs::remove_file(&json);
    let out = loadgen(&[
        "fanout",
        "--url",
        &server.url(),
        "-c",
        "20",
        "--events",
        "5",
        "--rate",
        "200",
        "--threads",
        "2",
        "--processes",
        "2",
        "--settle",
        "50ms",
        "--overload",
        "300ms",
        "--overload-in-flight",
        "2",
        "--overload-drain",
        "20s",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  overload   "), "{stdout}");
    assert!(stdout.contains("actual send time"), "{stdout}");
    let r: FanoutReport =
        serde_json::from_str(std::fs::read_to_string(&json).unwrap().trim()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_accounting(&r);
    let o = r.overload.as_ref().unwrap();
    assert_eq!((o.connections, o.in_flight), (20, 2), "{o:#?}");
    assert_eq!((o.lost, o.duplicated), (0, 0), "{o:#?}");
    // Everything arrived, so the drain ended long before its 20 s.
    assert!(o.drain_s < 15.0, "{o:#?}");
}

/// `scale --overload-steps` runs the burst at the steps named only; naming a step that is not
/// one of `--steps`, or giving steps without `--overload`, is refused.
#[test]
fn scale_runs_the_burst_at_the_overload_steps_only() {
    let (server, _) = fake_broker(Mode::Honest);
    let mut base = small_run(&server.url(), 0, 3);
    base.overload = Some(Duration::from_millis(100));
    let mut settings = sse_loadgen::scale::ScaleSettings {
        base,
        steps: vec![2, 3],
        json: None,
        settle_timeout: Duration::from_millis(10),
        overload_steps: Some(vec![3]),
    };
    let mut table = Vec::new();
    let reports = sse_loadgen::scale::run_scale(&settings, &mut table).unwrap();
    assert_eq!(
        reports
            .iter()
            .map(|r| r.overload.is_some())
            .collect::<Vec<_>>(),
        [false, true]
    );
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains("ovl p99 ms"), "{table}");
    settings.overload_steps = Some(vec![4]);
    let err = sse_loadgen::scale::run_scale(&settings, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("--overload-steps 4"), "{err}");
    settings.overload_steps = Some(vec![3]);
    settings.base.overload = None;
    let err = sse_loadgen::scale::run_scale(&settings, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("needs --overload"), "{err}");
}

/// A burst that uses its event cap stops there, before its time is up, and says so; every
/// event up to the cap was accepted once.
#[test]
fn closed_loop_stops_at_the_event_cap() {
    use sse_loadgen::publisher::{
        ClosedLoop, PublishNode, PublishProgress, PublishTarget, publish_closed_loop,
    };
    let (server, published) = fake_broker(Mode::Honest);
    let url = sse_loadgen::url::HttpUrl::parse(&format!("http://{}/publish", server.addr)).unwrap();
    let target = PublishTarget {
        nodes: vec![PublishNode {
            addr: server.addr,
            url,
        }],
        headers: Vec::new(),
        run_id: 1,
        payload: 64,
        publishers: 1,
        response_timeout: Duration::from_secs(2),
    };
    let burst = ClosedLoop {
        first_seq: 0,
        duration: Duration::from_secs(60),
        in_flight: 3,
        max_events: 50,
    };
    let out = publish_closed_loop(&target, burst, &PublishProgress::default());
    assert!(out.stopped_at_cap, "{out:#?}");
    assert_eq!((out.count, out.accepted, out.requests), (50, 50, 50));
    assert!(out.unowed.is_empty());
    assert_eq!(published.load(std::sync::atomic::Ordering::SeqCst), 50);
}
