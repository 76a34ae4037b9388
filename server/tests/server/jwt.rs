//! JSON Web Token access per topic, with tokens made by two independent libraries: PyJWT (in
//! `tests/clients/.venv`) and Node's `jose` (in `tests/clients/node_modules`), both installed by
//! `scripts/setup-test-deps.sh`; keys are made by `openssl`. Never by the server's own crate.
//!
//! Shown: every refusal of a token (missing, malformed, bad signature, `alg: none`, a wrong
//! algorithm, the HS256-with-the-public-key confusion, `exp` and `nbf` beyond the leeway) is
//! `401` with exactly `WWW-Authenticate: Bearer error="invalid_token"`, on subscribe (header,
//! query, cookie) and publish; a valid token that does not cover a topic is `403`; the leeway
//! admits small skew; the static tokens keep working beside JWT; the binary takes
//! `--jwt-public-key` (ES256) and `SSE_JWT_SECRET`; an open stream is closed at `exp` plus the
//! leeway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sse_server::access::jwt::JwtVerifier;

use crate::util::{
    self, Conn, Response, ServerProcess, SseStream, TestServer, deadline, form, metrics,
    post_form_request, request,
};

/// The HS256 secret the servers under test accept.
const SECRET: &str = "test-secret-of-thirty-two-bytes!";

/// The challenge every token refusal carries (RFC 6750 section 3.1).
const CHALLENGE: &str = "Bearer error=\"invalid_token\"";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Which independent library signs a token.
#[derive(Debug, Clone, Copy)]
enum Maker {
    /// PyJWT, in the test venv.
    PyJwt,
    /// `jose`, under Node.
    Jose,
}

