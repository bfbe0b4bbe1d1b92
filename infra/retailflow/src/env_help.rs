//! The environment each command reads, for its `--help`: what a person
//! sets without a flag. docs/configuration.md has every variable in full.

/// The intake's and checkout's secrets and limits, and the local app's
/// budgets and hot SKUs: what `serve` (and `run`) take from the environment.
macro_rules! local_app_env {
    () => {
        "\
  RETAILFLOW_SHOPIFY_SECRET               Shopify webhook secret (any secret set: all come from
                                          the environment; none: the dev keys, if found)
  RETAILFLOW_SHOPIFY_PREVIOUS_SECRET      the secret before a rotation, still accepted
  RETAILFLOW_ADOBE_PUBLIC_KEYS            Adobe Commerce signing keys (PEM paths, comma-separated)
  RETAILFLOW_ADOBE_CLIENT_ID              Adobe I/O client id the events name
  RETAILFLOW_ADOBE_SHOP                   the Adobe Commerce store's id in order keys
  RETAILFLOW_POS_STORE_SECRETS            tills' secrets, JSON {\"store-id\": \"secret\"}
  RETAILFLOW_POS_MAX_REQUEST_AGE_SECS     how old a till's request may be
  RETAILFLOW_POS_REQUIRE_TIMESTAMP        refuse tills' requests without a timestamp
  RETAILFLOW_SHOPIFY_MAX_DELIVERY_AGE_SECS  how old a Shopify delivery may be
  RETAILFLOW_ADOBE_MAX_DELIVERY_AGE_SECS  how old an Adobe event may be (its signed time)
  RETAILFLOW_SHOPIFY_CLIENT_ID            checkout: the Shopify app's client id (session tokens)
  RETAILFLOW_SHOPIFY_SHOPS                checkout: shops whose checkouts may call (comma-separated)
  RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS  checkout: storefronts' secrets, JSON
  RETAILFLOW_CHECKOUT_MAX_REQUEST_AGE_SECS  checkout: how old a signed request may be
  RETAILFLOW_ERP_BUDGET                   the ERP account's concurrency budget
  RETAILFLOW_LOYALTY_BUDGET               the loyalty org's concurrency budget
  RETAILFLOW_HOT_SKUS                     SKUs whose stock is sharded (flash sales)
  RETAILFLOW_DATA_DIR                     the data directory (as --data-dir)
  RUST_LOG                                log filter (overrides -v)
  NO_COLOR                                no colour in log lines"
    };
}

pub const SERVE: &str = concat!("Environment:\n  ", local_app_env!());

pub const RUN: &str = concat!(
    "Environment (the secrets only when RETAILFLOW_SHOPIFY_SECRET is set; else the dev keys):\n  ",
    local_app_env!()
);

/// The commands on the data directory that also reach a deployed stack.
pub const LOCAL_OR_AWS: &str = "\
Environment:
  RETAILFLOW_DATA_DIR                     the data directory (as --data-dir)
  AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY   credentials (a deployed stack)
  AWS_REGION                              the stack's region
  AWS_ENDPOINT_URL                        a local endpoint (moto server, DynamoDB local)
  RUST_LOG                                log filter (overrides -v)";

pub const SEND: &str = "\
Environment:
  RETAILFLOW_DATA_DIR                     the data directory whose serve it sends to
  RUST_LOG                                log filter (overrides -v)";

/// The AWS commands' credentials and endpoint.
pub const AWS: &str = "\
Environment:
  AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY   credentials
  AWS_REGION                              the stack's region
  AWS_ENDPOINT_URL                        a local endpoint (moto server, DynamoDB local)
  RUST_LOG                                log filter (overrides -v)";
