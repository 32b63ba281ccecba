//! Who is asking: checks a bearer JWT (Supabase conventions) and gives the
//! `Principal` a request runs as.
//!
//! Pure: no I/O. Tokens are HS256 only; `exp` is required, `nbf` and `aud`
//! are checked when present, and the role claim must name one of the three
//! Postgres roles the migrations create.

use crate::code::ErrorCode;
use crate::json::StrictValue;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::Value;

/// Clock skew tolerated on `exp` and `nbf`, as PostgREST allows.
const LEEWAY_SECS: u64 = 30;

/// The Postgres role a request runs as. A closed set: the name reaches SQL
/// only through `as_str`, never from the token's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Anon,
    Authenticated,
    ServiceRole,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "anon" => Some(Role::Anon),
            "authenticated" => Some(Role::Authenticated),
            "service_role" => Some(Role::ServiceRole),
            _ => None,
        }
    }
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: Role,
    /// The `sub` claim: the user id `auth.uid()` returns.
    pub sub: Option<String>,
    /// Every claim, handed to Postgres as `request.jwt.claims`.
    pub claims: Value,
    /// The client's address, when the edge knows it: tells apart callers
    /// with no `sub` (anon, service keys) for rate limits and query caps.
    pub client: Option<std::net::IpAddr>,
}

impl Principal {
    /// Who counts as one caller for rate limits and query caps: the user
    /// (`sub`), else the role from one client address. Hashed with keys
    /// random per process, so callers cannot aim for a collision.
    pub fn caller_key(&self) -> u64 {
        use std::hash::BuildHasher;
        static KEYS: std::sync::LazyLock<std::collections::hash_map::RandomState> =
            std::sync::LazyLock::new(Default::default);
        match &self.sub {
            Some(sub) => KEYS.hash_one((0u8, sub)),
            None => KEYS.hash_one((1u8, self.role, self.client)),
        }
    }

    /// The same caller as [`Principal::caller_key`], named alike by every
    /// instance (that key's hash is random per process): hex of SHA-256,
    /// for the fleet-wide rate limit's key in Redis. No key of our own is
    /// needed against collisions: `sub` comes from a token we signed.
    pub fn fleet_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = match (&self.sub, self.client) {
            (Some(sub), _) => Sha256::digest(format!("sub\0{sub}")),
            (None, Some(client)) => {
                Sha256::digest(format!("client\0{}\0{client}", self.role.as_str()))
            }
            (None, None) => Sha256::digest(format!("role\0{}", self.role.as_str())),
        };
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Authorization header: send `Authorization: Bearer <JWT>`")]
    MissingToken,
    #[error("malformed Authorization header: expected `Bearer <JWT>`")]
    MalformedHeader,
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token audience does not match")]
    WrongAudience,
    #[error("token has no `{0}` claim naming a role")]
    MissingRole(String),
    #[error("role {0:?} is not allowed: use anon, authenticated or service_role")]
    UnknownRole(String),
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::MissingToken => ErrorCode::MissingToken,
            AuthError::MalformedHeader => ErrorCode::MalformedAuthorization,
            AuthError::InvalidToken(_) => ErrorCode::InvalidToken,
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::NotYetValid => ErrorCode::TokenNotYetValid,
            AuthError::WrongAudience => ErrorCode::InvalidAudience,
            AuthError::MissingRole(_) => ErrorCode::MissingRoleClaim,
            AuthError::UnknownRole(_) => ErrorCode::UnknownRole,
        }
    }

    /// 403 for a well-formed token whose role is refused; 401 for the rest.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::UnknownRole(_))
    }
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    audience: String,
    role_claim: String,
}

