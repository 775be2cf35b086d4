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

impl MountOptions {
    /// Whether mount `m`, with these options, is a bind mount.
    pub fn is_bind(&self, m: &oci_spec::runtime::Mount) -> bool {
        m.typ().as_deref() == Some("bind") || self.bind
    }
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

/// The recursive options of runtime-spec 1.1: name, whether it clears
/// (else sets) its MOUNT_ATTR_* flag on the whole tree. Read as runc 1.4
/// reads them: `ratime` and `rnostrictatime` clear the atime mode, which
/// leaves relatime; `rnorelatime` (MOUNT_ATTR_RELATIME is 0) changes
/// nothing.
const RECURSIVE: &[(&str, bool, u64)] = &[
    ("rro", false, MOUNT_ATTR_RDONLY),
    ("rrw", true, MOUNT_ATTR_RDONLY),
    ("rnosuid", false, MOUNT_ATTR_NOSUID),
    ("rsuid", true, MOUNT_ATTR_NOSUID),
    ("rnodev", false, MOUNT_ATTR_NODEV),
    ("rdev", true, MOUNT_ATTR_NODEV),
    ("rnoexec", false, MOUNT_ATTR_NOEXEC),
    ("rexec", true, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, MOUNT_ATTR_RELATIME),
    ("rnoatime", false, MOUNT_ATTR_NOATIME),
    ("ratime", true, MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Per-mount MS_* flags and the MOUNT_ATTR_* attribute of each.
const PER_MOUNT: &[(u64, u64)] = &[
    (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
    (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
    (libc::MS_NODEV, MOUNT_ATTR_NODEV),
    (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
];

/// The atime modes, strongest first (strictatime wins over noatime in
/// mount(2), and both over relatime).
const ATIME_MODES: &[(u64, u64)] = &[
    (libc::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
    (libc::MS_NOATIME, MOUNT_ATTR_NOATIME),
    (libc::MS_RELATIME, MOUNT_ATTR_RELATIME),
];

/// The per-mount part of `flags` (set) and `cleared` as mount_setattr(2)
/// attributes: (to set, to clear). An atime mode is a value, so setting or
/// clearing one clears the whole atime field (clearing alone leaves the
/// default, relatime). Superblock flags (sync, mand, ...) have none.
pub fn mount_attributes(flags: u64, cleared: u64) -> (u64, u64) {
    let (mut set, mut clear) = (0, 0);
    for &(ms, attr) in PER_MOUNT {
        if flags & ms != 0 {
            set |= attr;
        }
        if cleared & ms != 0 {
            clear |= attr;
        }
    }
    if let Some(&(_, mode)) = ATIME_MODES.iter().find(|(ms, _)| flags & ms != 0) {
        set |= mode;
        clear |= MOUNT_ATTR_ATIME_MASK;
    } else if ATIME_MODES.iter().any(|(ms, _)| cleared & ms != 0) {
        clear |= MOUNT_ATTR_ATIME_MASK;
    }
    (set, clear)
}

/// The flags a user namespace locks on a mount it did not make: a
/// container in one can keep them but not clear them.
const LOCKABLE: u64 = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// The atime flags whose absence from a bind remount keeps the source's
/// atime settings (mount(2)).
const ATIME_FLAGS: u64 =
    libc::MS_NOATIME | libc::MS_NODIRATIME | libc::MS_RELATIME | libc::MS_STRICTATIME;

/// The attributes (to set, to clear) that give a bind of a mount whose
/// flags are `source` the per-mount flags of `opts`, as runc's bind
/// remount (MS_BIND|MS_REMOUNT) gives them: a bind naming no flag keeps the
/// source's; one naming any flag gets exactly those, the others cleared,
/// except the atime settings, which change only when a flag names one.
/// `locked_source`: in a user namespace, the flags of the source mount,
/// which the kernel locks: the lockable ones (ro, nosuid, nodev, noexec)
/// not asked for are kept, and clearing one explicitly or changing the
/// atime settings is refused: the error is the option it refuses.
pub fn bind_attributes(
    opts: &MountOptions,
    locked_source: Option<u64>,
) -> Result<(u64, u64), &'static str> {
    let (flags, cleared) = (opts.flags, opts.cleared);
    if flags == 0 && cleared == 0 {
        return Ok((0, 0));
    }
    let held = locked_source.map_or(0, |source| source & LOCKABLE);
    if cleared & held != 0 {
        return Err(option_name(lowest_bit(cleared & held), false));
    }
    // The atime settings are locked as a whole: naming other ones fails.
    let asked_atime = flags & ATIME_FLAGS;
    if let Some(source) = locked_source.filter(|_| asked_atime != 0) {
        if atime_of(flags, libc::MS_RELATIME) != atime_of(source, libc::MS_STRICTATIME) {
            return Err(option_name(lowest_bit(asked_atime), true));
        }
    }
    let (set, _) = mount_attributes(flags | held, 0);
    let every = MOUNT_ATTR_RDONLY
        | MOUNT_ATTR_NOSUID
        | MOUNT_ATTR_NODEV
        | MOUNT_ATTR_NOEXEC
        | MOUNT_ATTR_NOSYMFOLLOW;
    let mut clear = every & !set;
    // No atime mode set means relatime, the kernel's default.
    if flags & ATIME_FLAGS != 0 {
        clear |= MOUNT_ATTR_ATIME_MASK | (MOUNT_ATTR_NODIRATIME & !set);
    }
    Ok((set, clear))
}

/// The atime settings that MS_* flags give a mount: its mode (strictatime
/// over noatime over relatime, else `default_mode`: relatime for what
/// mount(2) is asked, strictatime for what statvfs shows) and whether it
/// is nodiratime.
fn atime_of(flags: u64, default_mode: u64) -> (u64, bool) {
    let mode = [libc::MS_STRICTATIME, libc::MS_NOATIME, libc::MS_RELATIME]
        .into_iter()
        .find(|m| flags & m != 0)
        .unwrap_or(default_mode);
    (mode, flags & libc::MS_NODIRATIME != 0)
}

fn lowest_bit(flags: u64) -> u64 {
    flags & flags.wrapping_neg()
}

/// The option that sets (or clears) an MS_* flag: "ro" (or "rw") for
/// MS_RDONLY, ...
fn option_name(flag: u64, sets: bool) -> &'static str {
    FLAGS
        .iter()
        .find(|(_, s, f)| *s == sets && *f == flag)
        .map_or("?", |(name, _, _)| name)
}

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
        } else if let Some(&(_, clear, flag)) = RECURSIVE.iter().find(|(n, _, _)| *n == option) {
            if clear {
                o.recursive_clear |= flag;
                o.recursive_set &= !flag;
            } else {
                o.recursive_set |= flag;
                o.recursive_clear &= !flag;
            }
            // An atime mode is a value, not a bit: setting one needs the
            // whole atime field cleared (mount_setattr(2)), and clearing
            // one leaves the default, relatime.
            let atime_mode = flag & MOUNT_ATTR_ATIME_MASK == flag;
            if atime_mode && (flag != 0 || !clear) {
                o.recursive_clear |= MOUNT_ATTR_ATIME_MASK;
            }
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
    fn recursive_atime_options_are_read_as_runc_1_4_reads_them() {
        let o = opts(&["rstrictatime"]);
        assert_eq!(
            (o.recursive_set, o.recursive_clear),
            (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK)
        );
        let o = opts(&["rrelatime"]);
        assert_eq!(
            (o.recursive_set, o.recursive_clear),
            (MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK)
        );
        let o = opts(&["rnorelatime"]);
        assert_eq!((o.recursive_set, o.recursive_clear), (0, 0));
        let o = opts(&["rnoatime", "ratime"]);
        assert_eq!(
            (o.recursive_set, o.recursive_clear),
            (0, MOUNT_ATTR_ATIME_MASK)
        );
        for option in ["ratime", "rnostrictatime"] {
            let o = opts(&[option]);
            assert_eq!(
                (o.recursive_set, o.recursive_clear),
                (0, MOUNT_ATTR_ATIME_MASK),
                "{option}"
            );
        }
    }

    #[test]
    fn per_mount_flags_become_attributes() {
        let o = opts(&[
            "ro",
            "nosuid",
            "dev",
            "noexec",
            "sync",
            "noatime",
            "strictatime",
        ]);
        let (set, clear) = mount_attributes(o.flags, o.cleared);
        assert_eq!(
            set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_STRICTATIME
        );
        assert_eq!(clear, MOUNT_ATTR_NODEV | MOUNT_ATTR_ATIME_MASK);
        let o = opts(&["rw", "atime", "nosymfollow"]);
        assert_eq!(
            mount_attributes(o.flags, o.cleared),
            (
                MOUNT_ATTR_NOSYMFOLLOW,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_ATIME_MASK
            )
        );
        assert_eq!(mount_attributes(0, 0), (0, 0));
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

    #[test]
    fn a_bind_naming_flags_gets_exactly_those_as_runcs_remount() {
        let ro_noexec = libc::MS_RDONLY | libc::MS_NOEXEC | libc::MS_NODIRATIME;
        // Naming no flag keeps the source's.
        assert_eq!(bind_attributes(&opts(&["bind"]), None), Ok((0, 0)));
        // Naming one clears the others, the atime settings aside.
        let (set, clear) = bind_attributes(&opts(&["bind", "dev"]), None).unwrap();
        assert_eq!(set, 0);
        assert_eq!(clear & MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY);
        assert_eq!(clear & MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOEXEC);
        assert_eq!(clear & MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW);
        assert_eq!(clear & (MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NODIRATIME), 0);
        // In a user namespace the lockable flags not asked for stay...
        let (set, clear) = bind_attributes(&opts(&["bind", "dev"]), Some(ro_noexec)).unwrap();
        assert_eq!(set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC);
        assert_eq!(clear & (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC), 0);
        // ... and one explicitly cleared is refused.
        assert_eq!(
            bind_attributes(&opts(&["bind", "rw"]), Some(ro_noexec)),
            Err("rw")
        );
        // So are the atime settings as a whole.
        assert_eq!(
            bind_attributes(&opts(&["bind", "strictatime"]), Some(ro_noexec)),
            Err("strictatime")
        );
        assert!(bind_attributes(
            &opts(&["bind", "relatime", "nodiratime"]),
            Some(ro_noexec | libc::MS_RELATIME)
        )
        .is_ok());
        // An atime flag named sets the whole atime field.
        let (set, clear) = bind_attributes(&opts(&["bind", "noatime"]), None).unwrap();
        assert_eq!(set, MOUNT_ATTR_NOATIME);
        assert_eq!(
            clear & (MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NODIRATIME),
            MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NODIRATIME
        );
    }
}
