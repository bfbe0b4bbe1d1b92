//! `retailflow`: the whole app in one process, and tools around it.
//!
//! - `run [DIR|FILE]...`: feeds event files (API Gateway, EventBridge, SQS,
//!   schedule ticks) through the app (in-process adapters) and prints what
//!   happened to each order;
//! - `serve --listen ADDR`: serves the template's routes on the in-process adapters;
//! - `bench-checkout`: checkout validation latency and throughput;
//! - `bench-flash-sale`: shoppers against a few hot SKUs under DynamoDB's
//!   contention rules: what each was told, latency, no oversell, no leak;
//! - `bench-orders`: CPU per order through the whole app;
//! - `bench-reconcile`: reconciliation run time and requests for N orders;
//! - `replay list|redrive|window`: dead letters and window replays, on a
//!   running `serve` or a deployed stack;
//! - `load-catalog --table T FILE`: a catalog into a deployed state table;
//! - `trace --table T KEY`: where an order is, from a deployed state table;
//! - `reconcile`: a reconciliation on a running `serve` (`--local URL`), or
//!   on a deployed stack (`--bus B` asks its function, `--table T --report
//!   latest` prints a kept report);
//! - `simulators --listen ADDR`: the ERP, loyalty and shop simulators alone;
//! - `canonical --source shopify|adobe --topic T FILE`: prints the canonical event;
//! - `sample-event ...`, `sample-sqs-event ...`: write signed API Gateway and
//!   SQS events for a raw payload.

mod bench;
mod bench_orders;
mod bench_reconcile;
mod commands;
mod local_target;
mod reconcile;
mod replay_cli;
mod send;
mod serve;

use retailflow::{api_event, data_dir, local_app};

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "retailflow",
    version,
    about = "retailflow: ecommerce, loyalty and ERP in step"
)]
struct Cli {
    /// Where the local app keeps its state (an embedded database file):
    /// `run` and `serve` write it; `trace`, `replay` and `reconcile` read
    /// it when not pointed elsewhere.
    #[arg(
        long,
        global = true,
        env = "RETAILFLOW_DATA_DIR",
        default_value = retailflow::data_dir::DEFAULT_DATA_DIR
    )]
    data_dir: PathBuf,
    /// More log lines on stderr: -v for info, -vv for debug (`RUST_LOG`
    /// overrides both). By default the commands that print a report log
    /// warnings only; `serve` and `simulators` log at info.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

impl Command {
    /// The log level a command runs at unless told otherwise: a report's
    /// own output is not buried in log lines; a server logs what it does;
    /// chaos and the benchmarks cause their faults on purpose.
    fn quiet_level(&self) -> usize {
        match self {
            Command::Serve { .. } | Command::Simulators { .. } => 2,
            Command::Chaos { .. }
            | Command::BenchCheckout { .. }
            | Command::BenchFlashSale { .. }
            | Command::BenchReconcile { .. }
            | Command::BenchOrders { .. }
            | Command::BenchBudget { .. } => 0,
            _ => 1,
        }
    }
}

