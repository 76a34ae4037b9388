//! Runs over several servers (nodes): subscribers and publishes spread round-robin over
//! `--url` and `--publish-url`.

use sse_loadgen::fanout::run_fanout;

use crate::util::*;

/// Six subscribers over two real servers that share nothing: three on each. Publishing to the
/// first node only, its three subscribers get all ten events and the other three none;
/// publishing round-robin to both, every subscriber gets the five events of its own node.
#[test]
fn urls_and_publish_urls_spread_round_robin() {
    let (a, b) = (RealServer::start(), RealServer::start());
    let publish = |s: &RealServer| format!("http://{}/publish?topic=bench", s.addr);
    let cases: &[(Vec<String>, u64, u64, u64)] = &[
        (vec![], 30, 30, 3),
        (vec![publish(&a), publish(&b)], 30, 30, 6),
    ];
    for (publish_urls, deliveries, lost, with_loss) in cases {
        let mut s = small_run(&a.url(), 6, 10);
        s.urls.push(b.url());
        s.publish_urls = publish_urls.clone();
        let r = run_fanout(&s).unwrap().report;
        assert_eq!(r.connections_open, 6, "{r:#?}");
        assert_eq!(r.urls, [a.url(), b.url()]);
        assert_eq!(r.published, 10);
        assert_eq!(
            (r.deliveries, r.lost, r.connections_with_loss, r.duplicated),
            (*deliveries, *lost, *with_loss, 0),
            "{publish_urls:?}"
        );
    }
}
