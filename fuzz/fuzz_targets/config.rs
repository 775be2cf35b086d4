//! config.json from anywhere: parsing and validation must give a value or
//! an error naming a field, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A bundle directory with an empty rootfs, for validation to look at.
fn bundle() -> &'static PathBuf {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = berth_container::spec::parse(data) {
        match berth_container::spec::validate(&spec, bundle()) {
            Ok(_) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        if let Some(process) = spec.process() {
            let _ = berth_container::spec::validate_process(process);
        }
        if let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            let _ = berth_container::process::seccomp::build(seccomp);
        }
    }
});
