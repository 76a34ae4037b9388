//! Starting the binary as a user does: `--listen` with a host name, and the refusals of
//! addresses it cannot listen on.

use std::process::Command;

use crate::util::{ServerProcess, get};

/// `--listen localhost:0` resolves the name, listens on its IPv4 address, and says so in the
/// start-up line; the server then answers there. (Guards against issue 15, defect 9:
/// `--listen localhost:8081` was refused as `invalid socket address syntax`.)
#[test]
fn listen_resolves_a_host_name_and_says_which_address() {
    let server = ServerProcess::spawn_listening_on("localhost:0", &[]);
    let line = &server.startup_line;
    assert!(
        line.starts_with("sse-server: listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.contains(" listen=localhost:0 (resolved to 127.0.0.1:0"),
        "{line}"
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);
}

/// What cannot be listened on is a usage error (status 2) naming the value and what to write
/// instead: `:PORT` (which would silently mean every interface, or silently loopback), a name
/// that does not resolve, a missing port.
#[test]
fn listen_refuses_what_it_cannot_listen_on_with_the_remedy() {
    for (listen, reason) in [
        (
            ":0",
            "give 127.0.0.1:0 to listen on this host only, or 0.0.0.0:0",
        ),
        ("nosuch.invalid:8080", "cannot resolve \"nosuch.invalid\""),
        ("localhost", "has no port"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sse-server"))
            .args(["--listen", listen, "--demo-interval", "0"])
            .env_remove("SSE_LISTEN")
            .output()
            .expect("run sse-server");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{listen}: {stderr}");
        assert!(stderr.contains("--listen"), "{listen}: {stderr}");
        assert!(stderr.contains(reason), "{listen}: {stderr}");
    }
}
