//! The options of each subcommand, as clap derives them (each `///` is the help text, each
//! `env` the flag's `SSE_LOADGEN_*` twin, see [`cli`](super)), and [`RunArgs::settings`], which
//! turns the options `fanout` and `scale` share into [`FanoutSettings`].
//!
//! Separate from `mod.rs`, which holds the command tree, the exit statuses and the dispatch:
//! this file is the long list of flags, read when adding or changing one.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::fanout::FanoutSettings;
use crate::units::{
    AddressList, Steps, parse_address_list, parse_count, parse_duration, parse_header,
    parse_payload_size, parse_rate, parse_size, parse_step_list,
};

/// `watch` options.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The event-stream URL (http:// only).
    pub url: String,
    /// Print one JSON object per line: {"event","data","id"}, and {"retry"}.
    #[arg(long, env = "SSE_LOADGEN_WATCH_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// Extra request header NAME:VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header, env = "SSE_LOADGEN_HEADER")]
    pub headers: Vec<(String, String)>,
    /// Send Last-Event-ID with the first request.
    #[arg(long, env = "SSE_LOADGEN_LAST_EVENT_ID")]
    pub last_event_id: Option<String>,
    /// Request method.
    #[arg(long, default_value = "GET", value_parser = ["GET", "POST"], env = "SSE_LOADGEN_METHOD")]
    pub method: String,
    /// Request body (form-encoded unless a Content-Type header is given).
    #[arg(long, env = "SSE_LOADGEN_DATA")]
    pub data: Option<String>,
    /// Reconnect at the end of the stream as a browser does (retry, Last-Event-ID).
    #[arg(long, env = "SSE_LOADGEN_RECONNECT", value_parser = clap::builder::BoolishValueParser::new())]
    pub reconnect: bool,
    /// Reconnection delay until the server sends retry.
    #[arg(long, default_value = "3s", value_parser = parse_duration, env = "SSE_LOADGEN_RETRY")]
    pub retry: Duration,
    /// Exit after this many events.
    #[arg(long, value_parser = parse_count, env = "SSE_LOADGEN_MAX_EVENTS")]
    pub max_events: Option<u64>,
}

