//! What `--help` and the errors tell a person: every option described,
//! lines that fit, each command's environment, and errors that say what to
//! do without the app's internals.

use super::*;

fn help_of(args: &[&str]) -> String {
    let out = cli().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The commands `retailflow help` lists, and replay's actions.
fn every_command() -> Vec<Vec<String>> {
    let out = cli().arg("help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut commands: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.starts_with("Options:"))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(|c| vec![c.to_string()])
        .collect();
    assert!(commands.len() >= 15, "{commands:?} in {text}");
    for action in ["list", "redrive", "window"] {
        commands.push(vec!["replay".into(), action.into()]);
    }
    commands
}

#[test]
fn help_wraps_and_describes_every_option_and_its_environment() {
    for command in every_command() {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let help = help_of(&args);
        let lines: Vec<&str> = help.lines().collect();
        for line in &lines {
            assert!(line.chars().count() <= 100, "{args:?}: too wide: {line}");
        }
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            // Options stand at 2 (with a short form) or 6 columns; their
            // descriptions, and prose naming an option, elsewhere.
            let is_option = (indent == 2 && t.starts_with('-') && t.get(2..4) == Some(", "))
                || (indent == 6 && t.starts_with("--"));
            if !is_option {
                continue;
            }
            let described_here = t.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let described_below = lines.get(i + 1).is_some_and(|next| {
                let n = next.trim_start();
                !n.is_empty() && next.len() - n.len() > indent && !n.starts_with('-')
            });
            assert!(
                described_here || described_below,
                "{args:?}: no description for {t}"
            );
        }
        let on_data_dir = ["run", "serve", "trace", "reconcile", "replay", "send"];
        assert_eq!(
            help.contains("--data-dir"),
            on_data_dir.contains(&args[0]),
            "{args:?}: --data-dir where it does nothing, or missing"
        );
    }
    let serve = help_of(&["serve"]);
    for var in [
        "RETAILFLOW_SHOPIFY_SECRET",
        "RETAILFLOW_SHOPIFY_PREVIOUS_SECRET",
        "RETAILFLOW_ADOBE_PUBLIC_KEYS",
        "RETAILFLOW_ADOBE_CLIENT_ID",
        "RETAILFLOW_ADOBE_SHOP",
        "RETAILFLOW_POS_STORE_SECRETS",
        "RETAILFLOW_SHOPIFY_CLIENT_ID",
        "RETAILFLOW_SHOPIFY_SHOPS",
        "RETAILFLOW_CHECKOUT_STOREFRONT_SECRETS",
        "RETAILFLOW_CHECKOUT_MAX_REQUEST_AGE_SECS",
        "RETAILFLOW_SHOPIFY_MAX_DELIVERY_AGE_SECS",
        "RETAILFLOW_ADOBE_MAX_DELIVERY_AGE_SECS",
        "RETAILFLOW_POS_MAX_REQUEST_AGE_SECS",
        "RETAILFLOW_POS_REQUIRE_TIMESTAMP",
        "RETAILFLOW_ERP_BUDGET",
        "RETAILFLOW_LOYALTY_BUDGET",
        "RETAILFLOW_HOT_SKUS",
        "RETAILFLOW_DATA_DIR",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        assert!(serve.contains(var), "serve --help does not name {var}");
    }
    for aws in ["trace", "reconcile", "replay", "load-catalog"] {
        assert!(help_of(&[aws]).contains("AWS_REGION"), "{aws}");
    }
    assert!(!help_of(&["reconcile"]).contains("(--local)."));
}

/// stderr of a command that must fail, checked for internals.
fn error_of(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.len() <= 400, "too long: {err}");
    for internal in [
        "127.0.0.1",
        "/local/",
        "Stack backtrace",
        "os error",
        "dispatch failure",
    ] {
        assert!(!err.contains(internal), "{internal} in: {err}");
    }
    err
}

#[test]
fn errors_say_what_to_do_without_internals() {
    let dir = fresh_dir();
    let run = cli_in(&dir)
        .current_dir(repo())
        .args(["run", "events/"])
        .output()
        .unwrap();
    assert!(run.status.success());

    let err = error_of(cli_in(&dir).args(["reconcile", "--from", "yesterday"]));
    assert!(err.contains("RFC 3339"), "{err}");
    let err = error_of(
        cli_in(&dir)
            .env("RUST_BACKTRACE", "1")
            .args(["trace", "5872301948123"]),
    );
    assert!(
        err.contains("did you mean shopify:acme-outdoor.myshopify.com:order:5872301948123"),
        "{err}"
    );
    let err = error_of(cli().env("RUST_BACKTRACE", "1").args(["trace", "nope"]));
    assert!(err.contains("retailflow run"), "{err}");
    let file = dir.join("state.redb");
    let err = error_of(cli_in(&file).current_dir(repo()).args(["run", "events/"]));
    assert!(err.contains("is a file, not a directory"), "{err}");
    let err = error_of(cli().current_dir(repo()).args([
        "canonical",
        "--source",
        "shopify",
        "--topic",
        "orders/create",
        "events/payloads/adobe-order-configurable.json",
    ]));
    assert!(err.contains("--source adobe"), "{err}");
    // A deployed table with no credentials anywhere: said in one line.
    let mut aws = cli();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            aws.env_remove(k);
        }
    }
    let empty = dir.join("empty-aws-config");
    std::fs::write(&empty, "").unwrap();
    let err = error_of(
        aws.env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", &empty)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .args(["trace", "--table", "t", "k"]),
    );
    assert!(err.contains("no AWS credentials"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
