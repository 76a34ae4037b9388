"""Checks server/deploy/openapi.yaml against running sse-server processes, for
server/tests/deploy.rs.

The document must be valid OpenAPI 3.1 (openapi-spec-validator). Then, for every operation and
every status it lists (and every status of `x-general-responses`), the request its `x-tests`
entry describes is sent over a raw socket; the answer must have that status, every header the
document marks required, and the documented media type. A status without a test fails, unless
its test says `skip` with a reason (printed). A test may name the `server` it needs (default
`main`), a stream to `hold` open meanwhile, and a `first` request that sets the stage.

Usage: check_openapi.py CONFIG, CONFIG a JSON object:
  {"openapi": PATH, "servers": {"main": "HOST:PORT", "limited": "HOST:PORT"},
   "publish_token": T, "subscribe_token": T, "jwt_secret": S}
Prints `OK ...`, `SKIP ...` or `FAIL ...` per check, then `PATHS` and the documented paths;
exits 1 if any check failed.
"""

import json
import socket
import sys
import time

import jwt
import yaml
from openapi_spec_validator import validate

METHODS = ("get", "head", "post", "put", "delete", "options", "patch")


def resolve(document, node):
    """Follows a local `$ref`, repeatedly."""
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def placeholders(config):
    now = int(time.time())
    secret = config["jwt_secret"]
    news = {"sse": {"subscribe": ["news"], "publish": ["news"]}}
    return {
        "{PUBLISH_TOKEN}": config["publish_token"],
        "{SUBSCRIBE_TOKEN}": config["subscribe_token"],
        "{JWT_NEWS}": jwt.encode({**news, "exp": now + 600}, secret, algorithm="HS256"),
        "{JWT_EXPIRED}": jwt.encode({**news, "exp": now - 600}, secret, algorithm="HS256"),
        "{JWT_OTHER_KEY}": jwt.encode(
            {**news, "exp": now + 600}, "a different secret of 32 bytes!!", algorithm="HS256"
        ),
        "{LONG_BODY}": "x" * 20000,
        "{LONG_HEADER}": "x" * 9000,
    }


def fill(text, values):
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def build_request(method, path, test, host, values):
    if "raw" in test:
        return fill(test["raw"], values).encode()
    target = fill(test.get("path", path), values)
    if "query" in test:
        target += "?" + fill(test["query"], values)
    lines = [f"{test.get('method', method).upper()} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in test.get("headers", {}).items():
        lines.append(f"{name}: {fill(value, values)}")
    body = b""
    if "body" in test:
        body = fill(test["body"], values).encode()
        content_type = test.get("content_type", "application/x-www-form-urlencoded")
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def connect(address):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_head(sock):
    """The status and headers (lower-cased names) of the response on `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def exchange(address, raw, hold_path=None):
    held = None
    if hold_path:
        held = connect(address)
        held.sendall(f"GET {hold_path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
        read_head(held)
    sock = connect(address)
    try:
        try:
            sock.sendall(raw)
        except OSError:
            pass  # the server may answer (413) and close before the whole body is sent
        return read_head(sock)
    finally:
        sock.close()
        if held:
            held.close()


def check(document, label, method, path, code, response, test, config, values):
    if test is None:
        return f"FAIL {label} {code}: no x-test for this status"
    if "skip" in test:
        return f"SKIP {label} {code}: {test['skip']}"
    address = config["servers"][test.get("server", "main")]
    raw = build_request(method, path, test, address, values)
    try:
        if "first" in test:
            # A request that sets the stage (its own answer is not checked).
            exchange(address, build_request(method, path, test["first"], address, values))
        status, headers = exchange(address, raw, test.get("hold"))
    except (OSError, IndexError, ValueError) as error:
        return f"FAIL {label} {code}: {error!r}"
    problems = []
    if status != int(code):
        problems.append(f"status {status}")
    response = resolve(document, response)
    for name, header in (response.get("headers") or {}).items():
        header = resolve(document, header)
        if header.get("required") and name.lower() not in headers:
            problems.append(f"no {name} header")
    content = response.get("content") or {}
    if content and method != "head":
        media = headers.get("content-type", "").split(";")[0].strip()
        if media not in content:
            problems.append(f"Content-Type {media!r} not in {sorted(content)}")
    if problems:
        return f"FAIL {label} {code}: " + ", ".join(problems)
    return f"OK {label} {code}"


def main():
    config = json.loads(sys.argv[1])
    with open(config["openapi"], encoding="utf-8") as file:
        document = yaml.safe_load(file)
    validate(document)
    print("OK document is valid OpenAPI", document["openapi"])
    values = placeholders(config)
    results = []
    general = document.get("x-general-responses", {})
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tests = operation.get("x-tests", {})
            for code, response in operation["responses"].items():
                label = f"{method.upper()} {path}"
                # A status any request may get is tested on this operation with the general test.
                test = tests.get(code, general.get(code, {}).get("x-test"))
                results.append(
                    check(document, label, method, path, code, response, test, config, values)
                )
    for code, response in document.get("x-general-responses", {}).items():
        results.append(
            check(document, "any", "get", "/healthz", code, response, response.get("x-test"), config, values)
        )
    for line in results:
        print(line)
    print("PATHS " + " ".join(sorted(document["paths"])))
    sys.exit(1 if any(line.startswith("FAIL") for line in results) else 0)


if __name__ == "__main__":
    main()
