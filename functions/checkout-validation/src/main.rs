//! checkout-validation: `POST /checkout/validate` behind the HTTP API
//! (openapi/checkout.yaml). Wires the DynamoDB catalog, stock holds, open
//! holds and storefront nonces and the Salesforce Loyalty balance into
//! [`retailflow_core::checkout::validation::CheckoutValidation`], behind
//! [`retailflow_core::checkout::auth::CheckoutAuth`] (Shopify session tokens,
//! storefronts' signed requests); the logic lives there.
//!
//! Init stays light: clients are built at start (no network); the
//! connector secret and the webhook secret (checkout's keys) are read on
//! the first request and kept, with the circuit breaker and the cached
//! balances, for the life of the execution environment.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lambda_http::{run, service_fn, Body, Error, Request, RequestExt, Response};
use retailflow_aws::adapters::dynamodb::DynamoDbStateStore;
use retailflow_aws::adapters::dynamodb_catalog::DynamoDbCatalog;
use retailflow_aws::lambda::{
    aws_sdk_config, connector_credentials, env, init_tracing, read_secret, stock, SdkConfig,
};
use retailflow_connectors::from_env::salesforce_config;
use retailflow_connectors::salesforce::SalesforceLoyalty;
use retailflow_core::checkout::auth::{CheckoutAuth, CheckoutAuthConfig, CheckoutSecretDocument};
use retailflow_core::checkout::hot_stock::CHECKOUT_BUDGET;
use retailflow_core::checkout::validation::{
    answer, CheckoutConfig, CheckoutHttpRequest, CheckoutValidation, LoyaltyFallback,
};
use retailflow_core::resilience::CircuitBreaker;
use tokio::sync::OnceCell;

struct App {
    aws: SdkConfig,
    checkout: OnceCell<(CheckoutValidation, CheckoutAuth)>,
}

fn config() -> Result<CheckoutConfig, Error> {
    let defaults = CheckoutConfig::default();
    let number = |k: &str, d: i64| -> Result<i64, Error> {
        match env(k) {
            Ok(v) if !v.is_empty() => Ok(v.parse().map_err(|e| format!("{k}: {e}"))?),
            _ => Ok(d),
        }
    };
    Ok(CheckoutConfig {
        // A hold of less than a minute would be swept before it is used.
        hold_for: chrono::Duration::minutes(
            number("RETAILFLOW_CHECKOUT_HOLD_MINUTES", 15)?.clamp(1, 24 * 60),
        ),
        minor_units_per_point: number("RETAILFLOW_POINT_VALUE_MINOR", 1)?,
        loyalty_fallback: match env("RETAILFLOW_LOYALTY_FALLBACK").as_deref() {
            Ok("allow_up_to_cached_balance") => LoyaltyFallback::AllowUpToCachedBalance,
            _ => LoyaltyFallback::Refuse,
        },
        // At least 1: a cap of 0 would refuse every cart.
        max_units_per_sku: u32::try_from(
            number(
                "RETAILFLOW_CHECKOUT_MAX_UNITS_PER_SKU",
                i64::from(defaults.max_units_per_sku),
            )?
            .clamp(1, 100_000),
        )
        .unwrap_or(defaults.max_units_per_sku),
        max_open_holds: u32::try_from(
            number(
                "RETAILFLOW_CHECKOUT_MAX_OPEN_HOLDS",
                i64::from(defaults.max_open_holds),
            )?
            .clamp(1, 50),
        )
        .unwrap_or(defaults.max_open_holds),
        ..defaults
    })
}

impl App {
    async fn checkout(&self) -> Result<&(CheckoutValidation, CheckoutAuth), Error> {
        self.checkout
            .get_or_try_init(|| async {
                // Checkout's keys ride in the webhook secret (the Shopify
                // app's client secret signs both webhooks and session tokens).
                let secrets = aws_sdk_secretsmanager::Client::new(&self.aws);
                let doc = CheckoutSecretDocument::parse(
                    &read_secret(&secrets, &env("RETAILFLOW_SECRETS_ARN")?).await?,
                )?;
                let auth_config = doc
                    .apply(CheckoutAuthConfig::default())
                    .with_limits_from_env(|k| std::env::var(k).ok())?;
                if !auth_config.accepts_anyone() {
                    tracing::warn!(
                        "no Shopify client id and shops, and no storefront secrets, in the webhook secret: every checkout will be answered 401"
                    );
                }
                // A shopper waits on this read: it is bounded by checkout's
                // own timeout and fallback, never queued behind the
                // loyalty budget the background steps share.
                let creds = connector_credentials(&self.aws)
                    .await?
                    .with_budgets(Default::default());
                let loyalty = salesforce_config(|k| std::env::var(k).ok(), &creds)?;
                let ddb = aws_sdk_dynamodb::Client::new(&self.aws);
                let table = env("RETAILFLOW_STATE_TABLE")?;
                // Nonces and open holds on the state table: shared by
                // every container.
                let state = Arc::new(DynamoDbStateStore::new(ddb.clone(), &table));
                let checkout = CheckoutValidation::new(
                    Arc::new(DynamoDbCatalog::new(ddb.clone(), &table)),
                    stock(&self.aws, &table, CHECKOUT_BUDGET)?,
                    Arc::new(SalesforceLoyalty::new(loyalty)),
                    Arc::new(CircuitBreaker::new(
                        "salesforce-loyalty",
                        5,
                        Duration::from_secs(30),
                    )),
                    config()?,
                )
                .with_open_holds(state.clone());
                Ok::<_, Error>((checkout, CheckoutAuth::new(auth_config, state)))
            })
            .await
    }
}

fn json_response(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(app: &App, req: Request) -> Result<Response<Body>, Error> {
    if req.method() != lambda_http::http::Method::POST {
        return Ok(json_response(405, r#"{"error":"use POST"}"#.into()));
    }
    let received_at = Utc::now();
    // API Gateway's own receive time: the caller cannot set it.
    let gateway_time = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) if ctx.time_epoch > 0 => {
            chrono::DateTime::from_timestamp_millis(ctx.time_epoch)
        }
        _ => None,
    };
    let (checkout, auth) = match app.checkout().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "checkout is not configured");
            return Ok(json_response(
                503,
                r#"{"error":"checkout validation is not available","retryable":true}"#.into(),
            ));
        }
    };
    let (status, body) = answer(
        checkout,
        auth,
        CheckoutHttpRequest {
            headers: req.headers(),
            body: req.body().as_ref(),
            received_at,
            gateway_time,
        },
    )
    .await;
    let mut resp = json_response(status, body.to_string());
    if status == 401 {
        resp.headers_mut().insert(
            lambda_http::http::header::WWW_AUTHENTICATE,
            lambda_http::http::HeaderValue::from_static(
                retailflow_core::checkout::auth::WWW_AUTHENTICATE,
            ),
        );
    }
    Ok(resp)
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
    // The storefront waits on this: every AWS call is bounded.
    let aws = aws_sdk_config(Duration::from_millis(500), Duration::from_millis(1200)).await;
    Ok(App {
        aws,
        checkout: OnceCell::new(),
    })
}
