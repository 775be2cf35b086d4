//! Container ids, signal names and sysctl keys: what is accepted must be
//! safe to use as a path component or a number.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if berth_container::id::validate(text).is_ok() {
        assert!(!text.is_empty() && text != "." && text != "..");
        assert!(!text.contains('/') && !text.contains('\0'));
        assert!(std::path::Path::new(text).components().count() == 1);
    }
    if let Ok(n) = berth_container::signal::parse(text) {
        assert!((1..=64).contains(&n));
    }
    if let Ok(path) = berth_container::spec::sysctl_path(text) {
        assert!(path.is_relative());
        assert!(!path.components().any(|c| matches!(c, std::path::Component::ParentDir)));
    }
});
