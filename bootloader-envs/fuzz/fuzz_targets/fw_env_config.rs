//! Any bytes as an fw_env.config, opened on a simulated chip: no panic, no allocation that a
//! line asks for beyond the config limits (`liminix_bootenv::fuzzing::fw_env_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = liminix_bootenv::fuzzing::fw_env_config(data);
});
