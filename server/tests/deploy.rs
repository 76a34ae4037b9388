//! The files under `server/deploy/` checked against the real thing: the OpenAPI document
//! against running servers (a request per documented status, and the schemathesis fuzzer), the systemd unit with `systemd-analyze`, the sysctl file against
//! this machine's kernel. (The nginx configuration has its own test, `tests/proxy.rs`.)
//!
//! What they need (the Python venv with PyJWT, PyYAML, openapi-spec-validator and schemathesis;
//! `systemd-analyze`) is installed by `./scripts/setup-test-deps.sh`; a missing tool fails the
//! test and says so.

#[path = "util/mod.rs"]
mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::ServerProcess;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_file(name: &str) -> PathBuf {
    manifest_dir().join("deploy").join(name)
}

/// Every path the router answers (`routes.rs`): the document must describe exactly these.
const ROUTES: &str = "/ /events /healthz /metrics /publish";

/// `server/deploy/openapi.yaml` is valid OpenAPI 3.1, describes exactly the server's paths, and
/// every status it lists for every operation (and for any request) is what the real server
/// answers to the request its `x-tests` give, with the required headers and media type.
#[test]
fn openapi_document_matches_the_server() {
    let secret = "openapi-check-secret-of-32-bytes";
    let main = ServerProcess::spawn(&[
        "--publish-token",
        "pub-token",
        "--subscribe-token",
        "sub-token",
        "--jwt-secret",
        secret,
        "--jwt-cookie",
        "sse_token",
        "--max-body",
        "1KiB",
        "--header-timeout",
        "1s",
    ]);
    let limited = ServerProcess::spawn(&["--max-connections", "1", "--max-topics", "1"]);
    let config = format!(
        r#"{{"openapi": "{}", "servers": {{"main": "{}", "limited": "{}"}},
            "publish_token": "pub-token", "subscribe_token": "sub-token", "jwt_secret": "{secret}"}}"#,
        deploy_file("openapi.yaml").display(),
        main.addr,
        limited.addr
    );
    let clients = manifest_dir().join("tests/clients");
    let output = Command::new(clients.join(".venv/bin/python"))
        .arg(clients.join("check_openapi.py"))
        .arg(&config)
        .output()
        .expect("run the venv's python; run ./scripts/setup-test-deps.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let paths = stdout
        .lines()
        .find_map(|line| line.strip_prefix("PATHS "))
        .expect("PATHS line");
    assert_eq!(paths, ROUTES, "the document's paths are not the server's");
    let checked = stdout
        .lines()
        .filter(|line| line.starts_with("OK "))
        .count();
    assert!(checked >= 30, "only {checked} checks ran:\n{stdout}");
    assert!(!stdout.contains("SKIP"), "{stdout}");
}

/// The schema-driven fuzzer schemathesis (from the test venv) generates requests from the
/// document, valid ones and edge cases, and checks every answer of the real server: no `5xx`
/// that is not documented, every status, media type, header and body as documented. `/events`
/// included: the server closes each stream after `--stream-lifetime` (under 100 ms here),
/// so a generated subscription ends with its whole response checked instead of waiting out the
/// fuzzer's timeout. The input-strictness checks (`positive_data_acceptance`, `negative_data_rejection`) are not run:
/// the server ignores unknown fields and its 128-byte topic limit is narrower in the schema
/// (32 characters) than in fact. The seed is fixed so a failure reproduces.
#[test]
fn schemathesis_finds_no_undocumented_answer() {
    let server = ServerProcess::spawn(&[
        "--publish-token",
        "fuzz-token",
        "--stream-lifetime",
        "50ms",
        // The loop's timers run at half the heartbeat: streams end within ~100 ms.
        "--heartbeat",
        "100ms",
    ]);
    let venv = manifest_dir().join("tests/clients/.venv/bin");
    // schemathesis keeps a cache of failures in `.schemathesis/` under its working directory:
    // one of its own, removed afterwards, so nothing lands in the source tree.
    let work = std::env::temp_dir().join(format!("sse-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let output = Command::new(venv.join("schemathesis"))
        .current_dir(&work)
        .arg("run")
        .arg(deploy_file("openapi.yaml"))
        .arg("--url")
        .arg(format!("http://{}", server.addr))
        .args(["-H", "Authorization: Bearer fuzz-token"])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--request-timeout",
            "5",
        ])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis; run ./scripts/setup-test-deps.sh");
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("No issues found"), "{stdout}");
}

/// The value of `key=` in the unit's `[Service]` lines (the last one, as systemd takes it).
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// The settings of the sysctl file, key to value, comments left out.
fn sysctl_settings() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(deploy_file("sysctl/sse-server.conf")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.split_once('=').expect("key = value");
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

fn numbers(value: &str) -> Vec<u64> {
    value
        .split_whitespace()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a number in {value:?}"))
        })
        .collect()
}

