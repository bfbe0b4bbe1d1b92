//! checkout-validation: `POST /checkout/validate` behind the HTTP API
//! (openapi/checkout.yaml). Wires the DynamoDB catalog, stock holds, open
//! holds and storefront nonces and the Salesforce Loyalty balance into
//! [`retailflow_core::checkout::validation::CheckoutValidation`], behind
//! [`retailflow_core::checkout::auth::CheckoutAuth`] (Shopify session tokens,
//! storefronts' signed requests); the logic lives there.
//!
//! Init stays light: clients are built on the first request (no network); the
//! connector secret and the webhook secret (checkout's keys) are read on
//! the first request and kept, with the circuit breaker and the cached
//! balances, for the life of the execution environment.

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use retailflow_aws::lambda::{
    env, gateway_time, json_response, run_http_function, setting, CallTimeouts, FunctionError,
    Stack,
};
use retailflow_connectors::from_env::loyalty_from_env;
use retailflow_core::checkout::auth::{CheckoutAuth, CheckoutAuthConfig, CheckoutSecretDocument};
use retailflow_core::checkout::hot_stock::CHECKOUT_BUDGET;
use retailflow_core::checkout::validation::{
    answer, CheckoutConfig, CheckoutHttpRequest, CheckoutValidation, LoyaltyFallback,
    LOYALTY_BREAKER_OPEN_FOR,
};
use retailflow_core::config::ConfigError;
use retailflow_core::resilience::CircuitBreaker;
use tokio::sync::OnceCell;

struct Checkout {
    stack: &'static Stack,
    /// Built on the first request that reads the secrets.
    checkout: OnceCell<(CheckoutValidation, CheckoutAuth)>,
}

fn config() -> Result<CheckoutConfig, ConfigError> {
    let defaults = CheckoutConfig::default();
    let number = |k: &str, d: i64| -> Result<i64, ConfigError> {
        match env(k) {
            Ok(v) => v
                .parse()
                .map_err(|e| ConfigError::BadSetting(format!("{k}: {e}"))),
            Err(_) => Ok(d),
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

impl Checkout {
    async fn checkout(&self) -> Result<&(CheckoutValidation, CheckoutAuth), FunctionError> {
        self.checkout
            .get_or_try_init(|| async {
                // Checkout's keys ride in the webhook secret (the Shopify
                // app's client secret signs both webhooks and session tokens).
                let doc = CheckoutSecretDocument::parse(
                    &self.stack.secret(&env("RETAILFLOW_SECRETS_ARN")?).await?,
                )?;
                let auth_config = doc
                    .apply(CheckoutAuthConfig::default())
                    .with_limits_from_env(setting)?;
                if !auth_config.accepts_anyone() {
                    tracing::warn!(
                        "no Shopify client id and shops, and no storefront secrets, in the webhook secret: every checkout will be answered 401"
                    );
                }
                // A shopper waits on this read: it is bounded by checkout's
                // own timeout and fallback, never queued behind the
                // loyalty budget the background steps share.
                let creds = self
                    .stack
                    .connector_credentials()
                    .await?
                    .with_budgets(Default::default());
                let loyalty = loyalty_from_env(setting, &creds)?;
                // Nonces and open holds on the state table: shared by
                // every container.
                let state = self.stack.state_store()?;
                let checkout = CheckoutValidation::new(
                    self.stack.catalog()?,
                    self.stack.stock(CHECKOUT_BUDGET)?,
                    state.clone(),
                    loyalty.clone(),
                    CircuitBreaker::for_system_opening_for(
                        loyalty.system(),
                        LOYALTY_BREAKER_OPEN_FOR,
                    ),
                    config()?,
                );
                Ok::<_, FunctionError>((checkout, CheckoutAuth::new(auth_config, state)))
            })
            .await
    }
}

async fn handle(app: &'static Checkout, req: Request) -> Result<Response<Body>, FunctionError> {
    if req.method() != lambda_http::http::Method::POST {
        return Ok(json_response(405, r#"{"error":"use POST"}"#));
    }
    let received_at = Utc::now();
    // API Gateway's own receive time: the caller cannot set it.
    let gateway_time = gateway_time(&req);
    let (checkout, auth) = match app.checkout().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "checkout is not configured");
            return Ok(json_response(
                503,
                r#"{"error":"checkout validation is not available","retryable":true}"#,
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
async fn main() -> Result<(), lambda_http::Error> {
    run_http_function(
        CallTimeouts::CHECKOUT,
        |stack| async move {
            Ok(Checkout {
                stack,
                checkout: OnceCell::new(),
            })
        },
        handle,
    )
    .await
}
