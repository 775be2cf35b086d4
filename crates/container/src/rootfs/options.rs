//! Mount options of a spec mount, sorted into what each system call takes.

/// What a mount's `options` ask for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags for mount(2) (never propagation flags).
    pub flags: u64,
    /// MS_* flags the options explicitly turn off ("rw", "suid", ...).
    pub cleared: u64,
    /// Propagation changes (MS_SHARED etc., with MS_REC for the r- forms),
    /// applied in order after the mount.
    pub propagation: Vec<u64>,
    /// MOUNT_ATTR_* to set and clear on the whole mount tree (the `r`
    /// options of runtime-spec 1.1: rro, rnosuid, ...).
    pub recursive_set: u64,
    pub recursive_clear: u64,
    /// Filesystem options (`mode=755`, `size=64k`, `newinstance`, ...).
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
    /// idmap / ridmap: the mount is idmapped (with the mount's
    /// uidMappings/gidMappings), the latter recursively.
    pub idmap: bool,
    /// tmpcopyup (runc's): a tmpfs starts with a copy of what the
    /// directory held.
    pub copy_up: bool,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

const MS_NOSYMFOLLOW: u64 = 256;

const REC: u64 = libc::MS_REC;

/// Propagation modes: name and MS_* flags.
const PROPAGATION: &[(&str, u64)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | REC),
];

/// Per-mount flags: name, whether it sets (or clears) the flag, and the flag.
const FLAGS: &[(&str, bool, u64)] = &[
    ("defaults", true, 0),
    ("ro", true, libc::MS_RDONLY),
    ("rw", false, libc::MS_RDONLY),
    ("nosuid", true, libc::MS_NOSUID),
    ("suid", false, libc::MS_NOSUID),
    ("nodev", true, libc::MS_NODEV),
    ("dev", false, libc::MS_NODEV),
    ("noexec", true, libc::MS_NOEXEC),
    ("exec", false, libc::MS_NOEXEC),
    ("sync", true, libc::MS_SYNCHRONOUS),
    ("async", false, libc::MS_SYNCHRONOUS),
    ("dirsync", true, libc::MS_DIRSYNC),
    ("remount", true, libc::MS_REMOUNT),
    ("mand", true, libc::MS_MANDLOCK),
    ("nomand", false, libc::MS_MANDLOCK),
    ("noatime", true, libc::MS_NOATIME),
    ("atime", false, libc::MS_NOATIME),
    ("nodiratime", true, libc::MS_NODIRATIME),
    ("diratime", false, libc::MS_NODIRATIME),
    ("relatime", true, libc::MS_RELATIME),
    ("norelatime", false, libc::MS_RELATIME),
    ("strictatime", true, libc::MS_STRICTATIME),
    ("nostrictatime", false, libc::MS_STRICTATIME),
    ("lazytime", true, libc::MS_LAZYTIME),
    ("nolazytime", false, libc::MS_LAZYTIME),
    ("iversion", true, libc::MS_I_VERSION),
    ("noiversion", false, libc::MS_I_VERSION),
    ("silent", true, libc::MS_SILENT),
    ("loud", false, libc::MS_SILENT),
    ("nosymfollow", true, MS_NOSYMFOLLOW),
    ("symfollow", false, MS_NOSYMFOLLOW),
];

/// The recursive options of runtime-spec 1.1: name, MOUNT_ATTR_* to set and
/// to clear on the whole tree.
const RECURSIVE: &[(&str, u64, u64)] = &[
    ("rro", MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, MOUNT_ATTR_RDONLY),
    ("rnosuid", MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, MOUNT_ATTR_NOSUID),
    ("rnodev", MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, MOUNT_ATTR_NODEV),
    ("rnoexec", MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK),
    ("rnorelatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK),
    ("rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK),
    ("ratime", MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK),
    (
        "rstrictatime",
        MOUNT_ATTR_STRICTATIME,
        MOUNT_ATTR_ATIME_MASK,
    ),
    ("rnostrictatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK),
    ("rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW),
];

/// The MS_* flags of a propagation mode name.
pub fn propagation_flag(name: &str) -> Option<u64> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// Every option name berth understands (for `features`).
pub fn known_options() -> Vec<&'static str> {
    let mut names = vec!["bind", "rbind", "idmap", "ridmap", "tmpcopyup"];
    names.extend(PROPAGATION.iter().map(|(n, _)| *n));
    names.extend(FLAGS.iter().map(|(n, _, _)| *n));
    names.extend(RECURSIVE.iter().map(|(n, _, _)| *n));
    names
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for option in options {
        let option = option.as_str();
        if option == "bind" {
            o.bind = true;
        } else if option == "rbind" {
            o.bind = true;
            o.recursive = true;
        } else if option == "idmap" || option == "ridmap" {
            o.idmap = true;
        } else if option == "tmpcopyup" {
            o.copy_up = true;
        } else if let Some(p) = propagation_flag(option) {
            o.propagation.push(p);
        } else if let Some(&(_, set, f)) = FLAGS.iter().find(|(n, _, _)| *n == option) {
            if set {
                o.flags |= f;
                o.cleared &= !f;
            } else {
                o.flags &= !f;
                o.cleared |= f;
            }
        } else if let Some(&(_, set, clear)) = RECURSIVE.iter().find(|(n, _, _)| *n == option) {
            o.recursive_set = (o.recursive_set & !clear) | set;
            o.recursive_clear |= clear;
        } else {
            o.data.push(option.to_string());
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation_are_sorted() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, ["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, [libc::MS_SLAVE | libc::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = opts(&["ro", "rw"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_eq!(o.cleared, libc::MS_RDONLY);
    }

    #[test]
    fn bind_forms_and_recursive_attributes() {
        let o = opts(&["rbind", "rro", "rnoatime", "nosymfollow"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.recursive_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME);
        assert_eq!(o.recursive_clear, MOUNT_ATTR_ATIME_MASK);
        assert_eq!(o.flags, MS_NOSYMFOLLOW);
    }

    #[test]
    fn devpts_options_are_data() {
        let o = opts(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(
            o.data,
            ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
        );
    }
}
