//! What tests and the local app use to meet the simulators' strict
//! authentication: the credentials they accept, the connector secret
//! retailflow's side reads (rotatable), each connector's [`Auth`] against
//! the simulated token endpoints, and the limits per account.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use retailflow_connectors::auth::{
    AdobeAuth, EntraAuth, NetSuiteAuth, SalesforceAuth, ShopifyTokens,
};
use retailflow_connectors::Auth;
use retailflow_core::config::ConnectorSecretDocument;
use retailflow_core::credentials::{ConnectorSecrets, FixedSecret};

use crate::auth::TokenIssuer;
use crate::limits::AccountLimit;
use crate::{lock, SimState, Simulators, System};

impl Simulators {
    /// A handle on running simulators' state (for hooks served over HTTP).
    pub(crate) fn over(state: Arc<SimState>) -> Self {
        let secret = Arc::new(FixedSecret::new(crate::auth::DEV_CONNECTOR_SECRET));
        let secrets = Arc::new(ConnectorSecrets::new(secret.clone(), state.clock.clone()));
        Simulators {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            state,
            secret,
            secrets,
        }
    }

    /// The platforms accept the credentials in `doc` too (an integration
    /// created, a token issued, an app registered).
    pub fn accept_credentials(&self, doc: &ConnectorSecretDocument) {
        lock(&self.state.auth).accept(doc);
    }

    /// Every credential and every issued token stops working (revoked).
    pub fn revoke_credentials(&self) {
        lock(&self.state.auth).revoke_all();
    }

    /// How long the tokens `issuer` issues from now on live.
    pub fn set_token_lifetime(&self, issuer: TokenIssuer, life: chrono::Duration) {
        lock(&self.state.auth).set_lifetime(issuer, life);
    }

    /// Every token issued so far stops working now.
    pub fn expire_tokens(&self) {
        lock(&self.state.auth).expire_all_tokens();
    }

    /// Tokens issued so far, per issuer (`NetSuite`, `Entra`, `Salesforce`).
    pub fn tokens_issued(&self) -> BTreeMap<String, u64> {
        lock(&self.state.auth).issued_counts()
    }

    /// 401s answered so far, per system.
    pub fn auth_refusals(&self) -> BTreeMap<String, u64> {
        lock(&self.state.auth).refused_counts()
    }

    /// Sets an account's concurrency limit and latency.
    pub fn set_account_limit(&self, system: System, limit: AccountLimit) {
        lock(&self.state.limits).set(system, limit);
    }

    /// The most requests `system` ever had in flight at once.
    pub fn most_in_flight(&self, system: System) -> usize {
        lock(&self.state.limits).most_in_flight(system)
    }

    /// Requests `system` refused for its concurrency limit.
    pub fn refused_over_limit(&self, system: System) -> u64 {
        lock(&self.state.limits).refused(system)
    }

    /// Stores a new connector secret where retailflow's side reads it
    /// (what `aws secretsmanager put-secret-value` does).
    pub fn store_connector_secret(&self, json: &str) {
        self.secret.set(json);
    }

    /// The dev connector secret, to change and store back in a test.
    pub fn dev_connector_secret() -> ConnectorSecretDocument {
        ConnectorSecretDocument::parse(crate::auth::DEV_CONNECTOR_SECRET).unwrap_or_default()
    }

    /// Stores `doc` as the connector secret (see
    /// [`Self::store_connector_secret`]).
    pub fn store_connector_document(&self, doc: &ConnectorSecretDocument) {
        self.secret
            .set(serde_json::to_string(doc).unwrap_or_default());
    }

    /// The connector secret retailflow's side reads, shared by every
    /// connector these helpers build.
    pub fn connector_secrets(&self) -> Arc<ConnectorSecrets> {
        self.secrets.clone()
    }

    /// `…/netsuite/services/rest`: the root of the record, query and
    /// token endpoints.
    pub fn netsuite_rest_root(&self) -> String {
        format!("http://{}/netsuite/services/rest", self.addr)
    }

    /// The Entra ID authority (`https://login.microsoftonline.com`'s stand-in).
    pub fn entra_authority(&self) -> String {
        format!("http://{}/entra", self.addr)
    }

    pub fn netsuite_auth(&self) -> Auth {
        NetSuiteAuth::from_secret(self.secrets.clone(), &self.netsuite_rest_root())
    }

    pub fn business_central_auth(&self) -> Auth {
        EntraAuth::from_secret(self.secrets.clone(), &self.entra_authority())
    }

    pub fn salesforce_auth(&self) -> Auth {
        SalesforceAuth::from_secret(self.secrets.clone(), &self.salesforce_base())
    }

    pub fn adobe_auth(&self) -> Auth {
        AdobeAuth::from_secret(self.secrets.clone())
    }

    pub fn shopify_tokens(&self) -> ShopifyTokens {
        ShopifyTokens::new(self.secrets.clone())
    }
}
