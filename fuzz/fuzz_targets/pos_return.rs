#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| retailflow_fuzz::pos_return::run(data));
