//! A deployed stack by its name: the CLI reads the stack's outputs
//! (CloudFormation `DescribeStacks`) for the state table, the bus and the
//! queues, so operators name the stack, not each resource.

use std::collections::BTreeMap;

use anyhow::{bail, Context};

/// The CLI's AWS configuration: the usual credentials and region
/// (`AWS_ENDPOINT_URL` for a local endpoint), every call bounded. The
/// credentials are looked for first: without them every call would fail
/// with a page of the SDK's provider chain instead of one line.
pub async fn aws_config() -> anyhow::Result<aws_config::SdkConfig> {
    use aws_credential_types::provider::ProvideCredentials;
    let config = retailflow_aws::lambda::aws_sdk_config(
        std::time::Duration::from_secs(3),
        std::time::Duration::from_secs(20),
    )
    .await;
    use aws_credential_types::provider::error::CredentialsError;
    const NONE: &str = "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION; AWS_ENDPOINT_URL for a local endpoint)";
    let Some(provider) = config.credentials_provider() else {
        bail!(NONE);
    };
    match provider.provide_credentials().await {
        Ok(_) => {}
        Err(CredentialsError::CredentialsNotLoaded(_)) => bail!(NONE),
        // Found but not usable (an expired SSO session, a role denied):
        // the chain says why.
        Err(e) => {
            return Err(anyhow::Error::new(e).context("could not load the AWS credentials found"))
        }
    }
    if config.region().is_none() {
        bail!("no AWS region: set AWS_REGION (or a region in your AWS profile)");
    }
    Ok(config)
}

/// A deployed stack's state table, for the CLI.
pub async fn state_store(
    table: &str,
) -> anyhow::Result<retailflow_aws::adapters::dynamodb::DynamoDbStateStore> {
    Ok(retailflow_aws::adapters::dynamodb::DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&aws_config().await?),
        table,
    ))
}

/// The local queue names of the step queues (`erp-post`, …).
pub const STEP_QUEUES: [&str; 4] = [
    "erp-post",
    "loyalty-accrual",
    "return-reversal",
    "stock-commit",
];

pub struct Stack {
    pub name: String,
    pub outputs: BTreeMap<String, String>,
}

/// `erp-post` → `ErpPost`: how the template names a queue's outputs.
fn output_prefix(queue: &str) -> String {
    queue
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

impl Stack {
    /// Reads the stack's outputs with the usual AWS credentials and region.
    pub async fn describe(aws: &aws_config::SdkConfig, name: &str) -> anyhow::Result<Stack> {
        let out = aws_sdk_cloudformation::Client::new(aws)
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading stack {name}: {}",
                    aws_sdk_cloudformation::error::DisplayErrorContext(&e)
                )
            })?;
        let Some(stack) = out.stacks().first() else {
            bail!("no stack {name}");
        };
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        Ok(Stack {
            name: name.to_string(),
            outputs,
        })
    }

    pub fn output(&self, key: &str) -> anyhow::Result<&str> {
        self.outputs.get(key).map(String::as_str).with_context(|| {
            format!(
                "stack {} has no output {key} (is it a retailflow stack?)",
                self.name
            )
        })
    }

    pub fn state_table(&self) -> anyhow::Result<&str> {
        self.output("StateTableName")
    }

    pub fn event_bus(&self) -> anyhow::Result<&str> {
        self.output("EventBusName")
    }

    /// The queue URL of a step queue (`erp-post`, …).
    pub fn queue_url(&self, queue: &str) -> anyhow::Result<&str> {
        self.output(&format!("{}QueueUrl", output_prefix(queue)))
    }

    /// The dead-letter queue URL of a step queue.
    pub fn dlq_url(&self, queue: &str) -> anyhow::Result<&str> {
        self.output(&format!("{}DLQUrl", output_prefix(queue)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_map_to_the_template_output_names() {
        let s = Stack {
            name: "rf".into(),
            outputs: BTreeMap::from([
                ("ReturnReversalDLQUrl".to_string(), "u1".to_string()),
                ("StockCommitQueueUrl".to_string(), "u2".to_string()),
            ]),
        };
        assert_eq!(s.dlq_url("return-reversal").unwrap(), "u1");
        assert_eq!(s.queue_url("stock-commit").unwrap(), "u2");
        let e = s.state_table().unwrap_err().to_string();
        assert!(e.contains("StateTableName"), "{e}");
    }
}
