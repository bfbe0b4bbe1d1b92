//! Reading stock items, and telling an oversold SKU from contention.

use super::*;

impl DynamoDbStock {
    /// The `STOCK#` items of these SKUs, by SKU, read 100 at a time (an
    /// order of 2,000 SKUs is 20 requests, not 2,000).
    pub(super) async fn stock_items<'a>(
        &self,
        skus: impl Iterator<Item = &'a &'a str>,
    ) -> Result<
        std::collections::HashMap<String, std::collections::HashMap<String, AttributeValue>>,
        StoreError,
    > {
        let pks = skus.map(|sku| format!("STOCK#{sku}")).collect();
        let items = crate::adapters::dynamodb::batch_get(&self.client, &self.table, pks).await?;
        Ok(items
            .into_iter()
            .filter_map(|i| {
                let sku = i
                    .get("pk")?
                    .as_s()
                    .ok()?
                    .strip_prefix("STOCK#")?
                    .to_string();
                Some((sku, i))
            })
            .collect())
    }

    /// Units of `lines` sold beyond what was free: SKUs left below zero
    /// available after a commit without a hold.
    pub(super) async fn oversold(
        &self,
        lines: &[ReservationLine],
    ) -> Result<Vec<ReservationLine>, StoreError> {
        let mut out = Vec::new();
        let counts = self.stock_items(per_sku(lines).keys()).await?;
        for (sku, qty) in per_sku(lines) {
            let available = counts
                .get(sku)
                .and_then(|i| get_n(i, "available"))
                .unwrap_or(0);
            if available < 0 {
                out.push(ReservationLine {
                    sku: sku.to_string(),
                    quantity: u32::try_from(qty.min(-available)).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(out)
    }
}