/// Options shared by `fanout` and `scale`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Subscribe URL, e.g. http://127.0.0.1:8080/events?topic=bench; repeatable: subscribers
    /// are spread round-robin over the servers (nodes).
    #[arg(
        long = "url",
        value_name = "URL",
        required = true,
        env = "SSE_LOADGEN_URL"
    )]
    pub urls: Vec<String>,
    /// Publish URL (raw-body POST); repeatable: events go round-robin over them; default
    /// http://HOST-OF-FIRST-URL/publish?topic=TOPIC-OF-FIRST-URL.
    #[arg(
        long = "publish-url",
        value_name = "URL",
        env = "SSE_LOADGEN_PUBLISH_URL"
    )]
    pub publish_urls: Vec<String>,
    /// Extra subscribe request header NAME:VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header, env = "SSE_LOADGEN_HEADER")]
    pub headers: Vec<(String, String)>,
    /// Extra publish request header NAME:VALUE (repeatable).
    #[arg(long = "publish-header", value_parser = parse_header, env = "SSE_LOADGEN_PUBLISH_HEADER")]
    pub publish_headers: Vec<(String, String)>,
    /// Subscribers opened per second.
    #[arg(long, default_value = "5k", value_parser = parse_rate, env = "SSE_LOADGEN_CONNECT_RATE")]
    pub connect_rate: f64,
    /// Event loops (threads) in total, spread over the processes; 0: one per core.
    #[arg(long, default_value_t = 0, env = "SSE_LOADGEN_THREADS")]
    pub threads: usize,
    /// Worker processes; 0: as many as the open-file limit requires.
    #[arg(long, default_value_t = 0, env = "SSE_LOADGEN_PROCESSES")]
    pub processes: usize,
    /// Source addresses to connect from, e.g. 127.0.0.1-127.0.0.8 (passes the ~28k port limit).
    #[arg(long, value_parser = parse_address_list, env = "SSE_LOADGEN_SOURCE_IPS")]
    pub source_ips: Option<AddressList>,
    /// Events to publish in the main phase.
    #[arg(long, default_value = "100", value_parser = parse_count, env = "SSE_LOADGEN_EVENTS")]
    pub events: u64,
    /// Events per second.
    #[arg(long, default_value = "100", value_parser = parse_rate, env = "SSE_LOADGEN_RATE")]
    pub rate: f64,
    /// Payload size in bytes (64, 1k, 1KiB); at least 63, the stamp each event carries.
    #[arg(long, default_value = "64", value_parser = parse_payload_size, env = "SSE_LOADGEN_PAYLOAD")]
    pub payload: u64,
    /// Publishing connections (for rates one connection cannot reach); 0: one per 1,000 events/s.
    #[arg(long, default_value_t = 1, env = "SSE_LOADGEN_PUBLISHERS")]
    pub publishers: usize,
    /// After the last publish, wait this long (at most) for every delivery.
    #[arg(long, default_value = "5s", value_parser = parse_duration, env = "SSE_LOADGEN_DRAIN_TIMEOUT")]
    pub drain_timeout: Duration,
    /// Time allowed from connect to the response head, for each subscriber and each publish.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "SSE_LOADGEN_RESPONSE_TIMEOUT")]
    pub response_timeout: Duration,
    /// Reconnect a subscriber whose stream ended, as a browser does: after the server's retry
    /// (or --retry) plus up to half again of jitter, to the next --url, with Last-Event-ID.
    #[arg(long, env = "SSE_LOADGEN_RECONNECT", value_parser = clap::builder::BoolishValueParser::new())]
    pub reconnect: bool,
    /// With --reconnect: the reconnection delay until the server sends retry.
    #[arg(long, default_value = "3s", value_parser = parse_duration, env = "SSE_LOADGEN_RETRY")]
    pub retry: Duration,
    /// Idle time after all connections opened, before reading memory.
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "SSE_LOADGEN_SETTLE")]
    pub settle: Duration,
    /// Server process id: memory and CPU from /proc (children included); repeatable: a
    /// cluster's processes are summed into one figure.
    #[arg(
        long = "server-pid",
        value_name = "PID",
        env = "SSE_LOADGEN_SERVER_PID"
    )]
    pub server_pids: Vec<u32>,
    /// Server Prometheus endpoint: memory from process_resident_memory_bytes, CPU from
    /// process_cpu_seconds_total (a warning names those the page lacks; they are then n/a).
    #[arg(long, env = "SSE_LOADGEN_METRICS_URL")]
    pub metrics_url: Option<String>,
    /// After the main phase, find the highest rate delivered without loss.
    #[arg(long, env = "SSE_LOADGEN_RATE_SEARCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub rate_search: bool,
    /// Fewest events per rate-search phase.
    #[arg(long, default_value = "20", value_parser = parse_count, env = "SSE_LOADGEN_SEARCH_EVENTS")]
    pub search_events: u64,
    /// Length of a rate-search phase: it publishes RATE x this many events (at least
    /// --search-events), long enough that socket buffers cannot hide a rate the server
    /// cannot sustain.
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "SSE_LOADGEN_SEARCH_PHASE")]
    pub search_phase: Duration,
    /// A search phase fails when p99 latency exceeds this.
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "SSE_LOADGEN_MAX_P99")]
    pub max_p99: Duration,
    /// Highest rate the search tries.
    #[arg(long, default_value = "100k", value_parser = parse_rate, env = "SSE_LOADGEN_MAX_RATE")]
    pub max_rate: f64,
    /// Most rate-search phases.
    #[arg(long, default_value_t = 16, env = "SSE_LOADGEN_MAX_SEARCH_PHASES")]
    pub max_search_phases: usize,
    /// After the main phase (and the rate search), publish back to back for this long, each
    /// publish sent when the last is answered, and measure that burst's delivery: latency from
    /// each event's actual send time, deliveries/s, publishes accepted and refused (a 503 is
    /// refused, not lost), lost and duplicated. Off when not given.
    #[arg(long, value_parser = parse_duration, env = "SSE_LOADGEN_OVERLOAD")]
    pub overload: Option<Duration>,
    /// Publishes in flight during --overload (one publishing connection each).
    #[arg(long, default_value_t = 1, env = "SSE_LOADGEN_OVERLOAD_IN_FLIGHT")]
    pub overload_in_flight: usize,
    /// After the --overload burst, wait this long (at most) for the deliveries still owed;
    /// what has not arrived then counts as lost.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "SSE_LOADGEN_OVERLOAD_DRAIN")]
    pub overload_drain: Duration,
    /// Name of the server under test (in JSON and reports).
    #[arg(long, default_value = "server", env = "SSE_LOADGEN_LABEL")]
    pub label: String,
    /// Name of the scenario (default: PAYLOADB@RATE/s).
    #[arg(long, env = "SSE_LOADGEN_SCENARIO")]
    pub scenario: Option<String>,
    /// No progress on stderr (otherwise: a line redrawn on a terminal, or a plain line every
    /// 2 s and at the end of each step when stderr is not a terminal).
    #[arg(long, short, env = "SSE_LOADGEN_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    /// Binary to run as worker process (default: this executable).
    #[arg(long, hide = true, env = "SSE_LOADGEN_WORKER_EXE")]
    pub worker_exe: Option<PathBuf>,
}