/// Signs `claims` (a JSON object) with `alg` and `key`: `Key::Secret` for HMAC (or `none`),
/// `Key::File` for a PKCS#8 private key. `headers`: extra JOSE header fields, as JSON.
fn token(maker: Maker, alg: &str, key: &Key, claims: &str) -> String {
    let key = match key {
        Key::Secret(secret) => format!("\"key\": {}", json_string(secret)),
        Key::File(path) => format!("\"key_file\": {}", json_string(&path.to_string_lossy())),
    };
    let spec = format!("{{\"alg\": \"{alg}\", {key}, \"claims\": {claims}}}");
    let dir = clients_dir();
    let output = match maker {
        Maker::PyJwt => Command::new(dir.join(".venv/bin/python"))
            .arg(dir.join("make_token.py"))
            .arg(&spec)
            .output(),
        Maker::Jose => Command::new("node")
            .arg(dir.join("make-token.mjs"))
            .arg(&spec)
            .current_dir(&dir)
            .output(),
    }
    .unwrap_or_else(|e| {
        panic!("cannot run the {maker:?} token maker ({e}); run ./scripts/setup-test-deps.sh")
    });
    assert!(
        output.status.success(),
        "{maker:?} token maker failed for {spec}: {}\n(run ./scripts/setup-test-deps.sh)",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A signing key for [`token`].
enum Key {
    /// HMAC secret (any bytes, even a PEM's text).
    Secret(String),
    /// A PKCS#8 private key file.
    File(PathBuf),
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Key pairs made by `openssl` in a directory of their own, removed on drop.
struct KeyPairs {
    dir: PathBuf,
}

impl KeyPairs {
    /// An RSA (2048) and an EC (P-256) key pair, and a second RSA pair the server does not know.
    fn new(name: &str) -> KeyPairs {
        let dir = std::env::temp_dir().join(format!("sse-jwt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (stem, options) in [
            (
                "rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            ),
            (
                "other-rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            ),
            (
                "ec",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
        ] {
            let private = dir.join(format!("{stem}.pem"));
            let public = dir.join(format!("{stem}.pub.pem"));
            let made = Command::new("openssl")
                .stderr(std::process::Stdio::null())
                .arg("genpkey")
                .args(options)
                .arg("-out")
                .arg(&private)
                .status()
                .expect("run openssl")
                .success()
                && Command::new("openssl")
                    .args(["pkey", "-pubout", "-in"])
                    .arg(&private)
                    .arg("-out")
                    .arg(&public)
                    .status()
                    .expect("run openssl")
                    .success();
            assert!(made, "openssl could not make the {stem} key pair");
        }
        KeyPairs { dir }
    }

    fn private(&self, stem: &str) -> Key {
        Key::File(self.dir.join(format!("{stem}.pem")))
    }

    fn public_path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.pub.pem"))
    }

    fn public_pem(&self, stem: &str) -> String {
        std::fs::read_to_string(self.public_path(stem)).unwrap()
    }
}

impl Drop for KeyPairs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An in-process server accepting HS256 with [`SECRET`] and the public key at `public_key`, with
/// `leeway`, the cookie `sse_token`, and whatever `config` says besides.
fn jwt_server(
    public_key: Option<&Path>,
    leeway: Duration,
    config: sse_server::Config,
) -> TestServer {
    let pem = public_key.map(|path| std::fs::read(path).unwrap());
    let verifier = JwtVerifier::new(Some(SECRET.as_bytes()), pem.as_deref(), leeway).unwrap();
    TestServer::start(sse_server::Config {
        jwt: Some(Arc::new(verifier)),
        jwt_cookie: Some("sse_token".into()),
        ..config
    })
}

/// The status and head of `GET path` with `headers`, without waiting for a stream's body; the
/// text of a refusal's body.
fn subscribe_status(addr: SocketAddr, path: &str, headers: &str) -> (Response, String) {
    let mut conn = Conn::connect(addr);
    conn.send(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    let mut head = conn.read_head(deadline());
    let mut text = String::new();
    if let Some(length) = head.header("content-length") {
        head.body = conn.take(length.parse().unwrap(), deadline());
        text = String::from_utf8_lossy(&head.body).into_owned();
    }
    (head, text)
}

/// `POST /publish` with a form body and extra header lines.
fn publish_with(addr: SocketAddr, body: &str, headers: &str) -> Response {
    request(
        addr,
        &post_form_request("/publish", body, &format!("{headers}Connection: close\r\n")),
    )
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// Asserts a token refusal: `401` and exactly the `invalid_token` challenge, once.
fn assert_invalid_token(response: &Response, what: &str) {
    assert_eq!(
        response.status,
        401,
        "{what}: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    let challenges: Vec<&str> = response
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(challenges, [CHALLENGE], "{what}");
}

/// Every way a token can be invalid is `401` with the `invalid_token` challenge, whichever way
/// it comes (header, query, cookie) and on publish too; within the leeway `exp` and `nbf` pass.
#[test]
fn invalid_tokens_are_401_with_invalid_token_challenge() {
    let keys = KeyPairs::new("refusals");
    let server = jwt_server(
        Some(&keys.public_path("rsa")),
        Duration::from_secs(5),
        util::config(),
    );
    let addr = server.addr;
    let now = unix_now();
    let all = r#"{"sse": {"subscribe": ["*"], "publish": ["*"]}}"#;
    let secret = Key::Secret(SECRET.into());
    let claims =
        |extra: &str| format!(r#"{{"sse": {{"subscribe": ["*"], "publish": ["*"]}}{extra}}}"#);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("not a JWT", Some("not-a-token".into())),
        ("three parts of garbage", Some("abc.def.ghi".into())),
        (
            "HS256, wrong secret (PyJWT)",
            Some(token(
                Maker::PyJwt,
                "HS256",
                &Key::Secret("another secret, 32 bytes long!!".into()),
                all,
            )),
        ),
        (
            "alg none (PyJWT)",
            Some(token(
                Maker::PyJwt,
                "none",
                &Key::Secret(String::new()),
                all,
            )),
        ),
        (
            "HS512 with the right secret: not an accepted algorithm (jose)",
            Some(token(Maker::Jose, "HS512", &secret, all)),
        ),
        (
            "HS256 signed with the RSA public key as secret (jose)",
            Some(token(
                Maker::Jose,
                "HS256",
                &Key::Secret(keys.public_pem("rsa")),
                all,
            )),
        ),
        (
            "RS256 by a key the server does not know (jose)",
            Some(token(Maker::Jose, "RS256", &keys.private("other-rsa"), all)),
        ),
        (
            "ES256 while the server holds an RSA key (PyJWT)",
            Some(token(Maker::PyJwt, "ES256", &keys.private("ec"), all)),
        ),
        (
            "RS512 by the right key: not an accepted algorithm (PyJWT)",
            Some(token(Maker::PyJwt, "RS512", &keys.private("rsa"), all)),
        ),
        (
            "expired beyond the leeway (PyJWT)",
            Some(token(
                Maker::PyJwt,
                "HS256",
                &secret,
                &claims(&format!(r#", "exp": {}"#, now - 10)),
            )),
        ),
        (
            "nbf beyond the leeway (jose)",
            Some(token(
                Maker::Jose,
                "RS256",
                &keys.private("rsa"),
                &claims(&format!(r#", "nbf": {}"#, now + 60)),
            )),
        ),
        (
            "claims of the wrong shape (PyJWT)",
            Some(token(
                Maker::PyJwt,
                "HS256",
                &secret,
                r#"{"sse": {"subscribe": "news"}}"#,
            )),
        ),
    ];
    for (what, token) in &cases {
        let header = token.as_deref().map(bearer).unwrap_or_default();
        let (response, _) = subscribe_status(addr, "/events?topic=news", &header);
        assert_invalid_token(&response, &format!("subscribe, header: {what}"));
        let response = publish_with(addr, "topic=news&data=x", &header);
        assert_invalid_token(&response, &format!("publish: {what}"));
        if let Some(token) = token {
            let path = format!("/events?topic=news&{}", form(&[("access_token", token)]));
            let (response, _) = subscribe_status(addr, &path, "");
            assert_invalid_token(&response, &format!("subscribe, query: {what}"));
            let cookie = format!("Cookie: theme=dark; sse_token={token}\r\n");
            let (response, _) = subscribe_status(addr, "/events?topic=news", &cookie);
            assert_invalid_token(&response, &format!("subscribe, cookie: {what}"));
        }
    }
    // Skew within the leeway passes, from either library and either key (the time is taken
    // again: making the tokens above takes seconds).
    let now = unix_now();
    for (what, token) in [
        (
            "exp 2 s ago (PyJWT, HS256)",
            token(
                Maker::PyJwt,
                "HS256",
                &secret,
                &claims(&format!(r#", "exp": {}"#, now - 2)),
            ),
        ),
        (
            "nbf 2 s ahead (jose, RS256)",
            token(
                Maker::Jose,
                "RS256",
                &keys.private("rsa"),
                &claims(&format!(r#", "nbf": {}, "exp": {}"#, now + 2, now + 600)),
            ),
        ),
        (
            "no exp at all (jose, HS256)",
            token(Maker::Jose, "HS256", &secret, all),
        ),
    ] {
        let (response, text) = subscribe_status(addr, "/events?topic=news", &bearer(&token));
        assert_eq!(response.status, 200, "{what}: {text}");
        let response = publish_with(addr, "topic=news&data=x", &bearer(&token));
        assert_eq!(response.status, 200, "{what}: {:?}", response.text());
    }
}

/// A valid token opens only the topics its `sse.subscribe` patterns cover, and publishes only
/// to those of `sse.publish`; anything else is `403` (no challenge: the token itself is fine).
/// The cookie is read for subscribing only.
#[test]
fn valid_tokens_cover_only_their_topics() {
    let keys = KeyPairs::new("topics");
    let server = jwt_server(
        Some(&keys.public_path("ec")),
        Duration::from_secs(5),
        util::config(),
    );
    let addr = server.addr;
    let exp = unix_now() + 600;
    let claims = format!(
        r#"{{"sse": {{"subscribe": ["news", "user/42", "chat/*"], "publish": ["chat/*"]}}, "exp": {exp}}}"#
    );
    for (maker, alg, key) in [
        (Maker::PyJwt, "HS256", Key::Secret(SECRET.into())),
        (Maker::Jose, "ES256", keys.private("ec")),
        (Maker::PyJwt, "ES256", keys.private("ec")),
    ] {
        let token = token(maker, alg, &key, &claims);
        let by = format!("{maker:?} {alg}");
        for (query, expected) in [
            ("topic=news", 200),
            ("topic=user%2F42", 200),
            ("topic=chat%2Froom1", 200),
            ("topic=news&topic=chat%2Fa", 200),
            ("topic=user%2F43", 403),
            ("topic=chat", 403),
            ("topic=news&topic=sports", 403),
            ("", 403),
        ] {
            for (how, path, headers) in [
                ("header", format!("/events?{query}"), bearer(&token)),
                (
                    "query",
                    format!("/events?{query}&{}", form(&[("access_token", &token)])),
                    String::new(),
                ),
                (
                    "cookie",
                    format!("/events?{query}"),
                    format!("Cookie: sse_token={token}\r\n"),
                ),
            ] {
                let (response, text) = subscribe_status(addr, &path, &headers);
                assert_eq!(response.status, expected, "{by}, {how}, {query}: {text}");
                assert!(
                    response.header("www-authenticate").is_none(),
                    "{by} {how} {query}"
                );
                if expected == 403 {
                    assert_eq!(text, "the token does not cover every topic\n");
                }
            }
        }
        // Topics from a POST body are checked once the body is read.
        for (body, expected) in [("topic=chat%2Fx&topic=news", 200), ("topic=secret", 403)] {
            let raw = post_form_request(
                "/events",
                body,
                &format!("{}Connection: close\r\n", bearer(&token)),
            );
            let mut conn = Conn::connect(addr);
            conn.send(&raw);
            let head = conn.read_head(deadline());
            assert_eq!(head.status, expected, "{by}, POST /events {body}");
        }
        for (body, headers, expected) in [
            ("topic=chat%2Fx&data=hi", bearer(&token), 200),
            ("topic=chat%2Fx&topic=chat%2Fy&data=hi", bearer(&token), 200),
            ("topic=news&data=hi", bearer(&token), 403),
            ("topic=chat%2Fx&topic=news&data=hi", bearer(&token), 403),
            // The cookie does not authorize a publish (it rides along on cross-site requests).
            (
                "topic=chat%2Fx&data=hi",
                format!("Cookie: sse_token={token}\r\n"),
                401,
            ),
        ] {
            let response = publish_with(addr, body, &headers);
            assert_eq!(
                response.status,
                expected,
                "{by}, publish {body}: {:?}",
                response.text()
            );
        }
    }
    // A token with no `sse` claim grants nothing.
    let bare = token(
        Maker::Jose,
        "HS256",
        &Key::Secret(SECRET.into()),
        &format!(r#"{{"exp": {exp}}}"#),
    );
    assert_eq!(
        subscribe_status(addr, "/events?topic=news", &bearer(&bare))
            .0
            .status,
        403
    );
    assert_eq!(
        publish_with(addr, "topic=news&data=x", &bearer(&bare)).status,
        403
    );
}

/// `--subscribe-token` and `--publish-token` keep working beside JWT, for every topic; the
/// subscribe token is not a publish token.
#[test]
fn static_tokens_work_beside_jwt() {
    let server = jwt_server(
        None,
        Duration::from_secs(5),
        sse_server::Config {
            publish_token: Some("pub-static".into()),
            subscribe_token: Some("sub-static".into()),
            ..util::config()
        },
    );
    let addr = server.addr;
    let mut stream = SseStream::open(addr, "/events?topic=anything", &bearer("sub-static"));
    stream.read_preamble(deadline());
    let response = publish_with(addr, "topic=anything&data=static", &bearer("pub-static"));
    assert_eq!(response.status, 200, "{:?}", response.text());
    assert_eq!(stream.next_event().data_text(), "static");
    let (response, _) = subscribe_status(addr, "/events?access_token=sub-static&topic=x", "");
    assert_eq!(response.status, 200);
    assert_invalid_token(
        &publish_with(addr, "topic=x&data=y", &bearer("sub-static")),
        "subscribe token used to publish",
    );
    assert_invalid_token(&publish_with(addr, "topic=x&data=y", ""), "no token");
}

/// The binary reads an ES256 public key from `--jwt-public-key FILE` and the HS256 secret from
/// `SSE_JWT_SECRET`, says so at start, and refuses a key file that holds no public key.
#[test]
fn binary_takes_key_file_and_secret_from_env() {
    let keys = KeyPairs::new("binary");
    let public = keys.public_path("ec").to_string_lossy().into_owned();
    let server = ServerProcess::spawn_with_env(
        &["--jwt-public-key", &public],
        &[("SSE_JWT_SECRET", SECRET)],
    );
    assert!(
        server.startup_line.contains("publish=jwt-or-bearer-token"),
        "{}",
        server.startup_line
    );
    let claims = r#"{"sse": {"subscribe": ["a"], "publish": ["a"]}}"#;
    for (maker, alg, key) in [
        (Maker::Jose, "ES256", keys.private("ec")),
        (Maker::PyJwt, "HS256", Key::Secret(SECRET.into())),
    ] {
        let token = token(maker, alg, &key, claims);
        let (response, text) = subscribe_status(server.addr, "/events?topic=a", &bearer(&token));
        assert_eq!(response.status, 200, "{maker:?} {alg}: {text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .args(["--listen", "127.0.0.1:0", "--jwt-public-key"])
        .arg(keys.dir.join("ec.pem"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.starts_with("sse-server: error: --jwt-public-key ")
            && stderr.contains("not an RSA or EC"),
        "{stderr}"
    );
}

/// An open stream is closed when its token expires, at `exp` plus the leeway, not before; the
/// closing is counted; a stream with a longer-lived token on the same loop stays open.
#[test]
fn stream_closes_when_its_token_expires() {
    let leeway = Duration::from_secs(1);
    let server = jwt_server(
        None,
        leeway,
        sse_server::Config {
            publish_token: Some("pub-static".into()),
            ..util::config()
        },
    );
    let addr = server.addr;
    let publish = |data: &str| {
        let response = publish_with(
            addr,
            &form(&[("topic", "t"), ("data", data)]),
            &bearer("pub-static"),
        );
        assert_eq!(response.status, 200, "{:?}", response.text());
        util::parse_id(&response)
    };
    let secret = Key::Secret(SECRET.into());
    let exp = unix_now() + 2;
    let short = token(
        Maker::PyJwt,
        "HS256",
        &secret,
        &format!(r#"{{"sse": {{"subscribe": ["t"]}}, "exp": {exp}}}"#),
    );
    let long = token(
        Maker::Jose,
        "HS256",
        &secret,
        &format!(r#"{{"sse": {{"subscribe": ["t"]}}, "exp": {}}}"#, exp + 600),
    );
    let mut expiring = SseStream::open(addr, "/events?topic=t", &bearer(&short));
    let mut lasting = SseStream::open(addr, "/events?topic=t", &bearer(&long));
    expiring.read_preamble(deadline());
    lasting.read_preamble(deadline());
    let id = publish("before expiry");
    assert_eq!(expiring.next_event().id, Some(id));
    assert_eq!(lasting.next_event().data_text(), "before expiry");
    let closes_at = UNIX_EPOCH + Duration::from_secs(exp) + leeway;
    assert!(
        expiring.wait_closed(Instant::now() + Duration::from_secs(10)),
        "stream not closed"
    );
    let closed = SystemTime::now();
    assert!(
        closed >= closes_at,
        "closed {:?} before exp + leeway",
        closes_at.duration_since(closed).unwrap()
    );
    let late = closed.duration_since(closes_at).unwrap();
    assert!(
        late < Duration::from_millis(1500),
        "closed {late:?} after exp + leeway"
    );
    assert_eq!(
        util::metric(&metrics(addr), "sse_token_expiry_closes_total"),
        1.0
    );
    publish("after expiry");
    assert_eq!(lasting.next_event().data_text(), "after expiry");
    // Coming back with the same token is refused: the client must fetch a new one.
    let (response, _) = subscribe_status(addr, "/events?topic=t", &bearer(&short));
    assert_invalid_token(&response, "expired token on reconnect");
}
