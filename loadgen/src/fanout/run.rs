//! One fanout run from start to end: resolve the targets, ramp the connections up, read memory,
//! run the main phase (and the rate search), shut down, and hand the measurements to the report.

use std::time::{Duration, Instant};

use super::figures::Measurements;
use super::overload::run_overload;
use super::phase::Rig;
use super::rate_search::{SearchOutcome, run_rate_search};
use super::report::FanoutRun;
use super::settings::{
    FanoutSettings, preflight, publish_urls_for, random_run_id, subscribe_request, validate,
};
use crate::error::{Error, Result};
use crate::publisher::{PublishNode, PublishOutcome, PublishTarget};
use crate::server_probe::{self, ServerProbe};
use crate::stats::{ErrorCounts, count_error};
use crate::subscriber::{ProgressSnapshot, SubscribeNode, SubscriberTarget, unix_now_ns};
use crate::sysinfo::{self, ServerPids};
use crate::url::HttpUrl;

/// File descriptors kept free in each process for pipes, publishers and /proc reads.
const FD_RESERVE: u64 = 64;
/// Ephemeral ports per source address (32768-60999).
const PORTS_PER_ADDRESS: u64 = 28_000;

/// Runs one fanout measurement.
pub fn run_fanout(settings: &FanoutSettings) -> Result<FanoutRun> {
    validate(settings)?;
    let started_unix_s = unix_now_ns() as f64 / 1e9;
    let cpu_start = sysinfo::self_cpu_seconds();
    let urls = settings
        .urls
        .iter()
        .map(|u| HttpUrl::parse(u))
        .collect::<Result<Vec<_>>>()?;
    let publish_urls = publish_urls_for(settings, &urls[0])?;
    let mut nodes = Vec::with_capacity(urls.len());
    for url in &urls {
        let addr = url.resolve()?;
        preflight(addr, "subscribe server")?;
        let request = subscribe_request(url, &settings.headers, "GET", None, None);
        nodes.push(SubscribeNode { addr, request });
    }
    let mut publish_nodes = Vec::with_capacity(publish_urls.len());
    for url in &publish_urls {
        let addr = url.resolve()?;
        preflight(addr, "publish server")?;
        publish_nodes.push(PublishNode {
            url: url.clone(),
            addr,
        });
    }
    let probe = server_probe(settings)?;
    let (fd_limit, _) = sysinfo::raise_fd_limit();
    let processes = process_count(settings, fd_limit);
    let run_id = random_run_id();
    let target = SubscriberTarget {
        nodes,
        source_ips: settings.source_ips.clone(),
        response_timeout_ms: settings.response_timeout.as_millis() as u64,
        run_id,
        reconnect: settings.reconnect,
        default_retry_ms: settings.retry.as_millis() as u64,
    };
    let publish = PublishTarget {
        nodes: publish_nodes,
        headers: settings.publish_headers.clone(),
        run_id,
        payload: settings.payload as usize,
        publishers: settings.publishers,
        response_timeout: settings.response_timeout,
    };

    // Memory before.
    let rss_before = probe.rss_bytes();
    let sock_before = sysinfo::tcp_socket_memory_bytes();

    let ramp_start = Instant::now();
    let mut rig = Rig::start(settings, target, publish, processes)?;
    wait_for_ramp(&mut rig, settings);
    let ramp = ramp_start.elapsed();
    let ramp_progress = rig.progress();

    // Memory after: all open, idle a moment.
    std::thread::sleep(settings.settle);
    let rss_after = probe.rss_bytes();
    let sock_after = sysinfo::tcp_socket_memory_bytes();
    let loadgen_rss = rig.loadgen_rss();

    // Main phase.
    let loadgen_cpu_0 = rig.loadgen_cpu();
    let server_cpu_0 = probe.cpu_seconds();
    // Without a single subscriber there is nothing to deliver to: publishing would only
    // change the server under test (issue 15), so the run collects its failures and ends.
    let nobody = ramp_progress.opened == 0;
    let (main, publish_out) = if nobody {
        (rig.collect_without_publishing()?, PublishOutcome::default())
    } else {
        rig.run_phase("main phase", 0, settings.events as usize, settings.rate)?
    };
    let server_cpu_1 = probe.cpu_seconds();
    let loadgen_cpu_1 = rig.loadgen_cpu();

    // Rate search on the same connections.
    let mut errors = ErrorCounts::new();
    let search = if settings.rate_search && !nobody {
        run_rate_search(&mut rig, &probe, settings, settings.events, &mut errors)?
    } else {
        SearchOutcome::default()
    };

    // The overload burst last: it may leave the server with a backlog. Not after a main phase
    // in which every publish failed: a server that took none would only be hammered.
    let first_overload_seq = settings.events + search.phases.iter().map(|p| p.events).sum::<u64>();
    let overload = match settings.overload {
        Some(duration) if !nobody && publish_out.published > 0 => Some(run_overload(
            &mut rig,
            &probe,
            settings,
            duration,
            first_overload_seq,
            &mut errors,
        )?),
        _ => None,
    };

    let usage_cpu = rig.shutdown()?;
    let loadgen_cpu_s = sysinfo::self_cpu_seconds() - cpu_start + usage_cpu;
    for (k, v) in main.errors.iter().chain(publish_out.errors.iter()) {
        count_error(&mut errors, *k, *v);
    }
    let measured = Measurements {
        started_unix_s,
        urls: urls.iter().map(|u| u.to_string()).collect(),
        publish_urls: publish_urls.iter().map(|u| u.to_string()).collect(),
        processes,
        fd_limit,
        ramp,
        ramp_progress,
        memory_source: probe.source(),
        rss: (rss_before, rss_after),
        sock: (sock_before, sock_after),
        loadgen_rss,
        main,
        publish: publish_out,
        server_cpu_s: server_cpu_0.zip(server_cpu_1).map(|(a, b)| b - a),
        loadgen_main_cpu_s: loadgen_cpu_1 - loadgen_cpu_0,
        loadgen_cpu_s,
        errors,
        search,
        overload,
    };
    let run = FanoutRun::from_measurements(settings, measured);
    if run.report.server_rss_unreliable {
        eprintln!(
            "sse-loadgen: warning: the server's memory grew {} B per connection as {} connections opened: the allocator reused freed memory (a server that already served a run?), so the figure is unreliable; use a fresh server per step",
            run.report.server_rss_per_conn_bytes.unwrap_or(0.0).round(),
            run.report.connections_open
        );
    }
    Ok(run)
}

