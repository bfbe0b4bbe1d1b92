#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| retailflow_fuzz::shopify_webhook::run(data));
