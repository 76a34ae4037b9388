//! The console: its page at `/` (and `--no-console`), the reserved `$stats` topic no client may
//! publish to, and the live figures produced on it only while someone subscribes.

use std::time::Duration;

use crate::util::{
    self, ServerProcess, SseStream, TestServer, deadline, get, metric, metrics, post_form, publish,
    wait_until,
};

/// Long enough for the stats source to have published twice had it been running.
const QUIET: Duration = Duration::from_millis(2500);

/// `GET /` serves the console page (HTML naming its `$stats` topic, no external assets); with
/// `console: false` (`--no-console`) `/` answers 404, and a `$stats` stream gets no figures.
#[test]
fn console_page_and_no_console() {
    let server = TestServer::with_defaults();
    let page = get(server.addr, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|v| v.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert_eq!(page.text(), sse_server::console::PAGE);
    assert!(page.text().contains("%24stats"), "the page reads $stats");

    let off = TestServer::start(sse_server::Config {
        console: false,
        ..util::config()
    });
    let page = get(off.addr, "/");
    assert_eq!(page.status, 404, "{:?}", page.text());
    assert_eq!(get(off.addr, "/healthz").status, 200);
    let mut stream = SseStream::subscribe(off.addr, &["$stats"]);
    stream.read_preamble(deadline());
    assert!(stream.stays_silent(QUIET), "no figures without the console");
}

/// The binary takes the console switch from the flag and from its environment twin: with
/// `--no-console` or `SSE_NO_CONSOLE=1`, `/` answers 404 while the rest of the API serves; with
/// neither, `/` is the console.
#[test]
fn no_console_by_flag_or_environment() {
    let on = ServerProcess::spawn(&[]);
    assert_eq!(get(on.addr, "/").status, 200);
    let by_flag = ServerProcess::spawn(&["--no-console"]);
    let by_env = ServerProcess::spawn_with_env(&[], &[("SSE_NO_CONSOLE", "1")]);
    for (how, server) in [("--no-console", &by_flag), ("SSE_NO_CONSOLE=1", &by_env)] {
        let page = get(server.addr, "/");
        assert_eq!(page.status, 404, "{how}: {:?}", page.text());
        assert_eq!(get(server.addr, "/healthz").status, 200, "{how}");
    }
}

/// Topics starting with `$` are the server's: a publish naming one (alone, among others, in a
/// form or in the query of a raw body) is refused with `403` and a reason, and reaches nobody.
#[test]
fn publishing_to_reserved_topics_is_refused() {
    let server = TestServer::with_defaults();
    let mut bystander = SseStream::subscribe(server.addr, &["news"]);
    bystander.read_preamble(deadline());
    for body in [
        "topic=%24stats&data=forged",
        "topic=news&topic=%24stats&data=forged",
        "topic=%24other&data=forged",
    ] {
        let response = post_form(server.addr, "/publish", body);
        assert_eq!(response.status, 403, "{body}: {}", response.text());
        assert!(
            response.text().contains("reserved") || response.text().contains("server's own"),
            "{body}: {}",
            response.text()
        );
    }
    let raw = util::request(
        server.addr,
        b"POST /publish?topic=%24stats HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nforged",
    );
    assert_eq!(raw.status, 403, "{}", raw.text());
    assert!(bystander.stays_silent(Duration::from_millis(300)));
    // Ordinary topics still publish.
    let id = publish(server.addr, "news", "real");
    assert_eq!(bystander.next_event().id, Some(id));
    let samples = metrics(server.addr);
    assert_eq!(
        metric(&samples, "sse_rejected_requests_total{status=\"403\"}"),
        4.0
    );
}

/// The figures are produced only while a stream subscribes to `$stats`: nothing is published
/// before (the events counter stays still), a subscriber (to `$stats` among other topics) is
/// counted by `sse_stats_watchers` and gets a `stats` event at once, then one a second with
/// rates; once it hangs up the count is 0 again and nothing more is published.
#[test]
fn stats_are_published_only_while_watched() {
    let server = TestServer::with_defaults();
    let published = |addr| metric(&metrics(addr), "sse_events_published_total");
    std::thread::sleep(QUIET);
    assert_eq!(published(server.addr), 0.0, "nothing published unwatched");
    assert_eq!(metric(&metrics(server.addr), "sse_stats_watchers"), 0.0);

    let mut watcher = SseStream::subscribe(server.addr, &["other", "$stats"]);
    watcher.read_preamble(deadline());
    assert_eq!(metric(&metrics(server.addr), "sse_stats_watchers"), 1.0);
    let first = watcher.next_event();
    assert_eq!(first.event.as_deref(), Some("stats"));
    let data = first.data_text();
    for field in [
        "\"connections\":",
        "\"subscribers\":1,",
        "\"published_per_s\":null",
        "\"deliveries_per_s\":null",
        "\"bytes_out_per_s\":null",
        "\"slow_disconnects\":0,",
        "\"rss_bytes\":",
        "\"bytes_per_connection\":",
        "\"cpu_percent\":null",
    ] {
        assert!(data.contains(field), "{field} missing from {data}");
    }
    let second = watcher.next_event();
    assert!(second.id > first.id);
    let data = second.data_text();
    assert!(
        data.contains("\"deliveries_per_s\":") && !data.contains("\"deliveries_per_s\":null"),
        "the second event has rates: {data}"
    );

    drop(watcher);
    assert!(
        wait_until(util::TIMEOUT, || metric(
            &metrics(server.addr),
            "sse_stats_watchers"
        ) == 0.0),
        "the watcher is no longer counted once it hung up"
    );
    // One more may have been on its way as the watcher left.
    std::thread::sleep(Duration::from_millis(1200));
    let after = published(server.addr);
    std::thread::sleep(QUIET);
    assert_eq!(published(server.addr), after, "nothing published unwatched");
}
