//! JSON Web Tokens that say which topics their holder may read or write.
//!
//! A token is signed with HS256 (`--jwt-secret`) or with RS256 or ES256 (`--jwt-public-key`, a
//! PEM public key; its kind decides the one algorithm it verifies). Its claims:
//!
//! ```json
//! {"sse": {"subscribe": ["news", "user/42", "chat/*"], "publish": ["chat/*"]}, "exp": 1767225600}
//! ```
//!
//! A pattern is an exact topic, or a prefix ending in `*` (`*` alone: every topic). `exp` and
//! `nbf` are checked with `--jwt-leeway` of clock skew either way; a token without `exp` never
//! expires. `aud`, `iss` and `sub` are not checked: the key alone says who may issue tokens.
//!
//! The algorithm is chosen by the key, never by the token: the token's `alg` header must name
//! the algorithm of a configured key, so `alg: none`, or HS256 signed with the public key as the
//! secret (the classic confusion), is refused ([`TokenRefusal::Algorithm`]). Signatures are
//! checked by the `jsonwebtoken` crate on its RustCrypto backend.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Why a token was refused (`401` with `WWW-Authenticate: Bearer error="invalid_token"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No token in the header, the query string or the cookie.
    Missing,
    /// Not three base64url parts of JSON, or claims of the wrong shape.
    Malformed,
    /// The `alg` header names no configured key's algorithm (`none` included).
    Algorithm,
    /// The signature does not verify.
    Signature,
    /// `exp` is more than the leeway in the past.
    Expired,
    /// `nbf` is more than the leeway in the future.
    NotYetValid,
}

impl TokenRefusal {
    /// The plain-text reason sent to the client.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenRefusal::Missing => {
                "a token is required: Authorization: Bearer TOKEN, ?access_token=TOKEN or the cookie"
            }
            TokenRefusal::Malformed => "the token is malformed",
            TokenRefusal::Algorithm => "the token's algorithm is not accepted",
            TokenRefusal::Signature => "the token's signature does not verify",
            TokenRefusal::Expired => "the token has expired",
            TokenRefusal::NotYetValid => "the token is not valid yet (nbf)",
        }
    }
}

/// What a verified token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Topic patterns the holder may subscribe to.
    pub subscribe: Box<[Box<str>]>,
    /// Topic patterns the holder may publish to.
    pub publish: Box<[Box<str>]>,
    /// When the token stops being valid: `exp` plus the leeway. `None`: no `exp`.
    pub valid_until: Option<SystemTime>,
}

/// The keys and rules tokens are verified with.
pub struct JwtVerifier {
    /// `--jwt-secret`, for HS256.
    secret: Option<DecodingKey>,
    /// `--jwt-public-key`, with the one algorithm its kind verifies.
    public_key: Option<(Algorithm, DecodingKey)>,
    /// Clock skew allowed on `exp` and `nbf`.
    leeway: Duration,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.secret.is_some())
            .field("public_key", &self.public_key.as_ref().map(|(alg, _)| alg))
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// A `--jwt-public-key` file that holds neither an RSA nor an EC public key in PEM.
#[derive(Debug, thiserror::Error)]
#[error("not an RSA or EC (P-256) public key in PEM form")]
pub struct BadPublicKey;

/// The claims as they come in the token; unknown fields are ignored.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sse: RawTopics,
    exp: Option<u64>,
}

#[derive(Deserialize, Default)]
struct RawTopics {
    #[serde(default)]
    subscribe: Vec<Box<str>>,
    #[serde(default)]
    publish: Vec<Box<str>>,
}

