//! The cgroup v2 backend: one directory in the unified hierarchy.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use rustix::fs::{inotify, Mode, OFlags};

use crate::convert::{self, max_or};
use crate::fsutil::{self, exists, read, write};
use crate::host::OwnCgroups;
use crate::stats::{self, MemoryEntry, Stats};
use crate::{CgroupsPath, Error, Manager, Placement, Result};

pub struct Cgroup {
    placement: Placement,
}

impl Cgroup {
    pub fn create(mount_point: &Path, path: &CgroupsPath) -> Result<Cgroup> {
        let own = match path {
            CgroupsPath::Relative(_) => Some(OwnCgroups::read()?),
            _ => None,
        };
        let rel = path.below_mount(Path::new("/"), own.as_ref().and_then(|o| o.unified()));
        let mut created = Vec::new();
        let result = fsutil::mkdir_all(mount_point, &rel, &mut created, |_| Ok(()))
            .and_then(|dir| enable_controllers(mount_point, &dir).map(|()| dir));
        let dir = match result {
            Ok(dir) => dir,
            Err(e) => {
                fsutil::remove_created(&created);
                return Err(e);
            }
        };
        if path.must_be_new() {
            fsutil::check_new(&[dir.as_path()], &created)?;
        }
        Ok(Cgroup {
            placement: Placement::V2 {
                dir,
                created,
                systemd: None,
            },
        })
    }

    pub fn open(placement: Placement) -> Cgroup {
        Cgroup { placement }
    }

