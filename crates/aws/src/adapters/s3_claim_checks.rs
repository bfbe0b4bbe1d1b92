//! [`ClaimChecks`] on the stack's S3 bucket (encrypted, public access
//! blocked, objects expired by its lifecycle). Locations are
//! `s3://<bucket>/<key>`; a location naming another bucket is refused, so a
//! message cannot make a function read what it was not given.

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use retailflow_core::ports::{ClaimChecks, StoreError};

pub struct S3ClaimChecks {
    client: Client,
    bucket: String,
}

impl S3ClaimChecks {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3ClaimChecks {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl ClaimChecks for S3ClaimChecks {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn get(&self, location: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let prefix = format!("s3://{}/", self.bucket);
        let Some(key) = location.strip_prefix(&prefix) else {
            return Err(StoreError::Corrupt {
                key: location.to_string(),
                reason: format!("not in this stack's bucket {}", self.bucket),
            });
        };
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None)
            }
            Err(e) => return Err(StoreError::Unavailable(DisplayErrorContext(&e).to_string())),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {location}: {e}")))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}
