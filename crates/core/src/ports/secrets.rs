//! Where credentials come from: Secrets Manager on AWS
//! (`retailflow-aws`), a value in memory locally
//! ([`FixedSecret`](crate::credentials::FixedSecret)).

use async_trait::async_trait;

/// Where the connector secret document comes from (Secrets Manager on AWS,
/// a file or a value in memory locally).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The document's JSON text.
    async fn read(&self) -> Result<String, SecretUnreadable>;
}

/// The secret store did not give the document: it is down, throttled, or
/// the caller is not allowed yet. Always transient: the credentials cache
/// keeps what it holds and reads again later; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretUnreadable(pub String);
