//! order-publish: `POST /webhooks/shopify` and `POST /webhooks/adobe` behind
//! the HTTP API. Wires the DynamoDB and EventBridge adapters into
//! [`retailflow_core::intake::OrderIntake`]; the logic lives there.
//!
//! Init stays light: clients are built at start (no network), the webhook
//! secrets are fetched from Secrets Manager on the first request and cached
//! for the life of the execution environment.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lambda_http::{run, service_fn, Body, Error, Request, RequestExt, Response};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::lambda::{
    aws_sdk_config, claim_checks, deadline, env, event_bus, init_tracing, read_secret,
};
use retailflow_core::config::WebhookSecretDocument;
use retailflow_core::intake::freshness::ReplayPolicy;
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::ports::ClaimChecks;
use tokio::sync::OnceCell;

struct App {
    /// Where events too large for the bus ride (S3).
    claims: Arc<dyn ClaimChecks>,
    store: Arc<DynamoDbStateStore>,
    bus: Arc<dyn retailflow_core::ports::EventBus>,
    secrets: aws_sdk_secretsmanager::Client,
    secrets_arn: String,
    adobe_shop: Option<String>,
    replay: ReplayPolicy,
    intake: OnceCell<OrderIntake>,
}

impl App {
    async fn intake(&self) -> Result<&OrderIntake, Error> {
        self.intake
            .get_or_try_init(|| async {
                let doc = WebhookSecretDocument::parse(
                    &read_secret(&self.secrets, &self.secrets_arn).await?,
                )?;
                let config = doc.apply(IntakeConfig {
                    adobe_shop: self.adobe_shop.clone(),
                    replay: self.replay,
                    ..IntakeConfig::default()
                })?;
                Ok::<_, Error>(
                    OrderIntake::new(self.store.clone(), self.bus.clone(), config)
                        .with_claim_checks(self.claims.clone()),
                )
            })
            .await
    }
}

fn json_response(status: u16, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

async fn handle(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let received_at = Utc::now();
    let Some(route) = WebhookRoute::from_path(req.uri().path()) else {
        return Ok(json_response(404, r#"{"error":"no such route"}"#));
    };
    if req.method() != lambda_http::http::Method::POST {
        return Ok(json_response(405, r#"{"error":"use POST"}"#));
    }
    // API Gateway's own receive time: the caller cannot set it.
    let gateway_time = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) if ctx.time_epoch > 0 => {
            chrono::DateTime::from_timestamp_millis(ctx.time_epoch)
        }
        _ => None,
    };
    let deadline = req
        .lambda_context_ref()
        .and_then(|ctx| deadline(ctx.deadline));
    let intake = match app.intake().await {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "intake is not configured");
            return Ok(json_response(
                503,
                r#"{"error":"webhook verification is not available","retryable":true}"#,
            ));
        }
    };
    let resp = intake
        .handle(WebhookRequest {
            route,
            headers: req.headers(),
            body: req.body().as_ref(),
            received_at,
            gateway_time,
            deadline,
        })
        .await;
    Ok(resp.into_http().map(Body::from))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    // Built on the first event (see retailflow_aws::lambda, "Built on the first event").
    let app = OnceCell::new();
    let app = &app;
    run(service_fn(move |req: Request| async move {
        handle(app.get_or_try_init(build).await?, req).await
    }))
    .await
}

/// The clients and configuration every event of this execution environment shares.
async fn build() -> Result<App, Error> {
    // Shopify waits 5 s for the answer: every AWS call is bounded so a slow
    // dependency turns into a 503 (the platform retries), not a timeout.
    let aws = aws_sdk_config(Duration::from_millis(1000), Duration::from_millis(1500)).await;
    let claims = claim_checks(&aws)?;
    Ok(App {
        claims: claims.clone(),
        store: Arc::new(DynamoDbStateStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            env("RETAILFLOW_STATE_TABLE")?,
        )),
        bus: event_bus(&aws, claims.clone())?,
        secrets: aws_sdk_secretsmanager::Client::new(&aws),
        secrets_arn: env("RETAILFLOW_SECRETS_ARN")?,
        adobe_shop: env("RETAILFLOW_ADOBE_SHOP").ok(),
        // A setting that does not read fails every invocation, loudly, until mended.
        replay: ReplayPolicy::from_env(|k| std::env::var(k).ok()).map_err(Error::from)?,
        intake: OnceCell::new(),
    })
}
