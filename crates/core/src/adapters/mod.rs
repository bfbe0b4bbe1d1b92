//! The in-process adapters behind the ports: the local app runs on them and
//! the fast tests prove the steps against them. Their AWS twins are in
//! `retailflow-aws`.

pub mod contention;
pub mod in_process;
pub mod local_claim_checks;

/// Gzip for what DynamoDB keeps as binary (quarantined bodies, reports): fewer bytes stored, and fewer write units for every
/// update of an item that holds them.
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes)?;
    gz.finish()
}

/// The text [`gzip`] kept.
pub fn gunzip_text(bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}
