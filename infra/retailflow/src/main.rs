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
//! - `replay list|redrive|window`: dead letters and window replays, on the
//!   local app (the data directory's, or `--local URL`) or a deployed stack;
//! - `load-catalog --table T FILE`: a catalog into a deployed state table;
//! - `trace KEY`: where an order is, from the local app (the data
//!   directory's, or `--local URL`) or a deployed state table (`--table T`);
//! - `reconcile`: a reconciliation on the local app (the data directory's,
//!   or `--local URL`), or on a deployed stack (`--bus B` asks its function,
//!   `--table T --report latest` prints a kept report);
//! - `simulators --listen ADDR`: the ERP, loyalty and shop simulators alone;
//! - `canonical --source shopify|adobe --topic T FILE`: prints the canonical event;
//! - `sample-event ...`, `sample-sqs-event ...`: write signed API Gateway and
//!   SQS events for a raw payload.

mod bench;
mod bench_orders;
mod bench_reconcile;
mod commands;
mod env_help;
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
    /// More log lines on stderr: -v for info, -vv for debug (`RUST_LOG`
    /// overrides both). By default the commands that print a report log
    /// warnings only; `serve` and `simulators` log at info.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// `--data-dir`, on the commands that read or write the local app's state.
#[derive(clap::Args)]
struct DataDirArg {
    /// Where the local app keeps its state (an embedded database file):
    /// `run` and `serve` write it; `trace`, `replay`, `reconcile` and `send`
    /// read it (or ask the `serve` holding it) when not pointed elsewhere.
    #[arg(
        long = "data-dir",
        global = true,
        env = "RETAILFLOW_DATA_DIR",
        hide_env_values = true,
        default_value = retailflow::data_dir::DEFAULT_DATA_DIR
    )]
    dir: PathBuf,
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
    /// A Shopify webhook.
    Shopify,
    /// An Adobe Commerce webhook (its event code is the topic).
    Adobe,
    /// A point-of-sale return (`--shop` is the store id).
    Pos,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark checkout validation in process: p50/p99 latency and throughput on one core.
    ///
    /// One task validates a cart with a promotion again and again. Build
    /// with --release.
    BenchCheckout {
        /// Validations measured (after up to 1,000 more to warm up).
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
        /// Lines in the cart.
        #[arg(long, default_value_t = 5)]
        lines: usize,
    },
    /// Benchmark a flash sale in process on DynamoDB's contention rules.
    ///
    /// --shoppers arrive over --seconds for --units of each of --skus hot
    /// SKUs; prints how many were told held, sold out or unavailable and
    /// the p50/p99 latency, and checks no unit was oversold or leaked. Runs
    /// in real time; build with --release.
    BenchFlashSale {
        /// Shoppers, each checking out one cart.
        #[arg(long, default_value_t = 5_000)]
        shoppers: usize,
        /// Units of each hot SKU.
        #[arg(long, default_value_t = 100)]
        units: u32,
        /// Hot SKUs on sale.
        #[arg(long, default_value_t = 1)]
        skus: usize,
        /// Length of the sale, in seconds: shoppers arrive at random across it.
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
        /// Write units a second one item takes before throttling (a
        /// transaction costs two per item).
        #[arg(long, default_value_t = 1_000)]
        item_wcu: u32,
        /// Seed of the arrival times and carts: the same seed gives the same sale.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Benchmark reconciliation in process: time, pages and requests of one run.
    ///
    /// --orders orders and a refund of every fifth go through the app, then
    /// one run over them; checks it finds no discrepancies, then every sales
    /// order deleted in the ERP. Build with --release.
    BenchReconcile {
        /// Orders placed before the run (every fifth also refunded).
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
    },
    /// Benchmark CPU per order through the whole app in process.
    ///
    /// The chaos workload's orders, checkouts, returns and cancellations,
    /// with no faults. Build with --release.
    BenchOrders {
        /// Orders in the workload.
        #[arg(long, default_value_t = 2_000)]
        orders: usize,
        /// Seed of the workload's random choices: the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Dev keys the workload's deliveries are signed with (events/dev-keys
        /// in the repository).
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
    },
    /// Benchmark a backlog of orders drained through the ERP's concurrency budget.
    ///
    /// On a virtual clock, as Lambda runs it (its pollers, each container
    /// with its own budget over the one set of slots): drain time against
    /// the ideal, the most calls in flight, receives and slot writes.
    BenchBudget {
        /// Orders in the backlog.
        #[arg(long, default_value_t = 2_000)]
        orders: usize,
        /// ERP calls allowed in flight at once (the budget's slots).
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
        /// Most messages an invocation takes from the queue at once (the
        /// event source's batch size).
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Chaos: a seeded workload through the whole app under faults, checked against a model.
    ///
    /// Orders (Shopify and Adobe shapes, several currencies, gift cards),
    /// returns and cancellations with duplicated and reordered deliveries,
    /// throttling, errors, outages, lost answers and crashes; then replay
    /// and reconciliation, and every guarantee checked against a reference
    /// model. Exits 2 if any count is not 0. Build with --release for big
    /// runs.
    Chaos {
        /// Orders in the workload.
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        /// Seed of the workload's and the faults' random choices: the same
        /// seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Dev keys the workload's deliveries are signed with (events/dev-keys
        /// in the repository).
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Feed Lambda event files through the whole app and print each order's timeline.
    ///
    /// In one process, draining every queue. Starts from an empty data
    /// directory and leaves its state there for `trace`, `replay` and
    /// `reconcile`. Exits 2 if a saga did not complete, anything reached a
    /// DLQ or a delivery was not taken (the samples refused on purpose
    /// aside).
    #[command(after_help = env_help::RUN)]
    Run {
        #[command(flatten)]
        data: DataDirArg,
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
    /// Serve the template's routes on in-process adapters, with the data directory's state.
    ///
    /// POST /webhooks/shopify, /webhooks/adobe, /pos/returns,
    /// /checkout/validate; GET /local/state. On the real clock; a restart
    /// carries on where the last process stopped, with every accepted
    /// event. Send it the samples with `retailflow send`. Stops on Ctrl-C or
    /// SIGTERM.
    #[command(after_help = env_help::SERVE)]
    Serve {
        #[command(flatten)]
        data: DataDirArg,
        /// Where to listen, host:port (a host name such as localhost too; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Dev keys to verify with when RETAILFLOW_SHOPIFY_SECRET is unset.
        #[arg(long, default_value = "events/dev-keys")]
        dev_keys: PathBuf,
    },
    /// Load a catalog file (prices, on-hand counts, promotions) into a deployed state table.
    ///
    /// With the usual AWS credentials and region (AWS_ENDPOINT_URL for a
    /// local DynamoDB). A price that differs from the stored one gets the
    /// next version; an unchanged one is left alone.
    #[command(after_help = env_help::AWS)]
    LoadCatalog {
        /// The stack's StateTableName output.
        #[arg(long)]
        table: String,
        /// The catalog file, in the shape of events/catalog/seed.json.
        file: PathBuf,
    },
    /// Where an order is: its events and steps, its returns and its cancellation.
    ///
    /// For each step: when, the result, the external document ids. With no
    /// flags, from the local app of the data directory (or the `serve`
    /// holding it); --local names a running `retailflow serve` elsewhere;
    /// --table or --stack read a deployed stack's state table with the
    /// usual AWS credentials. Exits 2 when something of the order is not
    /// done: a step open, and on the local app also a dead letter, a refund
    /// held for review or a quarantined delivery (a deployed stack's trace
    /// reads its table only).
    #[command(after_help = env_help::LOCAL_OR_AWS)]
    Trace {
        #[command(flatten)]
        data: DataDirArg,
        /// A running `retailflow serve` to ask instead of the data directory's
        /// local app, e.g. http://127.0.0.1:8080.
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
    /// Reconcile: re-drive stuck steps, compare the ERP's and loyalty records with the sagas.
    ///
    /// Prints the discrepancies found, by kind. With no flags it reconciles
    /// the local app of the data directory (or the `serve` holding it);
    /// --local names a running `retailflow serve` elsewhere. On a deployed
    /// stack, with the usual AWS credentials: --bus or --stack asks its
    /// function for a run. --report <id|latest> prints a kept report
    /// instead of running one. Exits 2 when discrepancies are found (or the
    /// run paused before it finished).
    #[command(after_help = env_help::LOCAL_OR_AWS)]
    Reconcile {
        #[command(flatten)]
        data: DataDirArg,
        /// A running `retailflow serve` to reconcile instead of the data
        /// directory's local app, e.g. http://127.0.0.1:8080.
        #[arg(long, conflicts_with_all = ["bus", "table"])]
        local: Option<String>,
        /// The stack's EventBusName output: asks its function for a run.
        #[arg(long, conflicts_with_all = ["table", "report"])]
        bus: Option<String>,
        /// The stack's StateTableName output: with --report, prints a kept report.
        #[arg(long, requires = "report")]
        table: Option<String>,
        /// A deployed stack's name: asks its function for a run, or with
        /// --report prints a kept report (its outputs name the bus and table).
        #[arg(long, conflicts_with_all = ["local", "bus", "table"])]
        stack: Option<String>,
        /// A kept report to print instead of running one: a run id, or `latest`.
        #[arg(long)]
        report: Option<String>,
        /// Sagas started in the last N hours (default: the function's lookback, 24 locally).
        #[arg(long, conflicts_with_all = ["from", "to"], value_parser = clap::value_parser!(i64).range(1..=744))]
        hours: Option<i64>,
        /// Window start (RFC 3339), e.g. 2026-11-25T00:00:00Z.
        #[arg(long, value_parser = reconcile::parse_time)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Window end (RFC 3339); default now.
        #[arg(long, value_parser = reconcile::parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Dead letters listed and re-driven, or a window's events replayed to one rule's queue.
    ///
    /// With no flags, on the local app of the data directory (or the
    /// `serve` holding it); --local names a running `retailflow serve`
    /// elsewhere. On a deployed stack, with the usual AWS credentials:
    /// --stack (its outputs name the queues), or --dlq-url and --queue-url,
    /// or for `window` --archive-arn, --bus-arn and --rule-arn.
    #[command(after_help = env_help::LOCAL_OR_AWS)]
    Replay {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        target: replay_cli::Target,
        #[command(subcommand)]
        action: replay_cli::ReplayAction,
    },
    /// Serve the ERP, loyalty and shop simulators on a loopback address.
    ///
    /// NetSuite, Business Central, Salesforce Loyalty and the Shopify and
    /// Adobe Commerce APIs, for running the Lambdas against them. Stops on
    /// Ctrl-C or SIGTERM.
    Simulators {
        /// Where to listen, a loopback host:port (localhost too).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
    /// Write an SQS event for a step queue carrying a raw Shopify payload's canonical event.
    ///
    /// The canonical event (OrderPlaced, RefundIssued, ...) as EventBridge
    /// delivers it to the queue, for `cargo lambda invoke`.
    SampleSqsEvent {
        /// The queue's name, the last part of the eventSourceARN.
        #[arg(long)]
        queue: String,
        /// The Shopify shop domain the payload comes from.
        #[arg(long, default_value = "example.myshopify.com")]
        shop: String,
        /// The payload's Shopify webhook topic.
        #[arg(long, default_value = "orders/create")]
        topic: String,
        /// The raw Shopify payload file (the webhook's JSON body).
        payload: PathBuf,
    },
    /// Print the canonical event for a raw platform payload.
    Canonical {
        /// The platform the payload comes from.
        #[arg(long, value_enum)]
        source: Source,
        /// Webhook topic (Shopify `orders/create`, ...; Adobe event code).
        #[arg(long)]
        topic: String,
        /// Shop identity (Shopify shop domain / Adobe instance).
        #[arg(long, default_value = "example.myshopify.com")]
        shop: String,
        /// The raw payload file (the body as the platform sends it).
        file: PathBuf,
    },
    /// Write a Shopify orders/create payload of many lines, or with --refund its refund.
    ///
    /// Each line is one unit at 2.00 USD plus 8% tax, SKUs BULK-00000…; the
    /// refund (refunds/create) returns every line. Feed it to
    /// `sample-event` and `run` to see a large order through.
    LargeOrder {
        /// Lines in the order, one unit each (1 to 10,000).
        #[arg(long, default_value_t = 500)]
        lines: usize,
        /// Distinct SKUs the lines are spread over (1 to --lines).
        #[arg(long, default_value_t = 150)]
        skus: usize,
        /// The order's Shopify id (its refund gets the next number).
        #[arg(long, default_value_t = 7_000_000_001)]
        order_id: u64,
        /// Write the refund of every line of the order these flags describe.
        #[arg(long)]
        refund: bool,
    },
    /// Write an HTTP API 2.0 request event for a raw payload, signed with the dev keys.
    SampleEvent {
        /// The platform that delivers the payload.
        #[arg(long, value_enum)]
        source: Source,
        /// Webhook topic (Shopify `orders/create`, ...; Adobe event code); not
        /// used for pos.
        #[arg(long)]
        topic: String,
        /// The Shopify shop domain, or for pos the store id (its dev secret
        /// signs the return); not used for adobe.
        #[arg(long, default_value = "example.myshopify.com")]
        shop: String,
        /// Platform delivery id (X-Shopify-Event-Id); Adobe takes the payload's id.
        #[arg(long)]
        event_id: Option<String>,
        /// Dev keys to sign with (events/dev-keys in the repository).
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
        /// The raw payload file (the body as the platform sends it).
        payload: PathBuf,
    },
    /// Send event files to a running `retailflow serve`, stamped now and signed anew.
    ///
    /// To the serve on the data directory, or --to, as the platforms would
    /// deliver them now: each stamped anew at the current time and signed
    /// with the dev keys; prints each answer.
    /// Exits 2 if one was not taken (the samples refused on purpose aside,
    /// as in `run`).
    #[command(after_help = env_help::SEND)]
    Send {
        #[command(flatten)]
        data: DataDirArg,
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
    let aws = retailflow::stack::aws_config().await?;
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
    match cli.command {
        Command::Run {
            data,
            paths,
            dev_keys,
            json,
        } => {
            // Incomplete sagas, dead letters or deliveries not taken.
            all_done(commands::run(&paths, &dev_keys, json, &data.dir).await?)
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
        Command::Serve {
            data,
            listen,
            dev_keys,
        } => serve::serve(&listen, &data.dir, &dev_keys).await,
        Command::LoadCatalog { table, file } => commands::load_catalog(&table, &file).await,
        Command::Trace {
            data,
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
                    let target = local_target::local_target(&data.dir).await?;
                    return all_done(local_target::trace(&target.url, &key, json).await?);
                }
            };
            all_done(commands::trace(&table, &key, json).await?)
        }
        Command::Reconcile {
            data,
            local: local_url,
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
            let local = |url: String| async {
                let url = url;
                match &report {
                    // A kept report: nothing runs.
                    Some(id) => reconcile::local_report(&url, id, json).await,
                    None => reconcile::on_local(&url, &detail, json).await,
                }
            };
            let clean = match (local_url, bus, table) {
                (Some(url), _, _) => local(url).await?,
                (None, None, None) if stack.is_none() => {
                    let target = local_target::local_target(&data.dir).await?;
                    local(target.url.clone()).await?
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
                    "say where: --local <URL of a running `retailflow serve`>, --bus <EventBusName> or --table <StateTableName> --report latest"
                ),
            };
            all_done(clean)
        }
        Command::Replay {
            data,
            mut target,
            action,
        } => {
            if let Some(name) = target.stack.clone() {
                target.resolve(&stack_of(&name).await?, &action)?;
            }
            // Nowhere named: the local app of the data directory.
            let _local = match target.names_nothing() {
                true => {
                    let local = local_target::local_target(&data.dir).await?;
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
            data,
            paths,
            to,
            dev_keys,
            json,
        } => all_done(send::send(&paths, to.as_deref(), &dev_keys, json, &data.dir).await?),
    }
}
