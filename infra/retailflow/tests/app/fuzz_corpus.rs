//! The fuzz targets' seed corpus (and every input a fuzzer once failed on,
//! kept in it) replayed through the same target functions on stable Rust:
//! no panic, every refusal a 4xx with a reason. `cargo +nightly fuzz run`
//! in `fuzz/` explores beyond them.

#[path = "../../../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no seed corpus for {target}");
    inputs
}

#[test]
fn the_shopify_webhook_corpus_is_answered_with_reasons() {
    for (name, input) in corpus("shopify_webhook") {
        eprintln!("{name}");
        fuzz::shopify_webhook::run(&input);
    }
}

#[test]
fn the_adobe_webhook_corpus_is_answered_with_reasons() {
    for (name, input) in corpus("adobe_webhook") {
        eprintln!("{name}");
        fuzz::adobe_webhook::run(&input);
    }
}

#[test]
fn the_pos_return_corpus_is_answered_with_reasons() {
    for (name, input) in corpus("pos_return") {
        eprintln!("{name}");
        fuzz::pos_return::run(&input);
    }
}

#[test]
fn the_checkout_request_corpus_is_answered_with_reasons() {
    for (name, input) in corpus("checkout_request") {
        eprintln!("{name}");
        fuzz::checkout_request::run(&input);
    }
}

#[test]
fn the_checkout_auth_corpus_is_refused_with_reasons() {
    for (name, input) in corpus("checkout_auth") {
        eprintln!("{name}");
        fuzz::checkout_auth::run(&input);
    }
}
