//! The server's VAPID identity (RFC 8292): a P-256 key whose public half browsers
//! bind their subscriptions to, and the ES256 JWT that proves each push request
//! comes from its holder.
//!
//! Invariants:
//! - the key is `[notifications.push] vapid_private_key` when set; otherwise one is
//!   generated once and kept in the database, so subscriptions survive restarts and
//!   every process signs with the same key;
//! - a token's `aud` is the endpoint's origin and it expires [`TOKEN_TTL`] after it
//!   is made (RFC 8292 allows at most 24 hours);
//! - the private key never appears in `Debug`, logs or errors.

use std::fmt;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::rand_core::OsRng;

use crate::store::{Store, StoreError};

/// How long a signed token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// `{"typ":"JWT","alg":"ES256"}`, the only header VAPID uses.
const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ES256"}"#;

/// Why the VAPID key is not usable.
#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    /// The configured or stored key does not decode to a P-256 scalar.
    #[error("{0}: not a base64url P-256 private key (32 bytes)")]
    BadKey(&'static str),
    /// The subject is neither `mailto:` nor `https:`.
    #[error("notifications.push.subject must be a mailto: or https: URL")]
    BadSubject,
    /// The database could not be read or written.
    #[error("VAPID key: {0}")]
    Store(#[from] StoreError),
}

/// The server's key pair.
#[derive(Clone)]
pub struct Vapid {
    key: SigningKey,
    /// The public key as browsers want it: uncompressed point, base64url.
    public: String,
}

impl fmt::Debug for Vapid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Refuses a subject RFC 8292 does not allow.
pub fn check_subject(subject: &str) -> Result<(), VapidError> {
    let ok = subject
        .strip_prefix("mailto:")
        .is_some_and(|a| a.contains('@'))
        || subject
            .strip_prefix("https://")
            .is_some_and(|h| !h.is_empty());
    if ok {
        Ok(())
    } else {
        Err(VapidError::BadSubject)
    }
}

impl Vapid {
    fn from_key(key: SigningKey) -> Self {
        let point = key.verifying_key().to_encoded_point(false);
        Vapid {
            public: Base64UrlUnpadded::encode_string(point.as_bytes()),
            key,
        }
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self::from_key(SigningKey::random(&mut OsRng))
    }

    /// The key whose private scalar is `b64` (base64url, padding optional);
    /// `what` names where it came from in the error.
    pub fn from_private(b64: &str, what: &'static str) -> Result<Self, VapidError> {
        let bytes = Base64UrlUnpadded::decode_vec(b64.trim().trim_end_matches('='))
            .map_err(|_| VapidError::BadKey(what))?;
        let key = SigningKey::from_slice(&bytes).map_err(|_| VapidError::BadKey(what))?;
        Ok(Self::from_key(key))
    }

    /// The private scalar, base64url, for storing.
    pub fn private_b64(&self) -> String {
        Base64UrlUnpadded::encode_string(&self.key.to_bytes())
    }

    /// The public key (65-byte uncompressed point), base64url: the
    /// `applicationServerKey` a browser subscribes with.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `endpoint` at `now_secs` (Unix
    /// time): `vapid t=<jwt>, k=<public key>`.
    pub fn authorization(&self, endpoint: &reqwest::Url, subject: &str, now_secs: u64) -> String {
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": now_secs + TOKEN_TTL.as_secs(),
            "sub": subject,
        });
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(JWT_HEADER.as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        // ES256 in a JWS is r || s, 64 bytes (RFC 7518 §3.4), not DER.
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        let jwt = format!(
            "{signing_input}.{}",
            Base64UrlUnpadded::encode_string(&sig.to_bytes())
        );
        format!("vapid t={jwt}, k={}", self.public)
    }

    /// The configured key, or the one stored in the database (made and stored now
    /// if there is none yet).
    pub async fn load(configured: &str, store: &Store) -> Result<Self, VapidError> {
        if !configured.trim().is_empty() {
            return Self::from_private(configured, "notifications.push.vapid_private_key");
        }
        if let Some(k) = store.vapid_private_key().await? {
            return Self::from_private(&k, "the stored VAPID key");
        }
        let fresh = Self::generate();
        let kept = store.store_vapid_private_key(&fresh.private_b64()).await?;
        Self::from_private(&kept, "the stored VAPID key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    #[test]
    fn the_token_verifies_with_the_public_key_and_names_the_origin() {
        let v = Vapid::generate();
        let again = Vapid::from_private(&v.private_b64(), "test").unwrap();
        assert_eq!(again.public_key(), v.public_key());
        let url = reqwest::Url::parse("https://push.example:8443/send/abc?x=1").unwrap();
        let h = v.authorization(&url, "mailto:ops@example.com", 1_000);
        let rest = h.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, v.public_key());
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let pk = Base64UrlUnpadded::decode_vec(k).unwrap();
        let vk = VerifyingKey::from_sec1_bytes(&pk).unwrap();
        let sig = Signature::from_slice(&Base64UrlUnpadded::decode_vec(sig).unwrap()).unwrap();
        vk.verify(input.as_bytes(), &sig).unwrap();
        let claims = input.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&Base64UrlUnpadded::decode_vec(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["exp"], 1_000 + TOKEN_TTL.as_secs());
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }

    #[test]
    fn bad_keys_and_subjects_are_refused() {
        assert!(Vapid::from_private("abc", "test").is_err());
        assert!(
            Vapid::from_private(&"A".repeat(43), "test").is_err(),
            "zero scalar"
        );
        assert!(check_subject("mailto:ops@example.com").is_ok());
        assert!(check_subject("https://example.com").is_ok());
        assert!(check_subject("http://example.com").is_err());
        assert!(check_subject("ops@example.com").is_err());
    }
}
