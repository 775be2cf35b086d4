//! A parser for `/proc/<pid>/mountinfo` (proc(5)).

use std::path::PathBuf;

/// One line of mountinfo, with the fields berth needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    /// The path inside the filesystem that is mounted (field 4).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (field 6), e.g. `rw,nosuid`.
    pub mount_options: String,
    /// Optional fields such as `shared:1` or `master:2`.
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options, e.g. `rw,memory` for a cgroup v1 mount.
    pub super_options: String,
}

/// Parses a whole mountinfo file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// Parses one mountinfo line; `None` when it is malformed.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let (before, after) = line.split_once(" - ")?;
    let mut head = before.split(' ');
    let id = head.next()?.parse().ok()?;
    let parent = head.next()?.parse().ok()?;
    let _major_minor = head.next()?;
    let root = PathBuf::from(unescape(head.next()?));
    let mount_point = PathBuf::from(unescape(head.next()?));
    let mount_options = head.next()?.to_string();
    let optional = head.map(str::to_string).collect();
    let mut tail = after.split(' ');
    let fs_type = tail.next()?.to_string();
    let source = unescape(tail.next()?);
    let super_options = tail.next().unwrap_or("").to_string();
    Some(MountInfo {
        id,
        parent,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_cgroup_v1_line() {
        let line = "35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory";
        let m = parse_line(line).unwrap();
        assert_eq!(m.id, 35);
        assert_eq!(m.parent, 25);
        assert_eq!(m.root, PathBuf::from("/"));
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(m.optional, vec!["shared:14".to_string()]);
        assert_eq!(m.fs_type, "cgroup");
        assert_eq!(m.super_options, "rw,memory");
    }

    #[test]
    fn parses_a_line_without_optional_fields_and_with_escapes() {
        let line = r"100 1 0:50 /a\040b /mnt/with\040space rw - tmpfs tmpfs rw";
        let m = parse_line(line).unwrap();
        assert!(m.optional.is_empty());
        assert_eq!(m.root, PathBuf::from("/a b"));
        assert_eq!(m.mount_point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn skips_malformed_lines() {
        assert!(parse("garbage\n1 2 3\n").is_empty());
    }
}