/// `fanout` options.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Subscribers to open (10k, 1.5k accepted).
    #[arg(long, short = 'c', default_value = "100", value_parser = parse_count, env = "SSE_LOADGEN_CONNECTIONS")]
    pub connections: u64,
    /// Shared options.
    #[command(flatten)]
    pub run: RunArgs,
    /// Append the run's JSON object (one line) to FILE.
    #[arg(long, env = "SSE_LOADGEN_JSON")]
    pub json: Option<PathBuf>,
    /// Write the latency histogram (percentile distribution, .hgrm text) to FILE.
    #[arg(long, env = "SSE_LOADGEN_HDR_LOG")]
    pub hdr_log: Option<PathBuf>,
    /// Exit with status 3 when any delivery was lost or duplicated.
    #[arg(long, env = "SSE_LOADGEN_FAIL_ON_LOSS", value_parser = clap::builder::BoolishValueParser::new())]
    pub fail_on_loss: bool,
}

/// `scale` options.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Connection counts to run, in order.
    #[arg(long, default_value = "1k,5k,10k,19k", value_parser = parse_step_list, env = "SSE_LOADGEN_STEPS")]
    pub steps: Steps,
    /// Shared options.
    #[command(flatten)]
    pub run: RunArgs,
    /// Append one JSON line per step to FILE.
    #[arg(long, env = "SSE_LOADGEN_JSON")]
    pub json: Option<PathBuf>,
    /// Longest wait for the server's memory to settle between steps.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "SSE_LOADGEN_SETTLE_TIMEOUT")]
    pub settle_timeout: Duration,
    /// With --overload: the steps that run the overload phase (default: every step).
    #[arg(long, value_parser = parse_step_list, env = "SSE_LOADGEN_OVERLOAD_STEPS")]
    pub overload_steps: Option<Steps>,
}

/// `report` options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON-lines file from fanout/scale --json (repeatable; one label per server).
    #[arg(long = "input", required = true, env = "SSE_LOADGEN_INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Directory for summary.md and the SVG plots.
    #[arg(long, env = "SSE_LOADGEN_OUT_DIR")]
    pub out_dir: PathBuf,
}

