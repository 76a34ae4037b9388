// Makes a JSON Web Token with the `jose` package, for server/tests/server/jwt.rs: a second maker
// independent of the server's own crate (and of PyJWT).
//
// Usage: node make-token.mjs SPEC, where SPEC is a JSON object:
//   {"alg": "HS256", "key": "secret"} or {"alg": "ES256", "key_file": "private.pem"} (PKCS#8),
//   "claims": {...}, optional "headers": {...}. Prints the token on stdout.
// A "key" is used as raw HMAC bytes whatever it holds, so a test can sign HS256 with a public
// key's PEM text (the algorithm-confusion attack), which PyJWT refuses to do.
import { readFileSync } from 'node:fs';
import { SignJWT, importPKCS8 } from 'jose';

const spec = JSON.parse(process.argv[2]);
const key = spec.key_file
  ? await importPKCS8(readFileSync(spec.key_file, 'utf8'), spec.alg)
  : new TextEncoder().encode(spec.key);
const token = await new SignJWT(spec.claims)
  .setProtectedHeader({ ...spec.headers, alg: spec.alg })
  .sign(key);
console.log(token);
