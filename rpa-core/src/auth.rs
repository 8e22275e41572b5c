//! Credentials: argon2 password hashes, opaque session tokens, vendor HMAC proofs.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Argon2 cost; production defaults are OWASP's, tests may go cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

impl PasswordCost {
    /// The cheapest cost argon2 allows: for tests and simulations only.
    pub const TESTING: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };

    fn hasher(self) -> Result<Argon2<'static>, Error> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)
            .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a password into a PHC string with a fresh random salt.
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Ok(cost
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?
        .to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A fresh opaque session token (256 random bits, hex) and the SHA-256 the store keeps.
pub fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Seed 001 `supplierSecret` for `robot_id` under a vendor secret:
/// lowercase hex HMAC-SHA256 of the robot id keyed with the vendor's secret (DESIGN §7).
pub fn supplier_proof(vendor_secret: &str, robot_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(vendor_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(robot_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a robot's `supplierSecret` in constant time.
pub fn verify_supplier_proof(vendor_secret: &str, robot_id: &str, proof: &str) -> bool {
    let Ok(bytes) = hex::decode(proof.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(vendor_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(robot_id.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

/// A key for one purpose derived from a master key: HMAC-SHA256(master,
/// purpose), so that keys of different uses never coincide.
pub fn derive_key(master: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes keys of any length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// The key file links are signed with (see [`sign_link`]): `Debug` shows
/// no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey(pub [u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

fn link_mac(key: &LinkKey, path: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(expires.to_string().as_bytes());
    mac
}

/// Prefix of a run token ([`run_token`]).
pub const RUN_TOKEN_PREFIX: &str = "rpa-run.";

fn run_mac(key: &LinkKey, job: &str, attempt: u32) -> Hmac<Sha256> {
    let run_key = derive_key(&key.0, b"run token");
    let mut mac = Hmac::<Sha256>::new_from_slice(&run_key).expect("HMAC takes keys of any length");
    mac.update(format!("{job}.{attempt}").as_bytes());
    mac
}

/// The bearer token of one attempt of a job (by the job's key, its
/// `runInstanceId`), given to the robot that runs it (Execute's extension
/// `accessToken`, signed as the command is handed over, never stored):
/// `rpa-run.<job key>.<attempt>.<hex HMAC-SHA256(derived key, "<key>.<attempt>")>`.
/// It proves the attempt, not that it still runs: [`crate::engine::Engine::authenticate_run`]
/// checks that.
pub fn run_token(key: &LinkKey, job: &str, attempt: u32) -> String {
    let sig = hex::encode(run_mac(key, job, attempt).finalize().into_bytes());
    format!("{RUN_TOKEN_PREFIX}{job}.{attempt}.{sig}")
}

/// The job key and attempt a run token signed with `key` names, checked in
/// constant time; `None` for anything else.
pub fn verify_run_token(key: &LinkKey, token: &str) -> Option<(String, u32)> {
    let mut parts = token.strip_prefix(RUN_TOKEN_PREFIX)?.splitn(3, '.');
    let job = parts.next()?;
    let attempt: u32 = parts.next()?.parse().ok()?;
    let sig = hex::decode(parts.next()?).ok()?;
    run_mac(key, job, attempt).verify_slice(&sig).ok()?;
    Some((job.to_owned(), attempt))
}

/// The query that lets anyone fetch `path` (of this server) with a plain
/// GET until `expires` (Unix seconds), and no longer:
/// `expires=<expires>&signature=<hex HMAC-SHA256(key, "<path>\n<expires>")>`
/// (DESIGN §7: `packageDownloadUri`, which third-party executors fetch
/// without credentials).
pub fn sign_link(key: &LinkKey, path: &str, expires: i64) -> String {
    let sig = hex::encode(link_mac(key, path, expires).finalize().into_bytes());
    format!("expires={expires}&signature={sig}")
}

/// Whether a link's `expires` and `signature` are this server's for `path`
/// and still good at `now` (Unix seconds); checked in constant time.
pub fn verify_link(key: &LinkKey, path: &str, expires: i64, signature: &str, now: i64) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else {
        return false;
    };
    now <= expires && link_mac(key, path, expires).verify_slice(&sig).is_ok()
}

/// The signature of an outbound delivery (events to a webhook): lowercase
/// hex HMAC-SHA256 over `"<timestamp>.<body>"` keyed with the receiver's
/// secret, sent as `X-Rpa-Signature: t=<timestamp>,v1=<hex>` (`timestamp` in
/// Unix seconds, so a receiver can refuse old deliveries replayed).
pub fn sign_delivery(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks an `X-Rpa-Signature` header in constant time; `now` and
/// `tolerance_s` (Unix seconds) bound how old a delivery may be.
pub fn verify_delivery(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signature = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (timestamp, signature) else {
        return false;
    };
    if (now - t).abs() > tolerance_s {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_for_their_path_until_they_expire() {
        let key = LinkKey([7; 32]);
        let t = run_token(&key, "ab42", 3);
        assert_eq!(verify_run_token(&key, &t), Some(("ab42".into(), 3)));
        assert_eq!(verify_run_token(&LinkKey([8; 32]), &t), None, "another server's key");
        assert_eq!(
            verify_run_token(&key, &t.replace(".ab42.3.", ".ab43.3.")),
            None,
            "another job"
        );
        assert_eq!(
            verify_run_token(&key, &t.replace(".ab42.3.", ".ab42.4.")),
            None,
            "another attempt"
        );
        assert_eq!(verify_run_token(&key, "rpa-run.1.1.zz"), None);
        assert_eq!(verify_run_token(&key, "some-session-token"), None);
        let q = sign_link(&key, "/v1/file/abc", 1_000);
        let sig = q.split_once("signature=").unwrap().1;
        assert!(verify_link(&key, "/v1/file/abc", 1_000, sig, 999));
        assert!(verify_link(&key, "/v1/file/abc", 1_000, sig, 1_000));
        assert!(!verify_link(&key, "/v1/file/abc", 1_000, sig, 1_001), "expired");
        assert!(!verify_link(&key, "/v1/file/abd", 1_000, sig, 999), "another path");
        assert!(
            !verify_link(&key, "/v1/file/abc", 2_000, sig, 999),
            "the expiry is signed"
        );
        assert!(
            !verify_link(&LinkKey([8; 32]), "/v1/file/abc", 1_000, sig, 999),
            "another key"
        );
        assert!(!verify_link(&key, "/v1/file/abc", 1_000, "zz", 999));
        assert_eq!(format!("{key:?}"), "LinkKey(***)");
    }

    #[test]
    fn deliveries_verify_only_with_their_secret_body_and_time() {
        let h = sign_delivery(b"s", 1_000, b"{}");
        assert!(verify_delivery(b"s", &h, b"{}", 1_010, 300));
        assert!(!verify_delivery(b"other", &h, b"{}", 1_010, 300), "another secret");
        assert!(!verify_delivery(b"s", &h, b"{ }", 1_010, 300), "another body");
        assert!(!verify_delivery(b"s", &h, b"{}", 2_000, 300), "too old: a replay");
        assert!(!verify_delivery(b"s", "t=1000", b"{}", 1_000, 300), "no signature");
        let forged = h.replace("t=1000", "t=1999");
        assert!(
            !verify_delivery(b"s", &forged, b"{}", 2_000, 300),
            "the time is signed too"
        );
    }

    #[test]
    fn passwords_verify_only_when_right() {
        let h = hash_password("s3cret", PasswordCost::TESTING).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3creT", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a), ha);
    }

    #[test]
    fn supplier_proof_binds_robot_and_secret() {
        let p = supplier_proof("vendor-secret", "robot-1");
        assert_eq!(p.len(), 64);
        assert!(verify_supplier_proof("vendor-secret", "robot-1", &p));
        assert!(verify_supplier_proof("vendor-secret", "robot-1", &p.to_uppercase()));
        assert!(!verify_supplier_proof("vendor-secret", "robot-2", &p));
        assert!(!verify_supplier_proof("other", "robot-1", &p));
        assert!(!verify_supplier_proof("vendor-secret", "robot-1", "zz"));
    }
}

/// Seed 004's signature: `md5(timestamp + token)` in lowercase hex (the
/// header a loonflow caller sends, and the one a hook receives).
pub fn md5_signature(timestamp: &str, token: &str) -> String {
    use md5::{Digest as _, Md5};
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// Checks a seed 004 `signature` header in constant time, and that its
/// `timestamp` (Unix seconds) is within `window_s` of `now`.
pub fn verify_md5_signature(
    signature: &str,
    timestamp: &str,
    token: &str,
    now: i64,
    window_s: i64,
) -> Result<(), &'static str> {
    use subtle_eq::eq;
    let expected = md5_signature(timestamp, token);
    if !eq(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
        return Err("签名校验失败 (signature check failed)");
    }
    match timestamp.trim().parse::<i64>() {
        Ok(t) if (now - t).abs() <= window_s => Ok(()),
        _ => Err("时间戳过期,请保证在120s内 (timestamp outside the 120 s window)"),
    }
}

/// Whether two secrets are equal, in time that depends only on their lengths.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    subtle_eq::eq(a, b)
}

mod subtle_eq {
    /// Equal bytes, in time that depends only on the lengths.
    pub fn eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
