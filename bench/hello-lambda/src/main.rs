//! The cold-start baseline (`infra/scripts/bench.sh`): a lambda_runtime
//! function doing nothing, so the difference to a retailflow function is
//! what retailflow itself costs at start.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn hello(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "hello": "world" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