impl JwtVerifier {
    pub fn new(secret: &str, audience: &str, role_claim: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        // `aud` is checked by hand below: it is optional, but must match
        // when present.
        validation.validate_aud = false;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            audience: audience.to_owned(),
            role_claim: role_claim.to_owned(),
        }
    }

    /// Verifies the value of an `Authorization` header.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::MissingToken)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(AuthError::MalformedHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::MalformedHeader);
        }
        self.verify(token.trim())
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // Claims read strictly: a token naming `role` twice must not mean
        // one thing to its issuer and another to us.
        let data = jsonwebtoken::decode::<StrictValue>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::InvalidToken("bad signature"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::InvalidToken("algorithm must be HS256")
                }
                ErrorKind::MissingRequiredClaim(_) => AuthError::InvalidToken("missing exp claim"),
                ErrorKind::Json(e) if e.to_string().contains("duplicate key") => {
                    AuthError::InvalidToken("a claim appears twice")
                }
                _ => AuthError::InvalidToken("not a well-formed HS256 JWT"),
            })?;
        // RFC 7515 4.1.11: extensions listed as critical must be
        // understood, and we understand none.
        if data.header.crit.is_some() {
            return Err(AuthError::InvalidToken(
                "the header lists critical extensions (crit), which this service does not support",
            ));
        }
        let claims = data.claims.0;
        if !claims.is_object() {
            return Err(AuthError::InvalidToken("claims are not a JSON object"));
        }
        match claims.get("aud") {
            None => {}
            Some(Value::String(aud)) if *aud == self.audience => {}
            Some(Value::Array(auds)) if auds.iter().any(|a| a.as_str() == Some(&self.audience)) => {
            }
            Some(_) => return Err(AuthError::WrongAudience),
        }
        let role = match claims.get(&self.role_claim) {
            Some(Value::String(name)) => {
                Role::parse(name).ok_or_else(|| AuthError::UnknownRole(name.clone()))?
            }
            Some(other) => return Err(AuthError::UnknownRole(other.to_string())),
            None => return Err(AuthError::MissingRole(self.role_claim.clone())),
        };
        let sub = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        Ok(Principal {
            role,
            sub,
            claims,
            client: None,
        })
    }
}