impl JwtVerifier {
    /// A verifier for the keys given (at least one should be). `public_key_pem`: the contents of
    /// the `--jwt-public-key` file.
    pub fn new(
        secret: Option<&[u8]>,
        public_key_pem: Option<&[u8]>,
        leeway: Duration,
    ) -> Result<JwtVerifier, BadPublicKey> {
        let public_key = match public_key_pem {
            None => None,
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem)
                    .map(|key| (Algorithm::RS256, key))
                    .or_else(|_| DecodingKey::from_ec_pem(pem).map(|key| (Algorithm::ES256, key)))
                    .map_err(|_| BadPublicKey)?,
            ),
        };
        Ok(JwtVerifier {
            secret: secret.map(DecodingKey::from_secret),
            public_key,
            leeway,
        })
    }

    /// The algorithms accepted, for the start-up line (`HS256`, `RS256`, `ES256`).
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.secret.is_some() {
            names.push("HS256");
        }
        match self.public_key {
            Some((Algorithm::RS256, _)) => names.push("RS256"),
            Some(_) => names.push("ES256"),
            None => {}
        }
        names
    }

    /// Verifies `token` at time `now`: signature, algorithm, `exp` and `nbf`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<TokenClaims, TokenRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| refusal(&error))?;
        let key = match (header.alg, &self.secret, &self.public_key) {
            (Algorithm::HS256, Some(secret), _) => secret,
            (alg, _, Some((accepted, key))) if alg == *accepted => key,
            _ => return Err(TokenRefusal::Algorithm),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        // jsonwebtoken reads the system clock itself; `now` is checked here again so that the
        // caller's clock (and tests' fixed times) decide.
        let data = jsonwebtoken::decode::<RawClaims>(token, key, &validation)
            .map_err(|error| refusal(&error))?;
        let claims = data.claims;
        let valid_until = claims
            .exp
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp) + self.leeway);
        if valid_until.is_some_and(|until| now > until) {
            return Err(TokenRefusal::Expired);
        }
        Ok(TokenClaims {
            subscribe: claims.sse.subscribe.into_boxed_slice(),
            publish: claims.sse.publish.into_boxed_slice(),
            valid_until,
        })
    }
}

/// The refusal a verification error stands for.
fn refusal(error: &jsonwebtoken::errors::Error) -> TokenRefusal {
    match error.kind() {
        ErrorKind::InvalidSignature => TokenRefusal::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => TokenRefusal::Algorithm,
        ErrorKind::ExpiredSignature => TokenRefusal::Expired,
        ErrorKind::ImmatureSignature => TokenRefusal::NotYetValid,
        // An unknown `alg` (`none`, `HS512` spelled as no variant we know) fails the header's
        // JSON; it is still a malformed token to the client.
        _ => TokenRefusal::Malformed,
    }
}

/// Whether `topic` matches one of `patterns`: an exact topic, or a prefix ending in `*`.
pub fn covers(patterns: &[Box<str>], topic: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => **pattern == *topic,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: the patterns, a topic, and whether it is covered.
    const PATTERNS: &[(&[&str], &str, bool)] = &[
        (&["news"], "news", true),
        (&["news"], "news2", false),
        (&["news"], "new", false),
        (&["chat/*"], "chat/1", true),
        (&["chat/*"], "chat/", true),
        (&["chat/*"], "chat", false),
        (&["chat/*"], "chatter", false),
        (&["*"], "anything", true),
        (&["a*b"], "a*b", true),
        (&["a*b"], "axb", false),
        (&[], "news", false),
        (&["user/42", "news"], "news", true),
    ];

    #[test]
    fn patterns_cover_exact_topics_and_prefixes() {
        for &(patterns, topic, expected) in PATTERNS {
            let patterns: Vec<Box<str>> = patterns.iter().map(|&p| p.into()).collect();
            assert_eq!(covers(&patterns, topic), expected, "{patterns:?} {topic}");
        }
    }

    #[test]
    fn a_public_key_file_must_be_a_public_key() {
        let verifier = JwtVerifier::new(None, Some(b"not a key"), Duration::ZERO);
        assert!(verifier.is_err());
    }

    /// Tokens with `alg: none` or garbage are refused before any key is tried.
    #[test]
    fn unsigned_and_garbage_tokens_are_refused() {
        let verifier = JwtVerifier::new(Some(b"k"), None, Duration::ZERO).unwrap();
        // {"alg":"none","typ":"JWT"} . {"sse":{"subscribe":["*"]}} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzc2UiOnsic3Vic2NyaWJlIjpbIioiXX19.";
        assert_eq!(
            verifier.verify(none, SystemTime::now()),
            Err(TokenRefusal::Malformed)
        );
        assert_eq!(
            verifier.verify("abc", SystemTime::now()),
            Err(TokenRefusal::Malformed)
        );
    }
}
