//! order-publish: `POST /webhooks/shopify`, `POST /webhooks/adobe` and
//! `POST /pos/returns` behind the HTTP API. Verifies, maps and publishes
//! each delivery once through [`OrderIntake`]; the logic lives there.
//!
//! Init stays light: clients are built on the first request (no network),
//! the webhook secrets are fetched from Secrets Manager then and cached for
//! the life of the execution environment.

use std::sync::Arc;

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::lambda::{
    env, gateway_time, json_response, request_deadline, run_http_function, setting, CallTimeouts,
    FunctionError, Stack,
};
use retailflow_core::config::WebhookSecretDocument;
use retailflow_core::intake::freshness::ReplayPolicy;
use retailflow_core::intake::{IntakeConfig, OrderIntake, WebhookRequest, WebhookRoute};
use retailflow_core::ports::{ClaimChecks, EventBus};
use tokio::sync::OnceCell;

struct Intake {
    stack: &'static Stack,
    claims: Arc<dyn ClaimChecks>,
    secrets_arn: String,
    store: Arc<DynamoDbStateStore>,
    bus: Arc<dyn EventBus>,
    adobe_shop: Option<String>,
    replay: ReplayPolicy,
    /// Built on the first request that reads the webhook secret.
    intake: OnceCell<OrderIntake>,
}

impl Intake {
    async fn intake(&self) -> Result<&OrderIntake, FunctionError> {
        self.intake
            .get_or_try_init(|| async {
                let doc =
                    WebhookSecretDocument::parse(&self.stack.secret(&self.secrets_arn).await?)?;
                let config = doc.apply(IntakeConfig {
                    adobe_shop: self.adobe_shop.clone(),
                    replay: self.replay,
                    ..IntakeConfig::default()
                })?;
                Ok::<_, FunctionError>(
                    OrderIntake::new(self.store.clone(), self.bus.clone(), config)
                        .with_claim_checks(self.claims.clone()),
                )
            })
            .await
    }
}

async fn handle(app: &'static Intake, req: Request) -> Result<Response<Body>, FunctionError> {
    let received_at = Utc::now();
    let Some(route) = WebhookRoute::from_path(req.uri().path()) else {
        return Ok(json_response(404, r#"{"error":"no such route"}"#));
    };
    if req.method() != lambda_http::http::Method::POST {
        return Ok(json_response(405, r#"{"error":"use POST"}"#));
    }
    // API Gateway's own receive time: the caller cannot set it.
    let gateway_time = gateway_time(&req);
    let deadline = request_deadline(&req);
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
async fn main() -> Result<(), lambda_http::Error> {
    run_http_function(CallTimeouts::WEBHOOK, intake, handle).await
}

async fn intake(stack: &'static Stack) -> Result<Intake, FunctionError> {
    Ok(Intake {
        stack,
        claims: stack.claim_checks()?,
        secrets_arn: env("RETAILFLOW_SECRETS_ARN")?,
        store: stack.state_store()?,
        bus: stack.event_bus()?,
        adobe_shop: setting("RETAILFLOW_ADOBE_SHOP").filter(|s| !s.trim().is_empty()),
        replay: ReplayPolicy::from_env(setting)?,
        intake: OnceCell::new(),
    })
}
