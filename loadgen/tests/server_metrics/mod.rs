//! Figures read from a server's Prometheus page: `fanout --metrics-url` against `sse-server`'s
//! own `/metrics`.

use sse_loadgen::fanout::FanoutReport;

use crate::util::{RealServer, loadgen};

/// `fanout --metrics-url` pointed at `sse-server`'s `/metrics` reads its CPU and memory from
/// there: the JSON line has `memory_source` `metrics`, a non-null `server_cpu_s` and RSS
/// figures, and no warning names a missing metric. (Issue 15, defect 6: the server exported no
/// `process_cpu_seconds_total`, so `server_cpu_s` was null against our own server.)
#[test]
fn metrics_url_of_sse_server_yields_server_cpu() {
    let server = RealServer::start();
    let dir = std::env::temp_dir().join(format!("sse-loadgen-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&json);
    let metrics = format!("http://{}/metrics", server.addr);
    let out = loadgen(&[
        "fanout",
        "--url",
        &server.url(),
        "-c",
        "5",
        "--events",
        "5",
        "--settle",
        "0s",
        "--metrics-url",
        &metrics,
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("--metrics-url"),
        "a warning about the page: {stderr}"
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let report: FanoutReport = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(report.memory_source, "metrics");
    let cpu = report
        .server_cpu_s
        .expect("server_cpu_s from process_cpu_seconds_total");
    assert!(cpu >= 0.0 && cpu.is_finite(), "server_cpu_s {cpu}");
    assert!(
        report.server_rss_after_bytes.is_some_and(|rss| rss > 0),
        "{report:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
