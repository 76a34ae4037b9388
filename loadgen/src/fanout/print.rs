//! The human report of a fanout run, as `sse-loadgen fanout` prints it.

use std::io::Write;

use super::overload::OverloadReport;
use super::report::FanoutReport;

/// Formats bytes per connection for the table.
fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} {unit}"))
}

/// Writes the overload phase's lines.
fn print_overload(o: &OverloadReport, out: &mut impl Write) -> std::io::Result<()> {
    let kinds: Vec<String> = o
        .publish_errors
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    writeln!(
        out,
        "  overload             {:.1} s back to back, {} in flight, {} connections: {} requests, {} accepted ({:.0}/s), {} refused, {} unanswered{}{}",
        o.publishing_s,
        o.in_flight,
        o.connections,
        o.requests,
        o.accepted,
        o.accepted_per_sec,
        o.refused,
        o.no_answer,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(" "))
        },
        if o.stopped_at_cap {
            format!(", stopped at the {}-event cap", o.event_cap)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "  overload delivery    {} of {} owed, {:.0}/s, lost {}, dup {}, drained {:.2} s after the last publish; latency (µs, from each event's actual send time) p50 {}  p99 {}  max {}",
        o.deliveries,
        o.expected_deliveries,
        o.deliveries_per_sec,
        o.lost,
        o.duplicated,
        o.drain_s,
        o.latency_p50_us,
        o.latency_p99_us,
        o.latency_max_us
    )?;
    if let Some(reply) = &o.first_refusal {
        writeln!(out, "  overload refused     first reply {reply}")?;
    }
    Ok(())
}

/// Writes the human report.
pub fn print_report(r: &FanoutReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "sse-loadgen fanout  {}  [{}]", r.label, r.scenario)?;
    let list = |urls: &[String], first: &str| {
        if urls.len() > 1 {
            urls.join(" ")
        } else {
            first.to_string()
        }
    };
    writeln!(out, "  url                  {}", list(&r.urls, &r.url))?;
    writeln!(
        out,
        "  publish url          {}",
        list(&r.publish_urls, &r.publish_url)
    )?;
    writeln!(
        out,
        "  settings             {} connections, {} threads, {} process(es), {} events at {}/s, payload {} B, {} publisher(s)",
        r.connections, r.threads, r.processes, r.events, r.rate, r.payload_bytes, r.publishers
    )?;
    writeln!(
        out,
        "  connections          {} open, {} failed, ramp {:.2} s ({:.0}/s), fd limit {}",
        r.connections_open, r.connections_failed, r.ramp_s, r.connect_rate_achieved, r.fd_limit
    )?;
    writeln!(
        out,
        "  deliveries           {} of {} expected, {:.0}/s",
        r.deliveries, r.expected_deliveries, r.deliveries_per_sec
    )?;
    writeln!(
        out,
        "  lost / dup / ooo     {} / {} / {}   connections with loss {}   dropped connections {}   late {}",
        r.lost,
        r.duplicated,
        r.out_of_order,
        r.connections_with_loss,
        r.dropped_connections,
        r.late
    )?;
    if r.reconnect {
        let opt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1} ms"));
        writeln!(
            out,
            "  reconnects           {}   time to reconnect p50 {}  max {}   all back after {}   still reconnecting {}",
            r.reconnects,
            opt(r.reconnect_p50_ms),
            opt(r.reconnect_max_ms),
            opt(r.all_back_ms),
            r.still_reconnecting
        )?;
    }
    writeln!(
        out,
        "  latency (µs)         p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
        r.latency_p50_us,
        r.latency_p90_us,
        r.latency_p99_us,
        r.latency_p999_us,
        r.latency_max_us,
        r.latency_mean_us
    )?;
    writeln!(
        out,
        "  last subscriber (ms) p50 {:.3}  p99 {:.3}  max {:.3}",
        r.last_subscriber_p50_ms, r.last_subscriber_p99_ms, r.last_subscriber_max_ms
    )?;
    writeln!(
        out,
        "  latency origin       each event's scheduled send time (start + seq/rate): a stalled publisher shows as latency; publisher max lag {:.3} ms, schedule {}",
        r.publish_max_lag_ms,
        if r.publisher_kept_schedule {
            "kept"
        } else {
            "NOT kept"
        }
    )?;
    writeln!(
        out,
        "  server memory ({})  per conn {}{}   rss {} -> {}",
        r.memory_source,
        fmt_opt(r.server_rss_per_conn_bytes, "B"),
        if r.server_rss_unreliable {
            " (UNRELIABLE: memory did not grow as connections opened; use a fresh server)"
        } else {
            ""
        },
        r.server_rss_before_bytes
            .map_or("n/a".into(), |b| b.to_string()),
        r.server_rss_after_bytes
            .map_or("n/a".into(), |b| b.to_string())
    )?;
    writeln!(
        out,
        "  kernel socket mem    per conn {} (both ends on loopback)",
        fmt_opt(r.kernel_sock_mem_per_conn_bytes, "B")
    )?;
    writeln!(
        out,
        "  server cpu           {} s, {} s per million deliveries",
        r.server_cpu_s.map_or("n/a".into(), |c| format!("{c:.3}")),
        r.server_cpu_s_per_million_deliveries
            .map_or("n/a".into(), |c| format!("{c:.3}"))
    )?;
    writeln!(
        out,
        "  loadgen              cpu {:.3} s, {} µs per delivery ({} µs receiving), rss {} MiB",
        r.loadgen_cpu_s,
        r.loadgen_cpu_us_per_delivery
            .map_or("n/a".into(), |c| format!("{c:.2}")),
        r.loadgen_subscriber_cpu_us_per_delivery
            .map_or("n/a".into(), |c| format!("{c:.2}")),
        r.loadgen_rss_bytes / (1 << 20)
    )?;
    if r.rate_search {
        for p in &r.rate_search_phases {
            writeln!(
                out,
                "  rate search          {:>9.0}/s  lost {:>6}  p99 {:>8} µs  schedule {}  {}",
                p.rate,
                p.lost,
                p.p99_us,
                if p.kept_schedule { "kept" } else { "missed" },
                if p.passed { "pass" } else { "FAIL" }
            )?;
        }
        writeln!(
            out,
            "  max sustained        {} events/s, {} deliveries/s",
            r.max_sustained_rate
                .map_or("none".into(), |v| format!("{v:.0}")),
            r.max_sustained_deliveries_per_sec
                .map_or("none".into(), |v| format!("{v:.0}"))
        )?;
    }
    if let Some(o) = &r.overload {
        print_overload(o, out)?;
    }
    for (side, reply) in [
        ("subscribe", &r.first_subscribe_refusal),
        ("publish", &r.first_publish_refusal),
    ] {
        if let Some(reply) = reply {
            let label = format!("{side} refused");
            writeln!(out, "  {label:<21}first reply {reply}")?;
        }
    }
    if r.errors.is_empty() {
        writeln!(out, "  errors               none")?;
    } else {
        let list: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "  errors               {}", list.join(" "))?;
    }
    Ok(())
}
