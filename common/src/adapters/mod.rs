//! Adapters behind the ports: AWS (DynamoDB, EventBridge) and in-process.

pub mod contention;
pub mod dynamodb;
pub mod dynamodb_budget;
pub mod dynamodb_catalog;
pub mod dynamodb_open_holds;
pub mod dynamodb_saga_index;
pub mod dynamodb_stock;
pub mod eventbridge;
pub mod eventbridge_archive;
pub mod in_process;
pub mod local_claim_checks;
pub mod s3_claim_checks;
pub mod sqs;
pub mod sqs_dead_letters;

/// Gzip for what DynamoDB keeps as binary (quarantined bodies, reports): fewer bytes stored, and fewer write units for every
/// update of an item that holds them.
pub(crate) fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes)?;
    gz.finish()
}

/// The text [`gzip`] kept.
pub(crate) fn gunzip_text(bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}
