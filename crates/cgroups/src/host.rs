//! Which cgroup layout this host has: pure v2, or v1 controllers (hybrid when a
//! cgroup2 hierarchy is mounted beside them).

use std::fs;
use std::path::{Path, PathBuf};

use crate::mountinfo;
use crate::{Error, Result};

/// Where the cgroup filesystems are mounted on any host berth supports.
pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// The v1 controllers the kernel knows; other superblock options (`rw`,
/// `clone_children`, ...) are not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Its controllers, e.g. `["cpu", "cpuacct"]`, or `["name=systemd"]`.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The cgroup that is the root of this mount (`/` unless the mount is a
    /// bind of a sub-cgroup, as inside a container).
    pub root: PathBuf,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup layout of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Pure cgroup v2: one unified hierarchy.
    Unified { mount_point: PathBuf },
    /// cgroup v1 controllers on their own hierarchies; `unified` is the cgroup2
    /// hierarchy of a hybrid host (systemd's /sys/fs/cgroup/unified).
    Legacy {
        hierarchies: Vec<Hierarchy>,
        unified: Option<PathBuf>,
    },
}

impl Host {
    /// Detects the layout: a statfs of /sys/fs/cgroup settles pure v2 at once;
    /// otherwise the v1 hierarchies are read from mountinfo.
    pub fn detect() -> Result<Host> {
        let stat = rustix::fs::statfs(CGROUP_MOUNT).map_err(|e| Error::Detect {
            message: format!("statfs {CGROUP_MOUNT}: {e}"),
        })?;
        if stat.f_type as i64 == libc::CGROUP2_SUPER_MAGIC {
            return Ok(Host::Unified {
                mount_point: PathBuf::from(CGROUP_MOUNT),
            });
        }
        let text = fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Detect {
            message: format!("read /proc/self/mountinfo: {e}"),
        })?;
        Self::from_mountinfo(&text)
    }

    /// Builds the layout from mountinfo text (the v1 and hybrid case).
    pub fn from_mountinfo(text: &str) -> Result<Host> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        let mut unified = None;
        for m in mountinfo::parse(text) {
            match m.fs_type.as_str() {
                "cgroup2" if unified.is_none() => unified = Some(m.mount_point),
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty()
                        || hierarchies.iter().any(|h| h.controllers == controllers)
                    {
                        continue;
                    }
                    hierarchies.push(Hierarchy {
                        controllers,
                        mount_point: m.mount_point,
                        root: m.root,
                    });
                }
                _ => {}
            }
        }
        match (hierarchies.is_empty(), unified) {
            (true, Some(mount_point)) => Ok(Host::Unified { mount_point }),
            (true, None) => Err(Error::Detect {
                message: "no cgroup filesystem is mounted".into(),
            }),
            (false, unified) => Ok(Host::Legacy {
                hierarchies,
                unified,
            }),
        }
    }

    /// A short name for messages and `features`: "v2", "v1" or "hybrid".
    pub fn describe(&self) -> &'static str {
        match self {
            Host::Unified { .. } => "v2",
            Host::Legacy { unified: None, .. } => "v1",
            Host::Legacy {
                unified: Some(_), ..
            } => "hybrid",
        }
    }
}

/// The cgroup of the calling process, per hierarchy, from /proc/self/cgroup:
/// for v2 the `0::` line, for v1 the line whose controller list matches.
#[derive(Debug, Clone, Default)]
pub struct OwnCgroups {
    lines: Vec<(Vec<String>, PathBuf)>,
}

impl OwnCgroups {
    pub fn read() -> Result<OwnCgroups> {
        let text = fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::Detect {
            message: format!("read /proc/self/cgroup: {e}"),
        })?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> OwnCgroups {
        let lines = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ':');
                let _id = parts.next()?;
                let controllers = parts.next()?;
                let path = parts.next()?;
                let controllers = if controllers.is_empty() {
                    Vec::new()
                } else {
                    controllers.split(',').map(str::to_string).collect()
                };
                Some((controllers, PathBuf::from(path)))
            })
            .collect();
        OwnCgroups { lines }
    }

    /// The unified (v2) cgroup of the process.
    pub fn unified(&self) -> Option<&Path> {
        self.lines
            .iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| p.as_path())
    }

    /// The cgroup of the process in the v1 hierarchy with these controllers.
    pub fn v1(&self, controllers: &[String]) -> Option<&Path> {
        self.lines
            .iter()
            .find(|(c, _)| c == controllers)
            .map(|(_, p)| p.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
32 25 0:29 / /mnt/memory-again rw,nosuid shared:16 - cgroup cgroup rw,memory
";

    #[test]
    fn detects_a_hybrid_host() {
        let host = Host::from_mountinfo(HYBRID).unwrap();
        assert_eq!(host.describe(), "hybrid");
        let Host::Legacy {
            hierarchies,
            unified,
        } = host
        else {
            panic!("not legacy")
        };
        assert_eq!(unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let names: Vec<_> = hierarchies
            .iter()
            .map(|h| h.controllers.join(","))
            .collect();
        assert_eq!(names, ["name=systemd", "cpu,cpuacct", "memory"]);
    }

    #[test]
    fn detects_a_pure_v2_host_from_mountinfo() {
        let text = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Host::from_mountinfo(text).unwrap(),
            Host::Unified {
                mount_point: "/sys/fs/cgroup".into()
            }
        );
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        assert!(Host::from_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda rw\n").is_err());
    }

    #[test]
    fn reads_own_cgroups() {
        let own =
            OwnCgroups::parse("12:memory:/user/1\n1:name=systemd:/init.scope\n0::/init.scope\n");
        assert_eq!(own.unified(), Some(Path::new("/init.scope")));
        assert_eq!(own.v1(&["memory".to_string()]), Some(Path::new("/user/1")));
        assert_eq!(own.v1(&["cpu".to_string()]), None);
    }
}
