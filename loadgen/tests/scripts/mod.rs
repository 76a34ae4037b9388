//! The tables `scripts/compare.sh` writes from its JSON lines (`scripts/lib/targets.jq`,
//! `stopped.jq`, `details.jq`), run with `jq` on a fake compare run: ours and nchan reach the
//! largest step, flask stops before it, echo never builds. Every peer must keep its place, and
//! the comparison must read as one kind of ratio.

use std::path::{Path, PathBuf};
use std::process::Command;

use sse_loadgen::fanout::{FanoutReport, OverloadReport};

/// `scripts/lib/NAME` of the workspace.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/lib")
        .join(name)
}

/// `jq -s -r -f SCRIPT FILES...`'s output.
fn jq(script_name: &str, files: &[&Path]) -> String {
    let out = Command::new("jq")
        .args(["-s", "-r", "-f"])
        .arg(script(script_name))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run jq ({e}): run ./scripts/setup-test-deps.sh"));
    assert!(
        out.status.success(),
        "{script_name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A result line of `label` at `connections`, all open, whose overload burst lost `lost` of its
/// 1,000 deliveries.
fn lossy_result(label: &str, connections: u64, lost: u64) -> String {
    let mut r: FanoutReport =
        serde_json::from_str(&result(label, connections, 20_000.0, 200_000, 1)).unwrap();
    let overload = r.overload.as_mut().unwrap();
    overload.lost = lost;
    overload.deliveries = 1000 - lost;
    serde_json::to_string(&r).unwrap()
}

/// A result line of `label` at `connections`, all open.
fn result(label: &str, connections: u64, rss: f64, p99_us: u64, overload_p99_us: u64) -> String {
    let r = FanoutReport {
        label: label.into(),
        scenario: "64B@5/s".into(),
        connections,
        connections_open: connections,
        server_rss_per_conn_bytes: Some(rss),
        latency_p99_us: p99_us,
        last_subscriber_max_ms: p99_us as f64 / 900.0,
        rate_search: true,
        max_sustained_deliveries_per_sec: Some(1e9 / p99_us as f64),
        rate_search_server_cpu_s_per_million_deliveries: Some(p99_us as f64 / 1e5),
        overload: Some(OverloadReport {
            latency_p99_us: overload_p99_us,
            deliveries: 1000,
            expected_deliveries: 1000,
            deliveries_per_sec: 1e9 / overload_p99_us.max(1) as f64,
            accepted_per_sec: 100.0,
            ..OverloadReport::default()
        }),
        ..FanoutReport::default()
    };
    serde_json::to_string(&r).unwrap()
}

/// Each figure of ours against the best peer that reached the largest step, as "Nx less" or
/// "Nx more"; flask (stopped at 2000) and echo (not built) are named with what stopped them,
/// never dropped; the step tables keep a row for each of their missing steps.
#[test]
fn compare_tables_name_every_peer_and_state_one_kind_of_ratio() {
    let dir = std::env::temp_dir().join(format!("sse-loadgen-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let results = dir.join("results.jsonl");
    let stopped = dir.join("stopped.jsonl");
    let lines = [
        result("ours", 1000, 300.0, 10_000, 0),
        result("ours", 2000, 150.0, 128_000, 250_000),
        result("nchan", 1000, 10_600.0, 12_800, 0),
        result("nchan", 2000, 10_250.0, 148_000, 1_000_000),
        result("flask", 1000, 60_000.0, 3_100_000, 0),
        lossy_result("go", 2000, 400),
    ];
    std::fs::write(&results, lines.join("\n") + "\n").unwrap();
    let stops = [
        r#"{"label":"flask","connections":2000,"result":false,"errors":{},"stopped":"the server exited during the step","loadgen_log":"","server_log":"Too many open files (3×)"}"#,
        r#"{"label":"echo","connections":1000,"result":false,"errors":{},"stopped":"not built: cannot find package","loadgen_log":"","server_log":""}"#,
        r#"{"label":"echo","connections":2000,"result":false,"errors":{},"stopped":"not built: cannot find package","loadgen_log":"","server_log":""}"#,
    ];
    std::fs::write(&stopped, stops.join("\n") + "\n").unwrap();

    let targets = jq("targets.jq", &[&results, &stopped]);
    for want in [
        "Ours against the best of the 4 peers at 2000 connections (the largest step of this run)",
        "| memory per connection | ours 150 B vs best 10,250 B (nchan): 68x less | better |",
        "| latency p99 at the steady rate | ours 128 ms vs best 148 ms (nchan): 1.16x less | better |",
        "| max sustained deliveries/s (no loss) | ours 7,813/s vs best 6,757/s (nchan): 1.16x more | better |",
        "ours 250 ms vs best 1 s (nchan): 4x less | better |",
        "| overload deliveries/s (the same burst) | ours 4,000/s vs best 1,000/s (nchan): 4x more | better |",
        "Left out of the overload rows, because their burst lost events: go (400 of 1,000 deliveries lost).",
        "| echo | not built: cannot find package |",
        "| flask | the server exited during the step; server log: Too many open files (3×); largest step completed: 1000 |",
    ] {
        assert!(targets.contains(want), "missing {want:?} in:\n{targets}");
    }
    let stopped_table = jq("stopped.jq", &[&stopped]);
    assert_eq!(
        stopped_table.matches("| echo |").count(),
        2,
        "{stopped_table}"
    );
    assert!(
        stopped_table.contains("| flask | 2000 | the server exited"),
        "{stopped_table}"
    );
    let details = jq("details.jq", &[&results, &stopped]);
    assert!(
        details.contains("| echo | 1000 | **not reached**: not built: cannot find package |"),
        "{details}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