/// Signs HS256 tokens: the dev tokens printed at start, and the tests'.
pub fn sign(secret: &str, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// A token of each request role for local development, signed with
/// `secret` and valid for `valid_secs`: the anonymous role, the seeded
/// demo user and `service_role`. `(name, role, token)`.
pub fn dev_tokens(
    secret: &str,
    audience: &str,
    valid_secs: i64,
) -> Result<Vec<(&'static str, Role, String)>, jsonwebtoken::errors::Error> {
    let exp = chrono::Utc::now().timestamp() + valid_secs;
    [
        (
            "anon",
            Role::Anon,
            serde_json::json!({"role": "anon", "exp": exp}),
        ),
        (
            "demo user",
            Role::Authenticated,
            serde_json::json!({"role": "authenticated", "aud": audience,
                "sub": crate::db::DEMO_USER_ID, "email": "demo@example.com", "exp": exp}),
        ),
        (
            "service_role",
            Role::ServiceRole,
            serde_json::json!({"role": "service_role", "exp": exp}),
        ),
    ]
    .into_iter()
    .map(|(name, role, claims)| Ok((name, role, sign(secret, &claims)?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "test-secret-test-secret-test-secret";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(SECRET, "authenticated", "role")
    }

    fn token(claims: Value) -> String {
        sign(SECRET, &claims).unwrap()
    }

    #[test]
    fn the_fleet_key_names_a_caller_alike_in_every_process() {
        let user = |sub: Option<&str>, role, client: Option<&str>| Principal {
            role,
            sub: sub.map(str::to_owned),
            claims: json!({}),
            client: client.map(|c| c.parse().unwrap()),
        };
        let a = user(Some("u1"), Role::Authenticated, Some("10.0.0.1"));
        // `printf 'sub\0u1' | sha256sum`: a hash seeded per process would
        // differ from run to run, and each instance would count the
        // caller apart.
        assert_eq!(a.fleet_key(), "b5594221bf3d7d0f1277cbe9272848ce");
        assert_eq!(
            a.fleet_key(),
            user(Some("u1"), Role::Authenticated, Some("10.0.0.2")).fleet_key(),
            "a user is one caller from any address"
        );
        let others = [
            user(Some("u2"), Role::Authenticated, None),
            user(None, Role::Anon, Some("10.0.0.1")),
            user(None, Role::Anon, Some("10.0.0.2")),
            user(None, Role::ServiceRole, Some("10.0.0.1")),
            user(None, Role::Anon, None),
        ];
        let mut keys: Vec<String> = others.iter().map(Principal::fleet_key).collect();
        keys.push(a.fleet_key());
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), others.len() + 1, "{keys:?}");
    }

    #[test]
    fn a_valid_token_gives_its_role_and_subject() {
        let p = verifier()
            .verify_header(Some(&format!(
                "Bearer {}",
                token(json!({"role": "authenticated", "sub": "u1", "exp": now() + 60, "aud": "authenticated"}))
            )))
            .unwrap();
        assert_eq!(p.role, Role::Authenticated);
        assert_eq!(p.sub.as_deref(), Some("u1"));
    }

    #[test]
    fn each_rejection_has_its_own_error() {
        let v = verifier();
        let cases: Vec<(Option<String>, AuthError)> = vec![
            (None, AuthError::MissingToken),
            (Some("Basic abc".into()), AuthError::MalformedHeader),
            (Some("Bearer".into()), AuthError::MalformedHeader),
            (
                Some("Bearer not.a.jwt".into()),
                AuthError::InvalidToken("not a well-formed HS256 JWT"),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    sign(
                        "another-secret-another-secret-xx",
                        &json!({"role": "anon", "exp": now() + 60})
                    )
                    .unwrap()
                )),
                AuthError::InvalidToken("bad signature"),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(json!({"role": "anon", "exp": now() - 3600}))
                )),
                AuthError::Expired,
            ),
            (
                Some(format!("Bearer {}", token(json!({"role": "anon"})))),
                AuthError::InvalidToken("missing exp claim"),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(json!({"role": "anon", "exp": now() + 7200, "nbf": now() + 3600}))
                )),
                AuthError::NotYetValid,
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(json!({"role": "anon", "exp": now() + 60, "aud": "someone-else"}))
                )),
                AuthError::WrongAudience,
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(json!({"role": "postgres", "exp": now() + 60}))
                )),
                AuthError::UnknownRole("postgres".into()),
            ),
            (
                Some(format!("Bearer {}", token(json!({"exp": now() + 60})))),
                AuthError::MissingRole("role".into()),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                v.verify_header(header.as_deref()).unwrap_err(),
                expected,
                "{header:?}"
            );
        }
    }

    #[test]
    fn an_unsigned_alg_none_token_is_rejected() {
        // {"alg":"none","typ":"JWT"} . {"role":"service_role","exp":4102444800} . (no signature)
        let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                      eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        let err = verifier().verify(forged).unwrap_err();
        assert!(matches!(err, AuthError::InvalidToken(_)), "{err:?}");
    }

    /// A token signed with our secret, its parts written by hand.
    fn raw_token(header: &str, claims: &str) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let message = format!("{}.{}", b64.encode(header), b64.encode(claims));
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{signature}")
    }

    #[test]
    fn a_claim_named_twice_is_refused_not_read_as_its_last_value() {
        let exp = now() + 60;
        let good = raw_token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &format!(r#"{{"role":"anon","exp":{exp}}}"#),
        );
        assert_eq!(verifier().verify(&good).unwrap().role, Role::Anon);
        let twice = raw_token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &format!(r#"{{"role":"anon","exp":{exp},"role":"service_role"}}"#),
        );
        assert_eq!(
            verifier().verify(&twice).unwrap_err(),
            AuthError::InvalidToken("a claim appears twice")
        );
    }

    #[test]
    fn a_header_with_critical_extensions_is_refused() {
        let exp = now() + 60;
        let crit = raw_token(
            r#"{"alg":"HS256","typ":"JWT","crit":["exp-v2"],"exp-v2":true}"#,
            &format!(r#"{{"role":"anon","exp":{exp}}}"#),
        );
        let err = verifier().verify(&crit).unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidToken(m) if m.contains("crit")),
            "{err:?}"
        );
    }

    #[test]
    fn an_audience_list_containing_ours_is_accepted() {
        let p = verifier()
            .verify(&token(
                json!({"role": "anon", "exp": now() + 60, "aud": ["x", "authenticated"]}),
            ))
            .unwrap();
        assert_eq!(p.role, Role::Anon);
    }
}