    fn dir(&self) -> &Path {
        match &self.placement {
            Placement::V2 { dir, .. } => dir,
            Placement::V1 { .. } => unreachable!("a v2 cgroup always has a v2 placement"),
        }
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        let dir = self.dir();
        if let Some(limit) = m.limit() {
            write(dir, "memory.max", &max_or(limit))?;
        }
        if let Some(swap) = convert::memsw_to_swap_max(m.limit(), m.swap())? {
            if exists(dir, "memory.swap.max") {
                write(dir, "memory.swap.max", &max_or(swap))?;
            } else if swap != -1 {
                tracing::warn!(
                    "linux.resources.memory.swap: swap accounting is off in this kernel; not limited"
                );
            }
        }
        if let Some(reservation) = m.reservation() {
            write(dir, "memory.low", &max_or(reservation))?;
        }
        if m.swappiness().is_some() {
            tracing::warn!("linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness; ignored");
        }
        if m.disable_oom_killer() == Some(true) {
            tracing::warn!("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer; ignored");
        }
        #[allow(deprecated)]
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!(
                "linux.resources.memory.kernel: cgroup v2 has no kernel memory limit; ignored"
            );
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let dir = self.dir();
        if let Some(shares) = c.shares() {
            write(
                dir,
                "cpu.weight",
                &convert::cpu_shares_to_weight(shares).to_string(),
            )?;
        }
        if c.quota().is_some() || c.period().is_some() {
            // cpu.max holds both; keep the half the spec does not set.
            let current = read(dir, "cpu.max").unwrap_or_default();
            let mut fields = current.split_whitespace();
            let old_quota = fields.next().unwrap_or("max").to_string();
            let old_period = fields.next().unwrap_or("100000").to_string();
            let quota =
                c.quota().map_or(
                    old_quota,
                    |q| if q > 0 { q.to_string() } else { "max".into() },
                );
            let period = c.period().map_or(old_period, |p| p.to_string());
            write(dir, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(burst) = c.burst() {
            write(dir, "cpu.max.burst", &burst.to_string())?;
        }
        if let Some(idle) = c.idle() {
            write(dir, "cpu.idle", &idle.to_string())?;
        }
        if c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
        {
            return Err(Error::Unsupported {
                field: "linux.resources.cpu.realtimeRuntime".into(),
                message: "cgroup v2 has no realtime cpu limits".into(),
            });
        }
        if let Some(cpus) = c.cpus() {
            write(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems() {
            write(dir, "cpuset.mems", mems)?;
        }
        Ok(())
    }

    fn apply_io(&self, b: &LinuxBlockIo) -> Result<()> {
        let dir = self.dir();
        // BFQ takes blkio weights as they are; io.weight wants them converted.
        let bfq = exists(dir, "io.bfq.weight");
        if let Some(weight) = b.weight() {
            if bfq {
                write(dir, "io.bfq.weight", &weight.to_string())?;
            } else {
                let weight = convert::blkio_weight_to_io_weight(weight);
                write(dir, "io.weight", &format!("default {weight}"))?;
            }
        }
        if b.leaf_weight().is_some() {
            tracing::warn!(
                "linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weight; ignored"
            );
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(weight) = d.weight().filter(|w| *w != 0) {
                let (file, weight) = if bfq {
                    ("io.bfq.weight", u64::from(weight))
                } else {
                    ("io.weight", convert::blkio_weight_to_io_weight(weight))
                };
                write(
                    dir,
                    file,
                    &format!("{}:{} {}", d.major(), d.minor(), weight),
                )?;
            }
        }
        let throttles = [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ];
        for (devices, key) in throttles {
            for d in devices.iter().flatten() {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                write(
                    dir,
                    "io.max",
                    &format!("{}:{} {key}={rate}", d.major(), d.minor()),
                )?;
            }
        }
        Ok(())
    }
}

/// A hugepageLimits entry on cgroup v2: hugetlb.<size>.max, and the
/// reservation limit hugetlb.<size>.rsvd.max where the kernel has it
/// (5.7+), as runc writes both.
pub(crate) fn write_hugetlb_v2(
    dir: &Path,
    limit: &oci_spec::runtime::LinuxHugepageLimit,
) -> Result<()> {
    let size = convert::page_size(limit.page_size())?;
    let value = max_or(limit.limit());
    write(dir, &format!("hugetlb.{size}.max"), &value)?;
    let rsvd = format!("hugetlb.{size}.rsvd.max");
    if exists(dir, &rsvd) {
        write(dir, &rsvd, &value)?;
    }
    Ok(())
}

impl Manager for Cgroup {
    fn placement(&self) -> &Placement {
        &self.placement
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        let r = &convert::without_unset(r);
        let dir = self.dir();
        if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            let fd = rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                source: e.into(),
            })?;
            // The rules in their simplest form: accesses other than r, w
            // and m dropped, what later rules undo gone (as runc).
            let rules = crate::device_state::DeviceState::from_rules(rules)?.to_rules();
            crate::devices_bpf::attach(std::os::fd::AsFd::as_fd(&fd), &rules)?;
        }
        if let Some(memory) = r.memory() {
            self.apply_memory(memory)?;
        }
        if let Some(cpu) = r.cpu() {
            self.apply_cpu(cpu)?;
        }
        if let Some(pids) = r.pids() {
            write(dir, "pids.max", &convert::pids_max(pids.limit()))?;
        }
        if let Some(io) = r.block_io() {
            self.apply_io(io)?;
        }
        for limit in r.hugepage_limits().iter().flatten() {
            write_hugetlb_v2(dir, limit)?;
        }
        if r.network().is_some() {
            tracing::warn!("linux.resources.network: cgroup v2 has no net_cls/net_prio; ignored");
        }
        if let Some(rdma) = r.rdma() {
            for (device, limits) in rdma {
                write(dir, "rdma.max", &convert::rdma_line(device, limits))?;
            }
        }
        if let Some(unified) = r.unified() {
            write_unified(dir, unified)?;
        }
        Ok(())
    }

    fn procs(&self) -> Result<Vec<i32>> {
        Ok(fsutil::parse_pids(&read(self.dir(), "cgroup.procs")?))
    }

    fn destroy(&self) -> Result<()> {
        let result = fsutil::remove_dir(self.dir());
        if let Placement::V2 { created, .. } = &self.placement {
            fsutil::remove_created_parents(created, &[self.dir()]);
        }
        result
    }

    fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    fn stats(&self) -> Result<Stats> {
        let dir = self.dir();
        let mut st = Stats::default();
        let cpu = stats::keyed(dir, "cpu.stat");
        let us = |key: &str| cpu.get(key).copied().unwrap_or(0) * 1000;
        st.cpu.usage.total = us("usage_usec");
        st.cpu.usage.user = us("user_usec");
        st.cpu.usage.kernel = us("system_usec");
        st.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
        st.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
        st.cpu.throttling.throttled_time = us("throttled_usec");
        let events = stats::keyed(dir, "memory.events");
        st.memory.usage = MemoryEntry {
            limit: stats::limit(dir, "memory.max"),
            usage: stats::number(dir, "memory.current"),
            max: stats::number(dir, "memory.peak"),
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        st.memory.swap = MemoryEntry {
            limit: stats::limit(dir, "memory.swap.max"),
            usage: stats::number(dir, "memory.swap.current"),
            max: stats::number(dir, "memory.swap.peak"),
            failcnt: 0,
        };
        st.memory.raw = stats::keyed(dir, "memory.stat");
        st.memory.cache = st.memory.raw.get("file").copied().unwrap_or(0);
        st.pids.current = stats::number(dir, "pids.current");
        st.pids.limit = stats::number(dir, "pids.max");
        st.blkio = stats::io_stat_v2(dir);
        st.hugetlb = stats::hugetlb_v2(dir);
        Ok(st)
    }

    fn oom_kills(&self) -> u64 {
        stats::keyed(self.dir(), "memory.events")
            .get("oom_kill")
            .copied()
            .unwrap_or(0)
    }

    fn oom_notifier(&self) -> Option<OwnedFd> {
        // memory.events is one of the cgroup files the kernel signals
        // (IN_MODIFY) when its counters change.
        let inotify =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        inotify::add_watch(
            &inotify,
            self.dir().join("memory.events"),
            inotify::WatchFlags::MODIFY,
        )
        .ok()?;
        Some(inotify)
    }

    fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }
}

impl Cgroup {
    /// Writes cgroup.freeze and waits until cgroup.events agrees.
    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let dir = self.dir();
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        for _ in 0..1000 {
            if read(dir, "cgroup.events")?
                .lines()
                .any(|l| l.trim() == want)
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Io {
            path: dir.join("cgroup.events"),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("never showed {want:?}"),
            ),
        })
    }
}

