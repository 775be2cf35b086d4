//! Mount options, cgroupsPath and mountinfo lines: parsers fed by specs
//! and by the kernel.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let options: Vec<String> = text.split(',').map(str::to_string).collect();
    let parsed = berth_container::rootfs::parse_mount_options(&options);
    // Propagation never leaks into the flags mount(2) gets.
    assert_eq!(parsed.flags & (libc_ms_propagation()), 0);
    if let Ok(path) = berth_cgroups::CgroupsPath::from_spec(Some(Path::new(text)), "id") {
        let rel = match path {
            berth_cgroups::CgroupsPath::Absolute(p) | berth_cgroups::CgroupsPath::Relative(p) => p,
            berth_cgroups::CgroupsPath::Default(_) => return,
        };
        assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
    }
    let _ = berth_cgroups::mountinfo::parse(text);
});

/// MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE.
fn libc_ms_propagation() -> u64 {
    (1 << 20) | (1 << 18) | (1 << 19) | (1 << 17)
}
