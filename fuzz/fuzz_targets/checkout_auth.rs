#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| retailflow_fuzz::checkout_auth::run(data));