/// Makes every controller the hierarchy offers available to the container:
/// each ancestor's cgroup.subtree_control gets what its cgroup.controllers
/// lists. A level that holds processes refuses (EBUSY); what the container then
/// lacks shows as a missing file when a limit asks for it.
pub(crate) fn enable_controllers(mount_point: &Path, leaf: &Path) -> Result<()> {
    let mut dir = PathBuf::from(mount_point);
    let rel = leaf.strip_prefix(mount_point).unwrap_or(leaf);
    for component in rel.components() {
        let available = read(&dir, "cgroup.controllers")?;
        let enabled = read(&dir, "cgroup.subtree_control").unwrap_or_default();
        let missing: Vec<String> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            if let Err(e) = write(&dir, "cgroup.subtree_control", &missing.join(" ")) {
                tracing::debug!("{e}");
            }
        }
        dir.push(component);
    }
    Ok(())
}

/// linux.resources.unified: each key is a file of the container's cgroup.
pub(crate) fn write_unified(dir: &Path, unified: &HashMap<String, String>) -> Result<()> {
    for (key, value) in unified {
        let valid = !key.is_empty() && !key.contains('/') && key != "." && key != "..";
        if !valid {
            return Err(Error::Invalid {
                field: format!("linux.resources.unified[{key:?}]"),
                message: "is not a cgroup file name".into(),
            });
        }
        if !exists(dir, key) {
            return Err(Error::Unsupported {
                field: format!("linux.resources.unified[{key:?}]"),
                message: format!(
                    "{} does not exist (is its controller enabled?)",
                    dir.join(key).display()
                ),
            });
        }
        write(dir, key, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake(files: &[&str]) -> (tempfile::TempDir, Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctr");
        fs::create_dir(&dir).unwrap();
        for f in files {
            fs::write(dir.join(f), "").unwrap();
        }
        let cg = Cgroup::open(Placement::V2 {
            dir,
            created: vec![],
            systemd: None,
        });
        (tmp, cg)
    }

    fn get(cg: &Cgroup, file: &str) -> String {
        fs::read_to_string(cg.dir().join(file)).unwrap()
    }

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_values_are_converted() {
        let (_tmp, cg) = fake(&[
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.weight",
            "cpu.max",
            "io.weight",
            "pids.max",
        ]);
        cg.apply(&resources(
            r#"{"memory":{"limit":1048576,"swap":3145728,"reservation":1024},
                "cpu":{"shares":1024,"quota":20000,"period":100000},
                "blockIO":{"weight":500},
                "pids":{"limit":-1}}"#,
        ))
        .unwrap();
        assert_eq!(get(&cg, "memory.max"), "1048576");
        assert_eq!(get(&cg, "memory.swap.max"), "2097152");
        assert_eq!(get(&cg, "memory.low"), "1024");
        assert_eq!(get(&cg, "cpu.weight"), "100");
        assert_eq!(get(&cg, "cpu.max"), "20000 100000");
        assert_eq!(get(&cg, "io.weight"), "default 4950");
        assert_eq!(get(&cg, "pids.max"), "max");
    }

    #[test]
    fn hugetlb_limits_cover_reservations_where_the_kernel_has_them() {
        let (_tmp, cg) = fake(&["hugetlb.2MB.max", "hugetlb.2MB.rsvd.max", "hugetlb.1GB.max"]);
        cg.apply(&resources(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304},{"pageSize":"1GB","limit":-1}]}"#,
        ))
        .unwrap();
        assert_eq!(get(&cg, "hugetlb.2MB.max"), "4194304");
        assert_eq!(get(&cg, "hugetlb.2MB.rsvd.max"), "4194304");
        assert_eq!(get(&cg, "hugetlb.1GB.max"), "max");
        assert!(!cg.dir().join("hugetlb.1GB.rsvd.max").exists());
    }

    #[test]
    fn a_period_alone_keeps_the_quota() {
        let (_tmp, cg) = fake(&["cpu.max"]);
        fs::write(cg.dir().join("cpu.max"), "30000 100000\n").unwrap();
        cg.apply(&resources(r#"{"cpu":{"period":50000}}"#)).unwrap();
        assert_eq!(get(&cg, "cpu.max"), "30000 50000");
    }

    #[test]
    fn unified_keys_are_files_of_the_cgroup() {
        let (_tmp, cg) = fake(&["memory.high"]);
        cg.apply(&resources(r#"{"unified":{"memory.high":"4096"}}"#))
            .unwrap();
        assert_eq!(get(&cg, "memory.high"), "4096");
        let err = cg
            .apply(&resources(r#"{"unified":{"../x":"1"}}"#))
            .unwrap_err();
        assert!(
            err.to_string().contains("is not a cgroup file name"),
            "{err}"
        );
        let err = cg
            .apply(&resources(r#"{"unified":{"io.nope":"1"}}"#))
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn realtime_limits_are_refused() {
        let (_tmp, cg) = fake(&[]);
        let err = cg
            .apply(&resources(r#"{"cpu":{"realtimeRuntime":1000}}"#))
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("linux.resources.cpu.realtimeRuntime"));
    }

    #[test]
    fn controllers_are_enabled_down_to_the_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let mid = root.join("berth");
        let leaf = mid.join("c1");
        fs::create_dir_all(&leaf).unwrap();
        fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(root.join("cgroup.subtree_control"), "memory\n").unwrap();
        fs::write(mid.join("cgroup.controllers"), "memory\n").unwrap();
        fs::write(mid.join("cgroup.subtree_control"), "").unwrap();
        enable_controllers(root, &leaf).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
            "+cpu +pids"
        );
        assert_eq!(
            fs::read_to_string(mid.join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
    }
}