/// `soak` options.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The server's base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "SSE_LOADGEN_BASE_URL"
    )]
    pub base_url: String,
    /// How long to run.
    #[arg(long, default_value = "10m", value_parser = parse_duration, env = "SSE_LOADGEN_DURATION")]
    pub duration: Duration,
    /// Samples before this are left out of the trends (use more than the server's --topic-ttl).
    #[arg(long, default_value = "90s", value_parser = parse_duration, env = "SSE_LOADGEN_WARMUP")]
    pub warmup: Duration,
    /// How often to sample the server.
    #[arg(long, default_value = "5s", value_parser = parse_duration, env = "SSE_LOADGEN_SAMPLE_EVERY")]
    pub sample_every: Duration,
    /// The server's pid, for RSS and descriptors from /proc (else from its /metrics).
    #[arg(long, env = "SSE_LOADGEN_SERVER_PID")]
    pub server_pid: Option<u32>,
    /// Busy topics.
    #[arg(long, default_value_t = 4, env = "SSE_LOADGEN_BUSY_TOPICS")]
    pub busy_topics: usize,
    /// Good subscribers (spread over the busy topics), checked for loss and repeats.
    #[arg(long, default_value = "40", value_parser = parse_count, env = "SSE_LOADGEN_GOOD_SUBSCRIBERS")]
    pub good_subscribers: u64,
    /// Events per second to the busy topics, in all.
    #[arg(long, default_value_t = 200.0, env = "SSE_LOADGEN_BUSY_RATE")]
    pub busy_rate: f64,
    /// Bytes of each busy event's data.
    #[arg(long, default_value = "1KiB", value_parser = parse_size, env = "SSE_LOADGEN_BUSY_PAYLOAD")]
    pub busy_payload: u64,
    /// New topics published to per second, all along (in all).
    #[arg(long, default_value_t = 100.0, env = "SSE_LOADGEN_FRESH_RATE")]
    pub fresh_rate: f64,
    /// Threads publishing to new topics (for rates one connection cannot reach).
    #[arg(long, default_value_t = 1, env = "SSE_LOADGEN_FRESH_THREADS")]
    pub fresh_threads: usize,
    /// Threads that connect and disconnect.
    #[arg(long, default_value_t = 2, env = "SSE_LOADGEN_CHURN_THREADS")]
    pub churn_threads: usize,
    /// Connect/disconnect cycles per second per churn thread.
    #[arg(long, default_value_t = 150.0, env = "SSE_LOADGEN_CHURN_RATE")]
    pub churn_rate: f64,
    /// Subscribers that never read.
    #[arg(long, default_value = "200", value_parser = parse_count, env = "SSE_LOADGEN_STUCK")]
    pub stuck: u64,
    /// Subscribers that read 512 bytes every 100 ms.
    #[arg(long, default_value = "50", value_parser = parse_count, env = "SSE_LOADGEN_SLOW")]
    pub slow: u64,
    /// Where samples.jsonl, summary.json, summary.md and soak.svg go.
    #[arg(long, default_value = "soak-results", env = "SSE_LOADGEN_OUT_DIR")]
    pub out_dir: PathBuf,
}

/// Event loops for `--threads 0`: the number of cores.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl RunArgs {
    /// The fanout settings these options describe.
    pub fn settings(&self, connections: u64) -> FanoutSettings {
        FanoutSettings {
            urls: self.urls.clone(),
            publish_urls: self.publish_urls.clone(),
            headers: self.headers.clone(),
            publish_headers: self.publish_headers.clone(),
            connections,
            connect_rate: self.connect_rate,
            threads: match self.threads {
                0 => default_threads(),
                threads => threads,
            },
            processes: self.processes,
            source_ips: self.source_ips.clone().map_or_else(Vec::new, |list| list.0),
            events: self.events,
            rate: self.rate,
            payload: self.payload,
            publishers: self.publishers,
            drain_timeout: self.drain_timeout,
            response_timeout: self.response_timeout,
            settle: self.settle,
            reconnect: self.reconnect,
            retry: self.retry,
            server_pids: self.server_pids.clone(),
            metrics_url: self.metrics_url.clone(),
            rate_search: self.rate_search,
            search_events: self.search_events,
            search_phase: self.search_phase,
            max_p99: self.max_p99,
            max_rate: self.max_rate,
            max_search_phases: self.max_search_phases,
            overload: self.overload,
            overload_in_flight: self.overload_in_flight,
            overload_drain: self.overload_drain,
            label: self.label.clone(),
            scenario: self.scenario.clone(),
            quiet: self.quiet,
            worker_exe: self.worker_exe.clone(),
        }
    }
}
