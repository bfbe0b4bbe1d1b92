//! Who is looking, and what they may do. A signed-in user carries a session
//! cookie sealed with the console's key (set after the login: Cognito's
//! hosted login on AWS, the dev users on a local `serve`). Its groups give
//! the role: viewers read, operators act. Every action is a POST carrying a
//! token bound to the session (a forged cross-site form cannot know it) from
//! the console's own origin; the cookie is `SameSite=Lax` and `HttpOnly`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const COOKIE: &str = "rf_console";

/// How long a sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees every page, acts on nothing.
    Viewer,
    /// Retries, checks, resolves and dismisses, runs reconciliation.
    Operator,
}

impl Role {
    /// The strongest role the user's groups give (`operator`, `viewer`);
    /// none for a user in neither group.
    pub fn of_groups<'a>(groups: impl IntoIterator<Item = &'a str>) -> Option<Role> {
        groups
            .into_iter()
            .filter_map(|g| match g {
                "operator" => Some(Role::Operator),
                "viewer" => Some(Role::Viewer),
                _ => None,
            })
            .max()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random, per sign-in: what the CSRF token is bound to.
    pub id: String,
    pub user: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the console's session key must be at least 32 bytes")]
    WeakKey,
    #[error("not signed in")]
    Missing,
    #[error("the session cookie is not one this console sealed")]
    Forged,
    #[error("the session has expired: sign in again")]
    Expired,
}

/// The key sessions and CSRF tokens are sealed with.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    pub fn new(secret: &[u8]) -> Result<Self, SessionError> {
        if secret.len() < 32 {
            return Err(SessionError::WeakKey);
        }
        Ok(SessionKey(secret.to_vec()))
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(data);
        mac
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        // Plain data: serializing cannot fail.
        let body = serde_json::to_vec(session).unwrap_or_default();
        let tag = self.mac("session", &body).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The session a cookie value carries, if this key sealed it and it is
    /// still valid at `now`.
    pub fn open(&self, cookie: &str, now: DateTime<Utc>) -> Result<Session, SessionError> {
        let (body, tag) = cookie.split_once('.').ok_or(SessionError::Forged)?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SessionError::Forged)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::Forged)?;
        self.mac("session", &body)
            .verify_slice(&tag)
            .map_err(|_| SessionError::Forged)?;
        let session: Session = serde_json::from_slice(&body).map_err(|_| SessionError::Forged)?;
        if session.expires_at <= now {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }

    /// The token every action form carries for this session.
    pub fn csrf_token(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(
            self.mac("csrf", session.id.as_bytes())
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `token` is this session's (compared in constant time).
    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        URL_SAFE_NO_PAD.decode(token.trim()).is_ok_and(|t| {
            self.mac("csrf", session.id.as_bytes())
                .verify_slice(&t)
                .is_ok()
        })
    }
}

/// A new session for `user`, from `now`; `id` is random per sign-in.
pub fn sign_in(user: &str, role: Role, id: String, now: DateTime<Utc>) -> Session {
    Session {
        id,
        user: user.to_string(),
        role,
        expires_at: now + SESSION_LIFETIME,
    }
}

/// The `Set-Cookie` value for a sealed session (`secure` on HTTPS).
pub fn set_cookie(sealed: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={sealed}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The console's cookie out of a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v)
}

/// Whether a POST comes from the console's own pages: its `Origin` (or,
/// without one, its `Referer`) names the host it was sent to. Browsers
/// send one of them on every cross-site POST, so a forged form is refused
/// even before its token is checked.
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, host: &str) -> bool {
    let named = match (origin, referer) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return false,
    };
    let rest = named
        .strip_prefix("https://")
        .or_else(|| named.strip_prefix("http://"))
        .unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires_and_a_changed_one_never() {
        let s = sign_in("olga@example.com", Role::Operator, "s-1".into(), now());
        let sealed = key().seal(&s);
        assert_eq!(key().open(&sealed, now()).unwrap(), s);
        assert_eq!(
            key().open(&sealed, now() + SESSION_LIFETIME),
            Err(SessionError::Expired)
        );
        // An operator's cookie edited to say viewer (or the reverse): the
        // seal no longer fits.
        let (body, tag) = sealed.split_once('.').unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(json.replace("operator", "viewer"));
        assert_eq!(
            key().open(&format!("{forged}.{tag}"), now()),
            Err(SessionError::Forged)
        );
        let other = SessionKey::new(b"another key, just as long as the first").unwrap();
        assert_eq!(other.open(&sealed, now()), Err(SessionError::Forged));
        assert_eq!(key().open("garbage", now()), Err(SessionError::Forged));
        assert_eq!(
            SessionKey::new(b"short").unwrap_err(),
            SessionError::WeakKey
        );
    }

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let a = sign_in("olga@example.com", Role::Operator, "s-1".into(), now());
        let b = sign_in("olga@example.com", Role::Operator, "s-2".into(), now());
        let token = key().csrf_token(&a);
        assert!(key().csrf_ok(&a, &token));
        assert!(!key().csrf_ok(&b, &token));
        assert!(!key().csrf_ok(&a, ""));
    }

    #[test]
    fn groups_give_the_strongest_role_and_no_group_none() {
        assert_eq!(
            Role::of_groups(["viewer", "operator"]),
            Some(Role::Operator)
        );
        assert_eq!(Role::of_groups(["viewer"]), Some(Role::Viewer));
        assert_eq!(Role::of_groups(["admins"]), None);
    }

    #[test]
    fn only_a_post_from_the_consoles_own_origin_is_taken() {
        let host = "127.0.0.1:8080";
        assert!(same_origin(Some("http://127.0.0.1:8080"), None, host));
        assert!(same_origin(
            None,
            Some("http://127.0.0.1:8080/console"),
            host
        ));
        assert!(!same_origin(Some("https://evil.example"), None, host));
        assert!(!same_origin(Some("null"), None, host));
        assert!(!same_origin(None, None, host));
        assert_eq!(
            cookie_value("a=1; rf_console=abc.def; b=2"),
            Some("abc.def")
        );
    }
}
