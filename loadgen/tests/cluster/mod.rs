//! Runs over several servers (nodes): subscribers and publishes spread round-robin over
//! `--url` and `--publish-url`.

use std::time::Duration;

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

/// Twenty subscribers over two nodes; node 0 closes its ten streams right after event 4 of 20.
/// With `--reconnect` each of the ten waits the server's `retry` (50 ms, not the 5 s default),
/// reconnects to the next node, node 1, with `Last-Event-ID: 4`, and what that node replays
/// decides the counts exactly: an exact replay loses and repeats nothing, a replay that repeats
/// event 4 gives one duplicate per reconnected subscriber, one that skips event 5 one loss.
/// Without `--reconnect` the ten are dropped and lose events 5-19, as before.
#[test]
fn reconnect_counts_loss_and_duplicates_across_connections() {
    // (reconnect, replay offset, deliveries, lost, duplicated, dropped)
    let cases: &[(bool, i64, u64, u64, u64, u64)] = &[
        (true, 0, 400, 0, 0, 0),
        (true, -1, 400, 0, 10, 0),
        (true, 1, 390, 10, 0, 0),
        (false, 0, 250, 150, 0, 10),
    ];
    for &(reconnect, offset, deliveries, lost, duplicated, dropped) in cases {
        let (nodes, shared) = failover_brokers(2, 4, offset, None);
        let mut s = small_run(&nodes[0].url(), 20, 20);
        s.urls.push(nodes[1].url());
        s.reconnect = reconnect;
        s.retry = Duration::from_secs(5);
        s.drain_timeout = Duration::from_secs(2);
        let r = run_fanout(&s).unwrap().report;
        let case = format!("reconnect {reconnect}, offset {offset}");
        assert_eq!(r.connections_open, 20, "{case}: {r:#?}");
        assert_eq!(
            (r.deliveries, r.lost, r.duplicated, r.dropped_connections),
            (deliveries, lost, duplicated, dropped),
            "{case}: {r:#?}"
        );
        assert_eq!(r.out_of_order, 0, "{case}");
        let ids = &shared.lock().unwrap().last_event_ids;
        if reconnect {
            assert_eq!(r.reconnects, 10, "{case}: {r:#?}");
            assert_eq!(r.still_reconnecting, 0, "{case}");
            assert!(r.errors.is_empty(), "{case}: {:?}", r.errors);
            assert_eq!(*ids, vec![(1, "4".to_string()); 10], "{case}");
            let (p50, max) = (r.reconnect_p50_ms.unwrap(), r.reconnect_max_ms.unwrap());
            assert!(
                (50.0..2000.0).contains(&p50) && max >= p50,
                "{case}: {p50} {max}"
            );
            let all_back = r.all_back_ms.unwrap();
            assert!(all_back >= p50 && all_back < 2000.0, "{case}: {all_back}");
        } else {
            assert_eq!((r.reconnects, r.all_back_ms), (0, None), "{case}");
            assert_eq!(r.errors.get("closed_by_server"), Some(&10), "{case}");
            assert!(ids.is_empty(), "{case}");
        }
    }
}

/// Server memory of several pids is one figure: the sum of their process trees. Two idle child
/// processes stand in for two nodes, so their memory does not move during the run.
#[test]
fn server_pids_are_summed_into_one_figure() {
    let server = RealServer::start();
    let spawn = || {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap()
    };
    let mut nodes = [spawn(), spawn()];
    let pids: Vec<u32> = nodes.iter().map(|c| c.id()).collect();
    let each = || -> u64 {
        pids.iter()
            .map(|&p| sse_loadgen::sysinfo::tree_rss_bytes(p).unwrap())
            .sum()
    };
    // `sleep` maps its pages as it starts: wait until its memory holds still.
    let mut last = each();
    assert!(poll_until(Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(50));
        let now = each();
        std::mem::replace(&mut last, now) == now
    }));
    let each = each();
    let mut s = small_run(&server.url(), 4, 2);
    s.server_pids = pids.clone();
    let r = run_fanout(&s).unwrap().report;
    for child in nodes.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(r.memory_source, "proc");
    assert_eq!(r.server_pids, pids);
    assert_eq!(r.server_rss_before_bytes, Some(each));
    assert_eq!(r.server_rss_after_bytes, Some(each));
    assert!(r.server_cpu_s.is_some());
}

/// Three nodes; node 0 closes its streams after event 4 and node 1, the next, closes every
/// reconnection before answering. Each failed attempt is counted (`closed_before_response`)
/// and the subscriber tries the node after, node 2, with the same `Last-Event-ID`: nothing is
/// lost in the end.
#[test]
fn reconnect_moves_on_to_the_node_after_a_failed_attempt() {
    let (nodes, shared) = failover_brokers(3, 4, 0, Some(1));
    let mut s = small_run(&nodes[0].url(), 9, 20);
    s.urls.extend([nodes[1].url(), nodes[2].url()]);
    s.reconnect = true;
    s.drain_timeout = Duration::from_secs(2);
    let r = run_fanout(&s).unwrap().report;
    // Subscribers 0, 3 and 6 were on node 0.
    assert_eq!((r.connections_open, r.reconnects), (9, 3), "{r:#?}");
    assert_eq!((r.deliveries, r.lost, r.duplicated), (180, 0, 0), "{r:#?}");
    assert_eq!(
        r.errors.get("closed_before_response"),
        Some(&3),
        "{:?}",
        r.errors
    );
    let mut ids = shared.lock().unwrap().last_event_ids.clone();
    ids.sort();
    let want: Vec<(usize, String)> = [1, 1, 1, 2, 2, 2]
        .iter()
        .map(|&n| (n, "4".into()))
        .collect();
    assert_eq!(ids, want);
}

/// With two nodes and two source addresses, each node gets both addresses (the address turns
/// over each node's own subscribers), so no (source, node) pair is left unused.
#[test]
fn source_ips_turn_within_each_node() {
    let (a, _, peers_a) = fake_broker_with_peers(Mode::Honest);
    let (b, _, peers_b) = fake_broker_with_peers(Mode::Honest);
    let mut s = small_run(&a.url(), 8, 2);
    s.urls.push(b.url());
    s.source_ips = sse_loadgen::units::parse_ip_range("127.0.0.2-127.0.0.3").unwrap();
    let r = run_fanout(&s).unwrap().report;
    assert_eq!(r.connections_open, 8, "{r:#?}");
    for peers in [peers_a, peers_b] {
        let mut ips: Vec<String> = peers
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.ip().to_string())
            .collect();
        ips.sort();
        assert_eq!(ips, ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]);
    }
}
