//! One listening socket per event loop (`SO_REUSEPORT`): the kernel spreads connections over a
//! server's loops, and each loop's share is on `/metrics` (`sse_loop_connections`).

use std::net::TcpListener;

use crate::util::{self, Conn, TIMEOUT, TestServer, metric, metrics, wait_until};

/// Connections to a 2-loop server land on both loops in fair shares: the kernel hashes each
/// connection to one loop's socket, so neither loop takes all of them (as one shared socket
/// under one accept lock would allow). The bound is loose: each loop has at least a quarter
/// where an even spread gives half (a binomial tail of about 10^-18 for 400 connections).
#[test]
fn connections_spread_over_the_loops() {
    let server = TestServer::start(util::config());
    let total = 400;
    // Idle keep-alive connections: held until the request-head timeout (10 s by default), which
    // is ample to count them.
    let connections: Vec<Conn> = (0..total).map(|_| Conn::connect(server.addr)).collect();
    let per_loop = |samples: &std::collections::BTreeMap<String, f64>| {
        [0, 1].map(|index| {
            metric(
                samples,
                &format!("sse_loop_connections{{loop=\"{index}\"}}"),
            )
        })
    };
    let mut shares = [0.0; 2];
    assert!(
        wait_until(TIMEOUT, || {
            shares = per_loop(&metrics(server.addr));
            // The /metrics request's own connection is counted by the loop it landed on.
            shares.iter().sum::<f64>() >= total as f64
        }),
        "every connection accepted: {shares:?}"
    );
    for (index, share) in shares.iter().enumerate() {
        assert!(
            *share >= total as f64 / 4.0,
            "loop {index} holds {share} of {total}: {shares:?}"
        );
    }
    drop(connections);
}

/// Without `--reuse-port` a server with several loops still owns its address: a second one on
/// the same address fails with "address in use" instead of joining the first one's group.
#[test]
fn a_second_server_without_reuse_port_cannot_share_the_address() {
    let first = TestServer::start(util::config());
    let second = sse_server::Server::bind(sse_server::Config {
        listen: first.addr,
        ..util::config()
    });
    let error = second.err().expect("the second bind fails").to_string();
    assert!(
        error.contains("cannot listen on") && error.contains("in use"),
        "{error}"
    );
    // Nor can a plain socket take it.
    assert!(TcpListener::bind(first.addr).is_err());
}
