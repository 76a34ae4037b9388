"""Makes a JSON Web Token with PyJWT, for server/tests/server/jwt.rs: a maker independent of the
server's own crate, so a test token is what other programs would send.

Usage: make_token.py SPEC, where SPEC is a JSON object:
  {"alg": "HS256", "key": "secret"} or {"alg": "RS256", "key_file": "private.pem"},
  "claims": {...}, optional "headers": {...}. Prints the token on stdout.
"""

import json
import sys

import jwt


def main() -> None:
    spec = json.loads(sys.argv[1])
    if "key_file" in spec:
        with open(spec["key_file"], encoding="ascii") as file:
            key = file.read()
    else:
        key = spec.get("key")
    token = jwt.encode(
        spec["claims"], key, algorithm=spec["alg"], headers=spec.get("headers")
    )
    print(token)


if __name__ == "__main__":
    main()
