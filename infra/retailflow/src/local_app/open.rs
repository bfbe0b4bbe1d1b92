//! The whole app wired in one process: the in-process adapters (on the data
//! directory's journal when given one), the simulators behind the
//! connectors, every step with its breakers and budgets, the queues and the
//! bus's rules, as the template wires them on AWS.

use super::*;

impl LocalApp {
    /// The app on a data directory's state (see [`crate::data_dir`]): its
    /// sagas, claims, queues, dead letters, published events, stock and the
    /// simulated systems' records as the last process left them, and every
    /// change written through. Without one, the app lives in memory.
    pub async fn open(
        intake_config: IntakeConfig,
        data: Option<Arc<DataDir>>,
    ) -> std::io::Result<Self> {
        Self::open_on(intake_config, data, Clock::starting_now()).await
    }

    /// [`Self::open`] on the given clock: `serve` runs on the real one.
    pub async fn open_on(
        intake_config: IntakeConfig,
        data: Option<Arc<DataDir>>,
        clock: Clock,
    ) -> std::io::Result<Self> {
        let rows = match &data {
            Some(d) => d.rows("").map_err(std::io::Error::other)?,
            None => Vec::new(),
        };
        let journal = data.clone().map(|d| d as Arc<dyn Journal>);
        let row = |key: &str| -> Option<&str> {
            rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        };
        let saved = |key: &str| -> std::io::Result<Option<serde_json::Value>> {
            row(key)
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| std::io::Error::other(format!("{key}: {e}")))
        };
        if let Some(t) = saved("meta/clock")? {
            // The virtual clock never goes back: backoffs already waited stay waited.
            if let Ok(t) = serde_json::from_value(t) {
                clock.advance_to(t);
            }
        }
        let sim_clock = clock.clone();
        let sims = Simulators::start_with_clock(Arc::new(move || sim_clock.now())).await?;
        let queues: Queues = Arc::new(Mutex::new(BTreeMap::new()));
        let restore_err =
            |e: &dyn std::fmt::Display| std::io::Error::other(format!("local state: {e}"));
        for name in [
            ERP_POST_QUEUE,
            LOYALTY_ACCRUAL_QUEUE,
            RETURN_REVERSAL_QUEUE,
            STOCK_COMMIT_QUEUE,
        ] {
            let mut q = Queue::new(name, VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT);
            if let Some(j) = &journal {
                q = q.durable(j.clone(), &rows).map_err(|e| restore_err(&e))?;
            }
            lock(&queues).insert(name.into(), q);
        }
        let mut dead_letters = Vec::new();
        for (key, value) in rows.iter().filter(|(k, _)| k.starts_with("dlq/")) {
            let d: DeadLetter =
                serde_json::from_str(value).map_err(|e| restore_err(&format!("{key}: {e}")))?;
            dead_letters.push(d);
        }
        // In the order they died, as before the restart (keys sort as text).
        dead_letters.sort_by_key(|d| (crate::runtime::seq_of(&d.id), d.queue.clone()));
        let store = Arc::new(match &journal {
            Some(j) => InProcessStateStore::durable(
                j.clone(),
                rows.iter().filter(|(k, _)| is_store_row(k)).cloned(),
            )
            .map_err(|e| restore_err(&e))?,
            None => InProcessStateStore::new(),
        });
        let mut bus = RoutingBus::new(rules(), queues.clone(), clock.clone());
        if let Some(j) = &journal {
            bus = bus.durable(j.clone(), &rows).map_err(|e| restore_err(&e))?;
        }
        let bus = Arc::new(bus);
        // Events too large for the bus ride by reference, kept beside the
        // state file (or in memory), as the stack keeps them in S3.
        let claims = Arc::new(match &data {
            Some(d) => LocalClaimChecks::in_dir(d.dir().join("claims")),
            None => LocalClaimChecks::in_memory(),
        });
        let published: Arc<dyn EventBus> =
            Arc::new(ClaimCheckedBus::new(bus.clone(), claims.clone()));
        // The accounts' concurrency budgets, as on AWS (RETAILFLOW_ERP_BUDGET,
        // RETAILFLOW_LOYALTY_BUDGET), on the app's clock; the local app is
        // one container, giving its slots back after every batch.
        let budget_clock = clock.clone();
        let budgets = retailflow_core::config::Budgets::single_process(
            |k| std::env::var(k).ok(),
            store.clone(),
            Arc::new(move || budget_clock.now()),
        )
        .map_err(std::io::Error::other)?;
        let erp = Arc::new(NetSuiteErp::new(NetSuiteConfig {
            base_url: sims.netsuite_base(),
            auth: sims.netsuite_auth().with_budget(budgets.erp.clone()),
            subsidiary_id: Some("1".into()),
            timeout: Duration::from_secs(5),
        }));
        let loyalty_config = SalesforceLoyaltyConfig {
            base_url: sims.salesforce_base(),
            api_version: "v62.0".into(),
            program_name: "RetailflowRewards".into(),
            journal_subtype: "Purchase".into(),
            debit_process: "DebitPointsFromMembers".into(),
            auth: sims.salesforce_auth().with_budget(budgets.loyalty.clone()),
            timeout: Duration::from_secs(5),
        };
        let loyalty = Arc::new(SalesforceLoyalty::new(loyalty_config.clone()));
        // A breaker per system and step, as each step is its own function
        // on AWS, named as the system names itself.
        let erp_system = retailflow_core::ports::erp::ErpConnector::system(erp.as_ref());
        let loyalty_system =
            retailflow_core::ports::loyalty::LoyaltyConnector::system(loyalty.as_ref());
        let erp_breaker = CircuitBreaker::for_system(erp_system);
        let loyalty_breaker = CircuitBreaker::for_system(loyalty_system);
        let shopify = Arc::new(ShopifyAdmin::new(ShopifyAdminConfig {
            base_url: Some(sims.shopify_admin_base()),
            api_version: "2024-10".into(),
            // The sample shop: catalog syncs push its stock levels.
            tokens: sims.shopify_tokens(),
            locations: BTreeMap::new(),
            default_location: Some("1001".into()),
            timeout: Duration::from_secs(5),
        }));
        let adobe = Arc::new(AdobeCommerceAdmin::new(AdobeCommerceAdminConfig {
            base_url: sims.adobe_rest_base(),
            auth: sims.adobe_auth(),
            timeout: Duration::from_secs(5),
        }));
        let shop_breaker = CircuitBreaker::for_system;
        let shopify_system = EcommerceConnector::system(shopify.as_ref());
        let adobe_system = EcommerceConnector::system(adobe.as_ref());
        let (shopify_stock, adobe_stock) = (shopify.clone(), adobe.clone());
        let fulfillment_sync = FulfillmentSync::new(
            store.clone(),
            published.clone(),
            erp.clone(),
            CircuitBreaker::for_system(erp_system),
            vec![
                (
                    Platform::Shopify,
                    Guarded::new(
                        shopify.clone() as Arc<dyn EcommerceConnector>,
                        shop_breaker(shopify_system),
                    ),
                ),
                (
                    Platform::AdobeCommerce,
                    Guarded::new(
                        adobe.clone() as Arc<dyn EcommerceConnector>,
                        shop_breaker(adobe_system),
                    ),
                ),
            ],
        );
        let return_reversal = ReturnReversal::new(
            store.clone(),
            published.clone(),
            Guarded::new(erp.clone(), erp_breaker.clone()),
            Guarded::new(loyalty.clone(), loyalty_breaker.clone()),
            vec![
                (
                    Platform::Shopify,
                    Guarded::new(
                        shopify as Arc<dyn EcommerceConnector>,
                        shop_breaker(shopify_system),
                    ),
                ),
                (
                    Platform::AdobeCommerce,
                    Guarded::new(
                        adobe as Arc<dyn EcommerceConnector>,
                        shop_breaker(adobe_system),
                    ),
                ),
            ],
            ReturnReversalConfig::default(),
        );
        let mut catalog = InProcessCatalog::new();
        let mut stock = InProcessStock::new();
        let seed = CatalogSeed::parse(CATALOG_SEED).map_err(std::io::Error::other)?;
        seed.load(&catalog, &stock)
            .await
            .map_err(std::io::Error::other)?;
        if let Some(j) = &journal {
            // What was saved replaces the seed (it started from it).
            catalog = catalog
                .durable(j.clone(), row("meta/catalog"))
                .map_err(std::io::Error::other)?;
            stock = stock
                .durable(j.clone(), row("meta/stock"))
                .map_err(std::io::Error::other)?;
        }
        let (catalog, stock) = (Arc::new(catalog), Arc::new(stock));
        // What the steps and checkout hold stock through: hot SKUs sharded,
        // as on AWS.
        let held_stock: Arc<dyn StockReservations> = Arc::new(HotStock::new(
            stock.clone(),
            HotSkus::from_settings(|k| std::env::var(k).ok()).map_err(std::io::Error::other)?,
        ));
        let seed_currency = retailflow_core::money::Currency::from_code(&seed.currency)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for item in &seed.items {
            let price = retailflow_core::money::Money::parse(&item.price, seed_currency)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            sims.set_erp_item(&item.sku, price, i64::from(item.on_hand));
        }
        if let Some(v) = saved("meta/simulators")? {
            sims.restore(v).map_err(std::io::Error::other)?;
        }
        if let Some(data) = &data {
            // The systems of record keep their own books: saved with every
            // change, before the caller hears back.
            // Weak: the simulators' server outlives the app; the file must not.
            let data = Arc::downgrade(data);
            sims.on_change(Arc::new(move |v| {
                let Some(data) = data.upgrade() else { return };
                let row = ("meta/simulators".to_string(), Some(v.to_string()));
                if let Err(e) = data.write(&[row]) {
                    tracing::error!(error = %e, "local state file not written");
                }
            }));
        }
        let sync_clock = clock.clone();
        let catalog_sync = CatalogSync::new(
            erp.clone(),
            CircuitBreaker::for_system(erp_system),
            vec![
                Guarded::new(
                    shopify_stock as Arc<dyn EcommerceConnector>,
                    shop_breaker(shopify_system),
                ),
                Guarded::new(
                    adobe_stock as Arc<dyn EcommerceConnector>,
                    shop_breaker(adobe_system),
                ),
            ],
            catalog.clone(),
            held_stock.clone(),
            seed_currency,
            Arc::new(move || sync_clock.now()),
        );
        // A shopper waits on checkout's balance read: outside the budget,
        // as on AWS.
        let checkout_loyalty = Arc::new(SalesforceLoyalty::new(SalesforceLoyaltyConfig {
            auth: sims.salesforce_auth(),
            ..loyalty_config
        }));
        let checkout = CheckoutValidation::new(
            catalog.clone(),
            held_stock.clone(),
            Arc::new(retailflow_core::adapters::in_process::InProcessOpenHolds::new()),
            checkout_loyalty,
            CircuitBreaker::for_system_opening_for(
                loyalty_system,
                retailflow_core::checkout::validation::LOYALTY_BREAKER_OPEN_FOR,
            ),
            CheckoutConfig::default(),
        );
        let stock_commit = StockCommit::new(
            store.clone(),
            published.clone(),
            held_stock.clone(),
            catalog.clone(),
            retailflow_core::idempotency::LeasePolicy::default(),
        );
        let recon_clock = clock.clone();
        let dead_letters = Arc::new(Mutex::new(dead_letters));
        let archive = Arc::new(LocalArchive { bus: bus.clone() });
        let reconciliation = Reconciliation::new(
            store.clone(),
            published.clone(),
            archive.clone(),
            Some(Guarded {
                connector: erp.clone() as Arc<dyn retailflow_core::ports::erp::ErpConnector>,
                breaker: CircuitBreaker::for_system(erp_system),
            }),
            Some(Guarded {
                connector: loyalty.clone()
                    as Arc<dyn retailflow_core::ports::loyalty::LoyaltyConnector>,
                breaker: CircuitBreaker::for_system(loyalty_system),
            }),
            ReconciliationConfig::default(),
            Arc::new(move || recon_clock.now()),
        )
        .with_dead_letters(Arc::new(crate::local_replay::LocalDeadLetters {
            queues: queues.clone(),
            dead_letters: dead_letters.clone(),
            clock: clock.clone(),
        }));
        Ok(LocalApp {
            budgets,
            reconciliation,
            archive,
            erp: erp.clone(),
            fulfillment_sync,
            catalog_sync,
            stock_commit,
            loyalty: loyalty.clone(),
            catalog,
            stock,
            checkout,
            checkout_auth: CheckoutAuth::new(CheckoutAuthConfig::default(), store.clone()),
            return_reversal,
            intake: OrderIntake::new(store.clone(), published.clone(), intake_config)
                .with_claim_checks(claims.clone()),
            erp_posting: ErpPosting::new(
                store.clone(),
                published.clone(),
                erp,
                erp_breaker,
                ErpPostingConfig::default(),
            ),
            loyalty_accrual: LoyaltyAccrual::new(
                store.clone(),
                published.clone(),
                loyalty,
                loyalty_breaker,
                LoyaltyAccrualConfig::default(),
            ),
            store,
            bus,
            claims,
            queues,
            dead_letters,
            clock,
            data,
            sims,
            retry: RetryPolicy::default(),
            batch_tick: Duration::ZERO,
            drain_turn: tokio::sync::Mutex::new(()),
        })
    }
}
