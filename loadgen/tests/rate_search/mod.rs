//! The rate search's figures.

use sse_loadgen::fanout::run_fanout;

use crate::util::*;

/// Twenty subscribers open; half of them are dropped in the main phase, so the rate search
/// runs on ten. Its "max sustained deliveries/s" is the passing rate times those ten, not
/// times the twenty opened in the ramp. Regression test for issue 11 (it used the twenty).
#[test]
fn max_sustained_deliveries_count_the_subscribers_of_the_passing_phase() {
    let (server, _) = fake_broker(Mode::DropOddAfter(4));
    let mut s = small_run(&server.url(), 20, 10);
    s.rate_search = true;
    s.search_events = 10;
    s.rate = 100.0;
    s.max_rate = 200.0;
    s.max_p99 = std::time::Duration::from_secs(5);
    let r = run_fanout(&s).unwrap().report;
    assert_eq!(
        (r.connections_open, r.dropped_connections),
        (20, 10),
        "{r:#?}"
    );
    assert!(r.rate_search_phases.iter().all(|p| p.connections == 10));
    let best = r.max_sustained_rate.expect("a search phase passed");
    assert_eq!(
        r.max_sustained_deliveries_per_sec,
        Some(best * 10.0),
        "{r:#?}"
    );
}
