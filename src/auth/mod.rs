//! Bearer tokens: HS256 JWTs signed with the configured secret, carrying the user id
//! (`sub`), an admin flag and an expiry.
//!
//! Invariants: only HS256 is accepted (a token naming another algorithm, `none`
//! included, is refused before its signature is looked at); `exp` is required and
//! checked with no leeway; the secret never leaves this module.

mod hmac_provider;

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// May use the admin routes.
    #[serde(default)]
    pub admin: bool,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
}

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer ...` header (or `?token=`).
    #[error("no bearer token")]
    Missing,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The signature does not match this server's secret.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// Not a JWT, or not one this server makes.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// The secret is empty.
    #[error("no auth secret configured")]
    NoSecret,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &str) -> Result<Tokens, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::NoSecret);
        }
        hmac_provider::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret.as_bytes())
                .map_err(|e| AuthError::Malformed(e.to_string()))?,
            decoding: DecodingKey::from_secret(secret.as_bytes())
                .map_err(|e| AuthError::Malformed(e.to_string()))?,
            validation,
        })
    }

    /// A token for `user_id`, valid for `ttl`.
    pub fn mint(&self, user_id: &str, admin: bool, ttl: Duration) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            sub: user_id.to_string(),
            admin,
            iat: now,
            exp: now.saturating_add(ttl.as_secs().clamp(1, MAX_TTL_SECS)),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Malformed(e.to_string()))
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) if data.claims.sub.is_empty() => {
                Err(AuthError::Malformed("empty subject".into()))
            }
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Malformed(e.to_string()),
            }),
        }
    }
}

/// The longest life a token may have (ten years).
const MAX_TTL_SECS: u64 = 3650 * 86_400;

/// Parses a duration like `24h`, `30m`, `7d`, `90s` or plain seconds.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (e.g. 24h, 30m, 7d)"))?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
    };
    let secs = n.saturating_mul(per);
    if secs == 0 {
        return Err("a token must live at least a second".into());
    }
    if secs > MAX_TTL_SECS {
        return Err(format!(
            "{s:?} is longer than the longest token life, 3650d"
        ));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_minted_token_verifies_and_carries_its_claims() {
        let t = Tokens::new("s3cret").unwrap();
        let tok = t.mint("u1", true, Duration::from_secs(60)).unwrap();
        let c = t.verify(&tok).unwrap();
        assert_eq!(c.sub, "u1");
        assert!(c.admin);
    }

    #[test]
    fn another_secret_expiry_and_garbage_are_refused() {
        let a = Tokens::new("one").unwrap();
        let b = Tokens::new("two").unwrap();
        let tok = a.mint("u1", false, Duration::from_secs(60)).unwrap();
        assert_eq!(b.verify(&tok), Err(AuthError::BadSignature));
        assert!(matches!(
            a.verify("not.a.jwt"),
            Err(AuthError::Malformed(_))
        ));
        // Expired a second ago.
        let now = chrono::Utc::now().timestamp() as u64;
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "u1".into(),
                admin: false,
                iat: now - 100,
                exp: now - 1,
            },
            &EncodingKey::from_secret(b"one").unwrap(),
        )
        .unwrap();
        assert_eq!(a.verify(&old), Err(AuthError::Expired));
        // alg=none with the same claims.
        let body = tok.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}.");
        assert!(a.verify(&none).is_err());
        assert_eq!(Tokens::new("").unwrap_err(), AuthError::NoSecret);
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("300000000000000d").is_err(), "no overflow");
        assert!(parse_ttl("3651d").is_err());
    }
}