/// Where server memory and CPU are read from: `--server-pid` (each must exist; their trees
/// are summed), else
/// `--metrics-url`, else nowhere.
fn server_probe(settings: &FanoutSettings) -> Result<ServerProbe> {
    Ok(match (&settings.server_pids[..], &settings.metrics_url) {
        ([_, ..], _) => {
            for &pid in &settings.server_pids {
                if sysinfo::tree_rss_bytes(pid).is_none() {
                    return Err(Error::Config(format!(
                        "--server-pid {pid}: no such process"
                    )));
                }
            }
            ServerProbe::Pids(ServerPids::new(settings.server_pids.clone()))
        }
        ([], Some(m)) => {
            let url = HttpUrl::parse(m)?;
            if let Some(warning) =
                server_probe::metrics_warning(m, server_probe::fetch_metrics(&url))
            {
                eprintln!("sse-loadgen: warning: {warning}");
            }
            ServerProbe::Metrics(url)
        }
        ([], None) => ServerProbe::None,
    })
}

/// How many processes hold the subscribers: `--processes`, or as many as the open-file limit
/// requires. Warns when the limit or the ephemeral ports will not suffice.
fn process_count(settings: &FanoutSettings, fd_limit: u64) -> usize {
    let n = settings.connections;
    let per_process = fd_limit.saturating_sub(FD_RESERVE).max(1);
    let processes = if settings.processes == 0 {
        n.div_ceil(per_process) as usize
    } else {
        settings.processes
    }
    .clamp(1, n as usize);
    if n.div_ceil(processes as u64) > per_process {
        eprintln!(
            "sse-loadgen: warning: {} connections per process exceed the open-file limit {fd_limit}; use more --processes",
            n.div_ceil(processes as u64)
        );
    }
    let addresses = settings.source_ips.len().max(1) as u64;
    if n > PORTS_PER_ADDRESS * addresses {
        eprintln!(
            "sse-loadgen: warning: {n} connections from {addresses} source address(es) may exhaust the ~28k ephemeral ports per address; use --source-ips"
        );
    }
    processes
}

/// Waits until every connection is open or failed, or the ramp's time budget is spent,
/// showing progress.
fn wait_for_ramp(rig: &mut Rig, settings: &FanoutSettings) {
    let n = settings.connections;
    let budget = Duration::from_secs_f64(n as f64 / settings.connect_rate)
        + settings.response_timeout
        + Duration::from_secs(10);
    let start = Instant::now();
    rig.progress_line.start();
    let text = |p: ProgressSnapshot| {
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{}/{n} open, {} failed, {:.0}/s",
            p.opened,
            p.failed,
            (p.opened + p.failed) as f64 / secs
        )
    };
    loop {
        let p = rig.progress();
        if p.opened + p.failed >= n || start.elapsed() > budget {
            rig.progress_line.end("ramp", &text(p));
            break;
        }
        rig.progress_line.tick("ramp", || text(p));
        std::thread::sleep(Duration::from_millis(10));
    }
}