/// `server/deploy/systemd/sse-server.service` and the template `sse-server@.service` (several
/// processes on one address) pass `systemd-analyze verify` (no warning about them either: a
/// misspelled option is only a warning) and `systemd-analyze security` rates their exposure 2.0
/// or lower; the fd limit fits under the sysctl file's `fs.nr_open`, and systemd waits longer
/// than the drain before it kills. `ExecStart` is pointed at the binary under test, since
/// `verify` checks that it exists. The template is the single unit line for line but for what
/// makes it a template (instances share one address, one user, one env file each), so the two
/// cannot drift apart.
#[test]
fn systemd_units_verify() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|output| output.status.success()),
        "systemd-analyze not found; run ./scripts/setup-test-deps.sh (Debian package systemd)"
    );
    let single = std::fs::read_to_string(deploy_file("systemd/sse-server.service")).unwrap();
    let template = std::fs::read_to_string(deploy_file("systemd/sse-server@.service")).unwrap();
    for (name, unit) in [
        ("sse-server.service", &single),
        ("sse-server@.service", &template),
    ] {
        verify_unit(name, unit);
    }

    let settings = |unit: &str| -> Vec<String> {
        unit.lines()
            .skip_while(|line| !line.starts_with('['))
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(str::to_owned)
            .collect()
    };
    let template_only = [
        "Description=sse-server: Server-Sent Events fan-out, process %i of several on one address",
        "Environment=SSE_REUSE_PORT=1",
        "EnvironmentFile=-/etc/sse-server/%i.env",
        "User=sse-server",
    ];
    let mut expected = settings(&single);
    expected.retain(|line| !line.starts_with("Description="));
    let mut found = settings(&template);
    found.retain(|line| !template_only.contains(&line.as_str()));
    assert_eq!(
        found, expected,
        "the template drifted from sse-server.service"
    );
    for line in template_only {
        assert!(template.contains(line), "the template lacks {line:?}");
    }
}

/// `systemd-analyze verify` and `security --offline` on one unit file, and its limits.
fn verify_unit(name: &str, unit: &str) {
    let dir = std::env::temp_dir().join(format!("sse-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let under_test = unit.replace(
        "ExecStart=/usr/local/bin/sse-server",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_sse-server")),
    );
    assert_ne!(
        under_test, unit,
        "{name}: the unit's ExecStart changed; update this test"
    );
    std::fs::write(&path, under_test).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success(),
        "{name}: systemd-analyze verify: {stderr}"
    );
    let about_ours: Vec<&str> = stderr.lines().filter(|line| line.contains(name)).collect();
    assert!(
        about_ours.is_empty(),
        "{name}: systemd-analyze verify: {about_ours:?}"
    );
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "{name}: exposure above 2.0:\n{}",
        report
            .lines()
            .filter(|l| l.contains('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let limit: u64 = unit_value(unit, "LimitNOFILE").unwrap().parse().unwrap();
    assert_eq!(limit, 1 << 20);
    let nr_open = numbers(&sysctl_settings()["fs.nr_open"])[0];
    assert!(
        limit <= nr_open,
        "{name}: LimitNOFILE {limit} over fs.nr_open {nr_open}"
    );
    let stop: u64 = unit_value(unit, "TimeoutStopSec")
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    let drain = unit
        .lines()
        .filter_map(|line| line.strip_prefix("Environment=SSE_DRAIN="))
        .next_back()
        .expect("SSE_DRAIN in the unit");
    let drain: u64 = drain.trim_end_matches('s').parse().unwrap();
    assert!(
        stop > drain,
        "{name}: TimeoutStopSec {stop}s not above the drain {drain}s"
    );
    assert_eq!(unit_value(unit, "KillSignal"), Some("SIGTERM"));
}

/// Every key of `server/deploy/sysctl/sse-server.conf` is a setting this kernel has (under
/// `/proc/sys`), with as many numbers as the kernel's value, and the values hang together:
/// `file-max` above `nr_open`, thresholds and buffer sizes ascending, a port range that leaves
/// the privileged ports alone. (The file is not applied: the machine is shared.)
#[test]
fn sysctl_file_names_real_settings() {
    let settings = sysctl_settings();
    for key in [
        "fs.file-max",
        "fs.nr_open",
        "net.core.somaxconn",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    ] {
        assert!(settings.contains_key(key), "{key} missing");
    }
    for (key, value) in &settings {
        let proc_path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let current = std::fs::read_to_string(&proc_path)
            .unwrap_or_else(|e| panic!("{key}: no {} ({e})", proc_path.display()));
        assert_eq!(
            numbers(value).len(),
            numbers(&current).len(),
            "{key} = {value}: the kernel's value is {current:?}"
        );
    }
    let one = |key: &str| numbers(&settings[key])[0];
    assert!(one("fs.file-max") > one("fs.nr_open"));
    assert!(one("fs.nr_open") >= 1 << 20);
    assert!(one("net.core.somaxconn") >= 4096);
    let ports = numbers(&settings["net.ipv4.ip_local_port_range"]);
    assert!(1024 <= ports[0] && ports[0] < ports[1] && ports[1] <= 65535);
    for key in ["net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"] {
        let values = numbers(&settings[key]);
        assert!(values.is_sorted(), "{key} not ascending: {values:?}");
    }
}