/// Logs to stderr, coloured only for a terminal that did not ask for none.
fn init_logs(cli: &Cli) {
    use std::io::IsTerminal;
    const LEVELS: [&str; 4] = ["error", "warn", "info", "debug"];
    let level = LEVELS[(cli.command.quiet_level() + usize::from(cli.verbose)).min(3)];
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Source {
    Shopify,
    Adobe,
    /// A point-of-sale return (`--shop` is the store id).
    Pos,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark checkout validation in process (build with --release):
    /// p50/p99 latency and throughput on one core.
    BenchCheckout {
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
        #[arg(long, default_value_t = 5)]
        lines: usize,
    },
    /// Benchmark a flash sale in process on DynamoDB's contention rules
    /// (build with --release; runs in real time): N shoppers over S seconds
    /// for U units of each of K hot SKUs; prints held, sold out, unavailable
    /// and p50/p99 latency, and checks no unit oversold or leaked.
    BenchFlashSale {
        #[arg(long, default_value_t = 5_000)]
        shoppers: usize,
        /// Units of each hot SKU.
        #[arg(long, default_value_t = 100)]
        units: u32,
        #[arg(long, default_value_t = 1)]
        skus: usize,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Distinct hot SKUs in each cart, one unit each.
        #[arg(long, default_value_t = 1)]
        cart_lines: usize,
        /// Counters each hot SKU keeps its units in (1: not sharded;
        /// default: what docs/flash-sale.md recommends for the sale).
        #[arg(long)]
        shards: Option<u16>,
        /// Modelled service time of a transaction, in ms.
        #[arg(long, default_value_t = 20)]
        transaction_ms: u64,
        /// Modelled service time of a single-item write, in ms.
        #[arg(long, default_value_t = 10)]
        write_ms: u64,
        /// Modelled service time of a read, in ms.
        #[arg(long, default_value_t = 5)]
        read_ms: u64,
        /// Write units one item takes a second.
        #[arg(long, default_value_t = 1_000)]
        item_wcu: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Benchmark reconciliation in process (build with --release): N orders
    /// and a refund of every fifth through the app, then one run over them:
    /// time, pages and requests; checks it finds none, then deleted ones.
    BenchReconcile {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
    },
    /// Benchmark CPU per order through the whole app in process (build with
    /// --release): the chaos workload's orders, checkouts, returns and
    /// cancellations with no faults.
    BenchOrders {
        #[arg(long, default_value_t = 2_000)]
        orders: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
    },
    /// A backlog of orders drained through the ERP's concurrency budget on
    /// a virtual clock (Lambda's pollers, each container with its own
    /// share of the slots): drain time against the ideal, the most calls in
    /// flight, receives and slot writes.
    BenchBudget {
        #[arg(long, default_value_t = 2_000)]
        orders: usize,
        #[arg(long, default_value_t = 5)]
        budget: u32,
        /// Milliseconds per ERP call.
        #[arg(long, default_value_t = 1_000)]
        call_ms: u64,
        /// ERP calls per order.
        #[arg(long, default_value_t = 1)]
        calls: u32,
        /// Invocations at once (the event source's maximum concurrency).
        #[arg(long, default_value_t = 5)]
        invocations: usize,
        #[arg(long, default_value_t = 10)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Chaos: a seeded workload of orders (Shopify and Adobe shapes, several
    /// currencies, gift cards), returns and cancellations through the whole
    /// app with duplicated and reordered deliveries, throttling, errors,
    /// outages, lost answers and crashes; then replay and reconciliation, and
    /// every guarantee checked against a reference model. Exits 2 if any
    /// count is not 0. Build with --release for big runs.
    Chaos {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Feed Lambda event files through the whole app in one process, drain
    /// every queue, print each order's timeline. Exits 2 if a saga did not
    /// complete or anything reached a DLQ. Starts from an empty data
    /// directory and leaves its state there for `trace`, `replay` and
    /// `reconcile`.
    Run {
        /// Lambda event files, or folders of them (not recursed): HTTP API 2.0
        /// requests, EventBridge events, SQS events.
        #[arg(default_value = "events")]
        paths: Vec<PathBuf>,
        /// Print each order's timeline as a JSON line.
        #[arg(long)]
        json: bool,
        /// Dev verification keys the samples are signed with; used unless
        /// RETAILFLOW_SHOPIFY_SECRET is set.
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
    },
    /// Serve the template's routes (POST /webhooks/shopify, /webhooks/adobe,
    /// /pos/returns, /checkout/validate; GET /local/state) on in-process adapters,
    /// on the real clock, with the data directory's state: a restart carries on
    /// where the last process stopped, with every accepted event. Send it the
    /// samples with `retailflow send`. Stops on Ctrl-C or SIGTERM.
    Serve {
        /// Where to listen, host:port (a host name such as localhost too; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Dev keys to verify with when RETAILFLOW_SHOPIFY_SECRET is unset.
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
    },
    /// Load a catalog file (the shape of events/catalog/seed.json: prices,
    /// on-hand counts, promotions) into a deployed stack's state table, with
    /// the usual AWS credentials and region (AWS_ENDPOINT_URL for a local
    /// DynamoDB). A price that differs from the stored one gets the next
    /// version; an unchanged one is left alone.
    LoadCatalog {
        /// The stack's StateTableName output.
        #[arg(long)]
        table: String,
        file: PathBuf,
    },
    /// Where an order is: its events and every step of it, its returns and
    /// its cancellation (when, result, external document ids): from the
    /// local app (its data directory, or the `serve` holding it), a running
    /// `serve` (--local), or a deployed stack's state table with the usual
    /// AWS credentials (--table, --stack).
    Trace {
        /// A running `retailflow serve`, e.g. http://127.0.0.1:8080.
        #[arg(long, conflicts_with_all = ["table", "stack"])]
        local: Option<String>,
        /// The stack's StateTableName output.
        #[arg(long)]
        table: Option<String>,
        /// A deployed stack's name: its outputs name the table.
        #[arg(long, conflicts_with = "table")]
        stack: Option<String>,
        /// Print the trace as JSON.
        #[arg(long)]
        json: bool,
        /// The order key, e.g. shopify:acme.myshopify.com:order:5872301948123.
        key: String,
    },
    /// Reconciliation: stuck steps re-driven, the ERP's and loyalty
    /// platform's records compared with the sagas, discrepancies by kind.
    /// On the local app: a running `retailflow serve` (--local). On a
    /// deployed stack, with the usual AWS credentials: --bus asks its
    /// function for a run, --table with --report prints a kept report.
    /// Exits 2 when discrepancies are found.
    Reconcile {
        /// A running `retailflow serve`, e.g. http://127.0.0.1:8080.
        #[arg(long, conflicts_with_all = ["bus", "table"])]
        local: Option<String>,
        /// The stack's EventBusName output: asks its function for a run.
        #[arg(long, conflicts_with = "table")]
        bus: Option<String>,
        /// The stack's StateTableName output: with --report, prints a report.
        #[arg(long, requires = "report")]
        table: Option<String>,
        /// A deployed stack's name: asks its function for a run, or with
        /// --report prints a kept report (its outputs name the bus and table).
        #[arg(long, conflicts_with_all = ["local", "bus", "table"])]
        stack: Option<String>,
        /// A run id, or `latest`.
        #[arg(long)]
        report: Option<String>,
        /// Sagas started in the last N hours (default: the function's lookback, 24 locally).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        hours: Option<i64>,
        /// Window start (RFC 3339), e.g. 2026-11-25T00:00:00Z.
        #[arg(long)]
        from: Option<String>,
        /// Window end (RFC 3339); default now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Dead letters listed with their reasons and correlation ids and
    /// re-driven, or a window's events replayed to one rule's queue: on a
    /// running `retailflow serve` (--local) or on a deployed stack's queues
    /// and state table (--dlq-url/--queue-url/--table, usual AWS credentials).
    Replay {
        #[command(flatten)]
        target: replay_cli::Target,
        #[command(subcommand)]
        action: replay_cli::ReplayAction,
    },
    /// Serve the NetSuite, Business Central and Salesforce Loyalty simulators
    /// on a loopback address (for running the Lambdas against them).
    Simulators {
        /// Where to listen, host:port (a host name such as localhost too).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
    /// Write an SQS event carrying the canonical event of a raw Shopify
    /// payload (OrderPlaced, RefundIssued, ...), as EventBridge delivers it to
    /// a step queue (for `cargo lambda invoke`).
    SampleSqsEvent {
        /// The queue's name, the last part of the eventSourceARN.
        #[arg(long)]
        queue: String,
        #[arg(long, default_value = "example.myshopify.com")]
        shop: String,
        /// The payload's Shopify webhook topic.
        #[arg(long, default_value = "orders/create")]
        topic: String,
        payload: PathBuf,
    },
    /// Print the canonical event for a raw platform payload.
    Canonical {
        #[arg(long, value_enum)]
        source: Source,
        /// Webhook topic (Shopify `orders/create`, ...; Adobe event code).
        #[arg(long)]
        topic: String,
        /// Shop identity (Shopify shop domain / Adobe instance).
        #[arg(long, default_value = "example.myshopify.com")]
        shop: String,
        file: PathBuf,
    },
    /// Write a Shopify orders/create payload of many lines (each one unit
    /// at 2.00 USD plus 8% tax, SKUs BULK-00000…), or with --refund-of a
    /// refunds/create payload returning every line of such an order: feed
    /// it to `sample-event` and `run` to see a large order through.
    LargeOrder {
        #[arg(long, default_value_t = 500)]
        lines: usize,
        /// Distinct SKUs the lines are spread over.
        #[arg(long, default_value_t = 150)]
        skus: usize,
        #[arg(long, default_value_t = 7_000_000_001)]
        order_id: u64,
        /// Write the refund of every line of the order these flags describe.
        #[arg(long)]
        refund: bool,
    },
    /// Write a signed HTTP API 2.0 request event for a raw payload, signed with the dev keys.
    SampleEvent {
        #[arg(long, value_enum)]
        source: Source,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value = "example.myshopify.com")]
        shop: String,
        /// Platform delivery id (X-Shopify-Event-Id); Adobe takes the payload's id.
        #[arg(long)]
        event_id: Option<String>,
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
        /// Change the body after signing (a tampered delivery).
        #[arg(long)]
        tamper: bool,
        /// When the delivery is made (RFC 3339): its delivery time, the
        /// till's timestamp, the gateway's time. Default now, so a running
        /// `serve` takes it.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        payload: PathBuf,
    },
    /// Send event files to a running `retailflow serve` (the one on the data
    /// directory, or --to), stamped anew at the current time and signed with
    /// the dev keys, as the platforms would deliver them now; prints each
    /// answer. Exits 2 if one was not taken (the samples refused on purpose
    /// aside, as in `run`).
    Send {
        /// HTTP API 2.0 event files (webhooks, till returns, checkout
        /// requests), or folders of them (not recursed).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The serve's URL (default: the one running on the data directory).
        #[arg(long)]
        to: Option<String>,
        /// Dev keys the samples are signed with, to sign them anew.
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
        /// Print each answer as a JSON line.
        #[arg(long)]
        json: bool,
    },
}

/// A deployed stack's outputs, with the usual AWS credentials and region.
async fn stack_of(name: &str) -> anyhow::Result<retailflow::stack::Stack> {
    let aws = retailflow::stack::aws_config().await;
    retailflow::stack::Stack::describe(&aws, name).await
}

/// A command that did its work and found something not done (a delivery
/// not taken, a saga not complete, a dead letter, a finding): it has said
/// what on stdout; the exit code says so too.
#[derive(Debug, thiserror::Error)]
#[error("not everything was taken or completed")]
struct NotAllDone;

/// Exit codes: 0 done, 1 an error (said on stderr, without a backtrace: it
/// is an answer, not a crash), 2 not everything was taken or completed (or
/// the command line was not understood).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(&cli);
    match run_command(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<NotAllDone>() => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `Err(NotAllDone)` unless `done`.
fn all_done(done: bool) -> anyhow::Result<()> {
    if done {
        Ok(())
    } else {
        Err(NotAllDone.into())
    }
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir;
    match cli.command {
        Command::Run {
            paths,
            dev_keys,
            json,
        } => {
            // Incomplete sagas, dead letters or deliveries not taken.
            all_done(commands::run(&paths, &dev_keys, json, &data_dir).await?)
        }
        Command::Chaos {
            orders,
            seed,
            dev_keys,
            json,
        } => {
            let config = retailflow::chaos::ChaosConfig::new(orders.max(1), seed);
            let report = retailflow::chaos::run(&config, &dev_keys).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            all_done(report.violations.total() == 0)
        }
        Command::Serve { listen, dev_keys } => serve::serve(&listen, &data_dir, &dev_keys).await,
        Command::LoadCatalog { table, file } => commands::load_catalog(&table, &file).await,
        Command::Trace {
            local,
            table,
            stack,
            json,
            key,
        } => {
            // Exit 2 when something of the order is not done.
            let table = match (local, table, stack) {
                (Some(url), _, _) => return all_done(local_target::trace(&url, &key, json).await?),
                (None, Some(t), _) => t,
                (None, None, Some(s)) => stack_of(&s).await?.state_table()?.to_string(),
                (None, None, None) => {
                    let target = local_target::local_target(&data_dir).await?;
                    return all_done(local_target::trace(&target.url, &key, json).await?);
                }
            };
            all_done(commands::trace(&table, &key, json).await?)
        }
        Command::Reconcile {
            local,
            bus,
            table,
            stack,
            report,
            hours,
            from,
            to,
            json,
        } => {
            let detail = reconcile::window_detail(hours, from, to);
            let (bus, table) = match (&stack, &report) {
                (Some(s), Some(_)) => (None, Some(stack_of(s).await?.state_table()?.to_string())),
                (Some(s), None) => (Some(stack_of(s).await?.event_bus()?.to_string()), None),
                _ => (bus, table),
            };
            let clean = match (local, bus, table) {
                (Some(url), _, _) => reconcile::on_local(&url, &detail, json).await?,
                (None, None, None) if stack.is_none() => {
                    let target = local_target::local_target(&data_dir).await?;
                    reconcile::on_local(&target.url, &detail, json).await?
                }
                (_, Some(bus), _) => {
                    reconcile::request_on_bus(&bus, &detail).await?;
                    true
                }
                (_, _, Some(table)) => {
                    let run = report.unwrap_or_else(|| "latest".into());
                    reconcile::show_report(&table, &run, json).await?
                }
                _ => anyhow::bail!(
                    "say where: --local http://127.0.0.1:8080 (a running `retailflow serve`), --bus <EventBusName> or --table <StateTableName> --report latest"
                ),
            };
            all_done(clean)
        }
        Command::Replay { mut target, action } => {
            if let Some(name) = target.stack.clone() {
                target.resolve(&stack_of(&name).await?, &action)?;
            }
            // Nowhere named: the local app of the data directory.
            let _local = match target.names_nothing() {
                true => {
                    let local = local_target::local_target(&data_dir).await?;
                    target.local = Some(local.url.clone());
                    Some(local)
                }
                false => None,
            };
            all_done(replay_cli::replay(target, action).await?)
        }
        Command::BenchOrders {
            orders,
            seed,
            dev_keys,
        } => bench_orders::bench_orders(orders.max(1), seed, &dev_keys).await,
        Command::BenchBudget {
            orders,
            budget,
            call_ms,
            calls,
            invocations,
            batch,
            json,
        } => {
            let setup = retailflow::budget_drain::DrainSetup {
                orders: orders.max(1),
                budget: budget.max(1),
                call: std::time::Duration::from_millis(call_ms),
                calls: calls.max(1),
                invocations: invocations.max(1),
                batch: batch.clamp(1, 10_000),
            };
            let figures =
                tokio::task::spawn_blocking(move || retailflow::budget_drain::drain(setup))
                    .await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                print!("{figures}");
            }
            Ok(())
        }
        Command::BenchFlashSale {
            shoppers,
            units,
            skus,
            seconds,
            cart_lines,
            shards,
            transaction_ms,
            write_ms,
            read_ms,
            item_wcu,
            seed,
        } => {
            retailflow::bench_flash_sale::bench_flash_sale(
                retailflow::bench_flash_sale::FlashSale {
                    shoppers,
                    units,
                    skus: skus.max(1),
                    seconds,
                    cart_lines: cart_lines.max(1),
                    shards,
                    model: retailflow_core::adapters::contention::ContentionModel {
                        transaction_latency: std::time::Duration::from_millis(transaction_ms),
                        write_latency: std::time::Duration::from_millis(write_ms),
                        read_latency: std::time::Duration::from_millis(read_ms),
                        item_write_units_per_second: item_wcu.max(1),
                    },
                    seed,
                },
            )
            .await
        }
        Command::BenchReconcile { orders } => bench_reconcile::bench_reconcile(orders.max(1)).await,
        Command::BenchCheckout { iterations, lines } => {
            bench::bench_checkout(iterations.max(1), lines.max(1)).await
        }
        Command::Simulators { listen } => {
            let addr = serve::resolve(&listen).await?;
            let sims =
                simulators::Simulators::start_on(addr, std::sync::Arc::new(chrono::Utc::now))
                    .await?;
            println!("simulators on http://{}", sims.addr);
            serve::shutdown_signal().await;
            Ok(())
        }
        Command::SampleSqsEvent {
            queue,
            shop,
            topic,
            payload,
        } => commands::sample_sqs_event(&queue, &shop, &topic, &payload),
        Command::Canonical {
            source,
            topic,
            shop,
            file,
        } => commands::canonical(source, &topic, &shop, &file),
        Command::LargeOrder {
            lines,
            skus,
            order_id,
            refund,
        } => {
            use retailflow::large_orders::{shopify_order, shopify_refund};
            anyhow::ensure!(
                (1..=10_000).contains(&lines) && (1..=lines).contains(&skus),
                "--lines is 1 to 10,000 and --skus 1 to --lines"
            );
            let order = shopify_order(order_id, lines, skus);
            let out = if refund {
                shopify_refund(&order, order_id + 1, lines)
            } else {
                order
            };
            println!("{out}");
            Ok(())
        }
        Command::SampleEvent {
            source,
            topic,
            shop,
            event_id,
            dev_keys,
            tamper,
            at,
            payload,
        } => commands::sample_event(
            commands::SampleEvent {
                source,
                topic: &topic,
                shop: &shop,
                event_id,
                dev_keys: &dev_keys,
                tamper,
                at: at.unwrap_or_else(chrono::Utc::now),
            },
            &payload,
        ),
        Command::Send {
            paths,
            to,
            dev_keys,
            json,
        } => all_done(send::send(&paths, to.as_deref(), &dev_keys, json, &data_dir).await?),
    }
}
