//! Resource usage of a cgroup, in the JSON shape of runc's `events`
//! (libcontainer's types/events.go), which engines parse.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::fsutil::read;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A number file; "max" and unreadable files read as 0 (runc's "no limit"
/// shows as the v1 maximum instead: see `limit`).
pub(crate) fn number(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A limit file; "max" reads as u64::MAX, as runc reports it.
pub(crate) fn limit(dir: &Path, file: &str) -> u64 {
    match read(dir, file) {
        Ok(s) if s.trim() == "max" => u64::MAX,
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// A flat keyed file (`key value` lines): memory.stat, cpu.stat, ...
pub(crate) fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .map(|text| {
            text.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_string(), v.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// v1 blkio files: `8:0 Read 4096` lines.
pub(crate) fn blkio_v1(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    read(dir, file)
        .map(|text| {
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (major, minor) = f.next()?.split_once(':')?;
                    Some(BlkioEntry {
                        major: major.parse().ok()?,
                        minor: minor.parse().ok()?,
                        op: f.next()?.to_string(),
                        value: f.next()?.parse().ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` lines, turned
/// into v1-style bytes and ios entries.
pub(crate) fn io_stat_v2(dir: &Path) -> Blkio {
    let mut blkio = Blkio::default();
    let Ok(text) = read(dir, "io.stat") else {
        return blkio;
    };
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((key, value)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else { continue };
            let (list, op) = match key {
                "rbytes" => (&mut blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    blkio
}

/// hugetlb usage from a cgroup v2 directory.
pub(crate) fn hugetlb_v2(dir: &Path) -> BTreeMap<String, Hugetlb> {
    hugepage_sizes()
        .into_iter()
        .filter(|size| dir.join(format!("hugetlb.{size}.current")).exists())
        .map(|size| {
            let events = keyed(dir, &format!("hugetlb.{size}.events"));
            let h = Hugetlb {
                usage: number(dir, &format!("hugetlb.{size}.current")),
                max: limit(dir, &format!("hugetlb.{size}.max")),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            (size, h)
        })
        .collect()
}

/// Hugepage sizes the kernel supports, as cgroup files name them ("2MB").
pub(crate) fn hugepage_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let kb: u64 = e
                .file_name()
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(if kb >= 1 << 20 {
                format!("{}GB", kb >> 20)
            } else if kb >= 1 << 10 {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_blkio_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.stat"), "cache 10\nrss 20\nbad\n").unwrap();
        let stat = keyed(dir.path(), "memory.stat");
        assert_eq!(stat.get("rss"), Some(&20));
        assert_eq!(stat.len(), 2);
        std::fs::write(
            dir.path().join("blkio.x"),
            "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        )
        .unwrap();
        let entries = blkio_v1(dir.path(), "blkio.x");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
        std::fs::write(
            dir.path().join("io.stat"),
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0\n",
        )
        .unwrap();
        let io = io_stat_v2(dir.path());
        assert_eq!(io.io_service_bytes_recursive.len(), 2);
        assert_eq!(io.io_serviced_recursive[1].value, 4);
        std::fs::write(dir.path().join("pids.max"), "max\n").unwrap();
        assert_eq!(limit(dir.path(), "pids.max"), u64::MAX);
    }
}
