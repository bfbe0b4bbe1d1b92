#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| retailflow_fuzz::adobe_webhook::run(data));
