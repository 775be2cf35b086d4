//! The cgroup v1 backend: one directory per mounted hierarchy. On a hybrid
//! host the container also gets a directory in the cgroup2 hierarchy, so that
//! it is tracked there too.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNetwork, LinuxResources,
};

use crate::convert;
use crate::device_state::DeviceState;
use crate::fsutil::{self, exists, read, write};
use crate::host::{Hierarchy, OwnCgroups};
use crate::stats::{self, Hugetlb, MemoryEntry, Stats};
use crate::{CgroupsPath, Error, Manager, Placement, Result, V1Dir};

pub struct Cgroup {
    placement: Placement,
}

impl Cgroup {
    pub fn create(
        hierarchies: &[Hierarchy],
        unified: Option<&Path>,
        path: &CgroupsPath,
    ) -> Result<Cgroup> {
        let own = match path {
            CgroupsPath::Relative(_) => Some(OwnCgroups::read()?),
            _ => None,
        };
        let mut created = Vec::new();
        let mut dirs = Vec::new();
        let mut unified_dir = None;
        let result = (|| {
            for h in hierarchies {
                let own_cgroup = own.as_ref().and_then(|o| o.v1(&h.controllers));
                let rel = path.below_mount(&h.root, own_cgroup);
                let dir = fsutil::mkdir_all(&h.mount_point, &rel, &mut created, |_| Ok(()))?;
                if h.has("cpuset") {
                    fill_cpusets(&h.mount_point, &dir)?;
                }
                dirs.push(V1Dir {
                    controllers: h.controllers.clone(),
                    dir,
                });
            }
            if let Some(mount_point) = unified {
                let own_cgroup = own.as_ref().and_then(|o| o.unified());
                let rel = path.below_mount(Path::new("/"), own_cgroup);
                let dir = fsutil::mkdir_all(mount_point, &rel, &mut created, |_| Ok(()))?;
                // What a hybrid host has on cgroup2 only (hugetlb, here)
                // is reachable there.
                crate::v2::enable_controllers(mount_point, &dir)?;
                unified_dir = Some(dir);
            }
            Ok(())
        })();
        if let Err(e) = result {
            fsutil::remove_created(&created);
            return Err(e);
        }
        if path.must_be_new() {
            let leaves: Vec<&Path> = dirs
                .iter()
                .map(|d| d.dir.as_path())
                .chain(unified_dir.as_deref())
                .collect();
            fsutil::check_new(&leaves, &created)?;
        }
        Ok(Cgroup {
            placement: Placement::V1 {
                dirs,
                unified: unified_dir,
                created,
                systemd: None,
            },
        })
    }

    pub fn open(placement: Placement) -> Cgroup {
        Cgroup { placement }
    }

    fn dirs(&self) -> &[V1Dir] {
        match &self.placement {
            Placement::V1 { dirs, .. } => dirs,
            Placement::V2 { .. } => &[],
        }
    }

    fn unified(&self) -> Option<&Path> {
        match &self.placement {
            Placement::V1 { unified, .. } => unified.as_deref(),
            Placement::V2 { .. } => None,
        }
    }

    /// The directory of `controller`, or an error naming the spec field that
    /// needs it.
    fn dir(&self, controller: &str, field: &str) -> Result<&Path> {
        self.placement
            .dir_of(controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::Unsupported {
                field: field.to_string(),
                message: format!("the cgroup v1 {controller} controller is not mounted"),
            })
    }

    /// Writes what it takes to bring the device cgroup to `rules` (see
    /// [`DeviceState`]), then checks that the kernel holds them.
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let field = "linux.resources.devices";
        let dir = self.dir("devices", field)?;
        let target = DeviceState::from_rules(rules)?;
        let current = read_device_state(dir)?;
        for line in current.transition(&target) {
            write(dir, line.file(), &line.to_string())?;
        }
        let now = read_device_state(dir)?;
        if !now.matches(&target) {
            return Err(Error::Invalid {
                field: field.into(),
                message: format!(
                    "the device cgroup {} holds {:?} after the rules were written, not what they ask",
                    dir.display(),
                    read(dir, "devices.list")?
                ),
            });
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        let dir = self.dir("memory", "linux.resources.memory")?;
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        let has_swap = exists(dir, "memory.memsw.limit_in_bytes");
        if limit == -1 && swap == 0 && has_swap {
            swap = -1;
        }
        if swap != 0 && !has_swap {
            tracing::warn!(
                "linux.resources.memory.swap: swap accounting is off in this kernel; not limited"
            );
            swap = 0;
        }
        let set_limit = |v: i64| match v {
            0 => Ok(()),
            v => write(dir, "memory.limit_in_bytes", &v.to_string()),
        };
        let set_swap = |v: i64| match v {
            0 => Ok(()),
            v => write(dir, "memory.memsw.limit_in_bytes", &v.to_string()),
        };
        // memsw may never be below the memory limit: when the total grows,
        // raise it first.
        let grow_swap_first = limit != 0 && swap != 0 && {
            let current: u64 = read(dir, "memory.limit_in_bytes")?
                .trim()
                .parse()
                .unwrap_or(0);
            swap == -1 || current < swap as u64
        };
        if grow_swap_first {
            set_swap(swap)?;
            set_limit(limit)?;
        } else {
            set_limit(limit)?;
            set_swap(swap)?;
        }
        if let Some(reservation) = m.reservation() {
            write(dir, "memory.soft_limit_in_bytes", &reservation.to_string())?;
        }
        #[allow(deprecated)]
        if let Some(kernel) = m.kernel() {
            if exists(dir, "memory.kmem.limit_in_bytes") {
                write(dir, "memory.kmem.limit_in_bytes", &kernel.to_string())?;
            }
        }
        if let Some(tcp) = m.kernel_tcp() {
            write(dir, "memory.kmem.tcp.limit_in_bytes", &tcp.to_string())?;
        }
        if let Some(swappiness) = m.swappiness() {
            if swappiness > 100 {
                return Err(Error::Invalid {
                    field: "linux.resources.memory.swappiness".into(),
                    message: format!("{swappiness} is not in 0..=100"),
                });
            }
            write(dir, "memory.swappiness", &swappiness.to_string())?;
        }
        if let Some(disable) = m.disable_oom_killer() {
            write(dir, "memory.oom_control", if disable { "1" } else { "0" })?;
        }
        if let Some(hierarchy) = m.use_hierarchy() {
            write(
                dir,
                "memory.use_hierarchy",
                if hierarchy { "1" } else { "0" },
            )?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let wants_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some()
            || c.idle().is_some();
        if wants_cpu {
            let dir = self.dir("cpu", "linux.resources.cpu")?;
            if let Some(shares) = c.shares() {
                write(dir, "cpu.shares", &shares.to_string())?;
            }
            // The kernel checks quota against the period of the moment, so a
            // period that fails first may succeed once the quota is written.
            let period = c.period().map(|p| p.to_string());
            let quota = c.quota().map(|q| q.to_string());
            let period_first = match &period {
                Some(p) => write(dir, "cpu.cfs_period_us", p),
                None => Ok(()),
            };
            if let Some(q) = &quota {
                write(dir, "cpu.cfs_quota_us", q)?;
            }
            if period_first.is_err() {
                write(
                    dir,
                    "cpu.cfs_period_us",
                    period.as_deref().unwrap_or_default(),
                )?;
            }
            if let Some(burst) = c.burst() {
                write(dir, "cpu.cfs_burst_us", &burst.to_string())?;
            }
            if let Some(period) = c.realtime_period() {
                write(dir, "cpu.rt_period_us", &period.to_string())?;
            }
            if let Some(runtime) = c.realtime_runtime() {
                write(dir, "cpu.rt_runtime_us", &runtime.to_string())?;
            }
            if let Some(idle) = c.idle() {
                write(dir, "cpu.idle", &idle.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let dir = self.dir("cpuset", "linux.resources.cpu.cpus")?;
            if let Some(cpus) = c.cpus() {
                write(dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(dir, "cpuset.mems", mems)?;
            }
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo) -> Result<()> {
        let dir = self.dir("blkio", "linux.resources.blockIO")?;
        if let Some(weight) = b.weight() {
            let file = if exists(dir, "blkio.weight") {
                "blkio.weight"
            } else {
                "blkio.bfq.weight"
            };
            write(dir, file, &weight.to_string())?;
        }
        if let Some(leaf) = b.leaf_weight() {
            write(dir, "blkio.leaf_weight", &leaf.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(weight) = d.weight().filter(|w| *w != 0) {
                let line = format!("{}:{} {}", d.major(), d.minor(), weight);
                write(dir, "blkio.weight_device", &line)?;
            }
            if let Some(leaf) = d.leaf_weight().filter(|w| *w != 0) {
                let line = format!("{}:{} {}", d.major(), d.minor(), leaf);
                write(dir, "blkio.leaf_weight_device", &line)?;
            }
        }
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        for (devices, file) in throttles {
            for d in devices.iter().flatten() {
                write(
                    dir,
                    file,
                    &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn apply_network(&self, n: &LinuxNetwork) -> Result<()> {
        if let Some(class_id) = n.class_id() {
            let dir = self.dir("net_cls", "linux.resources.network.classID")?;
            write(dir, "net_cls.classid", &class_id.to_string())?;
        }
        if let Some(priorities) = n.priorities() {
            let dir = self.dir("net_prio", "linux.resources.network.priorities")?;
            for p in priorities {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        Ok(())
    }
}

impl Manager for Cgroup {
    fn placement(&self) -> &Placement {
        &self.placement
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        let r = &convert::without_unset(r);
        if let Some(devices) = r.devices() {
            self.apply_devices(devices)?;
        }
        if let Some(memory) = r.memory() {
            self.apply_memory(memory)?;
        }
        if let Some(cpu) = r.cpu() {
            self.apply_cpu(cpu)?;
        }
        if let Some(pids) = r.pids() {
            let dir = self.dir("pids", "linux.resources.pids")?;
            write(dir, "pids.max", &convert::pids_max(pids.limit()))?;
        }
        if let Some(blkio) = r.block_io() {
            self.apply_blkio(blkio)?;
        }
        for limit in r.hugepage_limits().iter().flatten() {
            let size = convert::page_size(limit.page_size())?;
            match (self.placement.dir_of("hugetlb"), self.unified()) {
                (Some(dir), _) => {
                    let value = limit.limit().to_string();
                    write(dir, &format!("hugetlb.{size}.limit_in_bytes"), &value)?;
                    // The reservation limit, where the kernel has it (5.7+),
                    // as runc writes it too.
                    let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
                    if exists(dir, &rsvd) {
                        write(dir, &rsvd, &value)?;
                    }
                }
                // A hybrid host with hugetlb on cgroup2 only.
                (None, Some(dir)) if exists(dir, &format!("hugetlb.{size}.max")) => {
                    crate::v2::write_hugetlb_v2(dir, limit)?
                }
                _ => {
                    self.dir("hugetlb", "linux.resources.hugepageLimits")?;
                }
            }
        }
        if let Some(network) = r.network() {
            self.apply_network(network)?;
        }
        if let Some(rdma) = r.rdma() {
            let dir = self.dir("rdma", "linux.resources.rdma")?;
            for (device, limits) in rdma {
                write(dir, "rdma.max", &convert::rdma_line(device, limits))?;
            }
        }
        if let Some(unified) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            // "invalid configuration", in runc's words (which refuses
            // unified on any v1 host, and tools look for them).
            let dir = self.unified().ok_or_else(|| Error::Unsupported {
                field: "linux.resources.unified".into(),
                message: "invalid configuration: this cgroup v1 host has no v2 hierarchy".into(),
            })?;
            crate::v2::write_unified(dir, unified).map_err(|e| match e {
                Error::Unsupported { field, message } => Error::Unsupported {
                    field,
                    message: format!("invalid configuration on this cgroup v1 host: {message}"),
                },
                other => other,
            })?;
        }
        Ok(())
    }

    fn procs(&self) -> Result<Vec<i32>> {
        let dir = ["pids", "freezer", "memory", "devices"]
            .iter()
            .find_map(|c| self.placement.dir_of(c))
            .or_else(|| self.dirs().first().map(|d| &d.dir));
        match dir {
            Some(dir) => Ok(fsutil::parse_pids(&read(dir, "cgroup.procs")?)),
            None => Ok(Vec::new()),
        }
    }

    fn destroy(&self) -> Result<()> {
        let mut first_error = None;
        let leaves: Vec<&Path> = self
            .dirs()
            .iter()
            .map(|d| d.dir.as_path())
            .chain(self.unified())
            .collect();
        for dir in &leaves {
            if let Err(e) = fsutil::remove_dir(dir) {
                first_error.get_or_insert(e);
            }
        }
        if let Placement::V1 { created, .. } = &self.placement {
            fsutil::remove_created_parents(created, &leaves);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn freeze(&self) -> Result<()> {
        self.set_freezer("FROZEN")
    }

    fn stats(&self) -> Result<Stats> {
        let mut st = Stats::default();
        if let Some(dir) = self.placement.dir_of("cpuacct") {
            st.cpu.usage.total = stats::number(dir, "cpuacct.usage");
            st.cpu.usage.percpu = read(dir, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            // cpuacct.stat counts clock ticks; runc reports nanoseconds.
            let ticks = stats::keyed(dir, "cpuacct.stat");
            let tick_ns = 1_000_000_000 / rustix::param::clock_ticks_per_second();
            st.cpu.usage.user = ticks.get("user").copied().unwrap_or(0) * tick_ns;
            st.cpu.usage.kernel = ticks.get("system").copied().unwrap_or(0) * tick_ns;
        }
        if let Some(dir) = self.placement.dir_of("cpu") {
            let cpu = stats::keyed(dir, "cpu.stat");
            st.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
            st.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
            st.cpu.throttling.throttled_time = cpu.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(dir) = self.placement.dir_of("memory") {
            let entry = |prefix: &str| MemoryEntry {
                limit: stats::number(dir, &format!("{prefix}.limit_in_bytes")),
                usage: stats::number(dir, &format!("{prefix}.usage_in_bytes")),
                max: stats::number(dir, &format!("{prefix}.max_usage_in_bytes")),
                failcnt: stats::number(dir, &format!("{prefix}.failcnt")),
            };
            st.memory.usage = entry("memory");
            st.memory.swap = entry("memory.memsw");
            st.memory.kernel = entry("memory.kmem");
            st.memory.kernel_tcp = entry("memory.kmem.tcp");
            st.memory.raw = stats::keyed(dir, "memory.stat");
            st.memory.cache = st.memory.raw.get("cache").copied().unwrap_or(0);
        }
        if let Some(dir) = self.placement.dir_of("pids") {
            st.pids.current = stats::number(dir, "pids.current");
            st.pids.limit = stats::number(dir, "pids.max");
        }
        if let Some(dir) = self.placement.dir_of("blkio") {
            st.blkio.io_service_bytes_recursive =
                stats::blkio_v1(dir, "blkio.throttle.io_service_bytes_recursive");
            st.blkio.io_serviced_recursive =
                stats::blkio_v1(dir, "blkio.throttle.io_serviced_recursive");
        }
        if let Some(dir) = self.placement.dir_of("hugetlb") {
            for size in stats::hugepage_sizes() {
                let h = Hugetlb {
                    usage: stats::number(dir, &format!("hugetlb.{size}.usage_in_bytes")),
                    max: stats::number(dir, &format!("hugetlb.{size}.max_usage_in_bytes")),
                    failcnt: stats::number(dir, &format!("hugetlb.{size}.failcnt")),
                };
                st.hugetlb.insert(size, h);
            }
        } else if let Some(dir) = self.unified() {
            st.hugetlb = stats::hugetlb_v2(dir);
        }
        Ok(st)
    }

    fn oom_kills(&self) -> u64 {
        self.placement
            .dir_of("memory")
            .map(|dir| {
                stats::keyed(dir, "memory.oom_control")
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    fn thaw(&self) -> Result<()> {
        self.set_freezer("THAWED")
    }
}

impl Cgroup {
    /// Writes the freezer state and waits for the kernel to reach it
    /// (FREEZING lasts until every task has stopped).
    fn set_freezer(&self, target: &str) -> Result<()> {
        let dir = self.dir("freezer", "freezer")?;
        for attempt in 0..1000 {
            // Writing again nudges tasks that raced with the first write.
            if attempt % 50 == 0 {
                write(dir, "freezer.state", target)?;
            }
            if read(dir, "freezer.state")?.trim() == target {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Io {
            path: dir.join("freezer.state"),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not reach {target}"),
            ),
        })
    }
}

fn read_device_state(dir: &Path) -> Result<DeviceState> {
    let list = read(dir, "devices.list")?;
    DeviceState::from_list(&list).map_err(|message| Error::Invalid {
        field: "linux.resources.devices".into(),
        message: format!("{}: {message}", dir.display()),
    })
}

/// A new cpuset cgroup starts with no cpus and no memory nodes, and no task
/// can join it until it has both: each level from the mount point down to
/// `leaf` that is empty takes its parent's. (A parent made a moment ago by
/// a concurrent create may still be empty, so every level is checked.)
fn fill_cpusets(mount_point: &Path, leaf: &Path) -> Result<()> {
    let rel = leaf.strip_prefix(mount_point).unwrap_or(leaf);
    let mut parent = mount_point.to_path_buf();
    for component in rel.components() {
        let dir = parent.join(component);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read(&dir, file)?.trim().is_empty() {
                write(&dir, file, read(&parent, file)?.trim())?;
            }
        }
        parent = dir;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;
    use std::fs;

    /// A fake v1 tree: one directory per controller, with the files the
    /// tests read back.
    fn fake_cgroup(root: &Path, controllers: &[&str], files: &[(&str, &str, &str)]) -> Cgroup {
        let dirs = controllers
            .iter()
            .map(|c| {
                let dir = root.join(c).join("ctr");
                fs::create_dir_all(&dir).unwrap();
                V1Dir {
                    controllers: vec![c.to_string()],
                    dir,
                }
            })
            .collect();
        for (controller, file, value) in files {
            fs::write(root.join(controller).join("ctr").join(file), value).unwrap();
        }
        Cgroup::open(Placement::V1 {
            dirs,
            unified: None,
            created: vec![],
            systemd: None,
        })
    }

    fn read_back(root: &Path, controller: &str, file: &str) -> String {
        fs::read_to_string(root.join(controller).join("ctr").join(file)).unwrap()
    }

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn memory_cpu_and_pids_limits_land_in_their_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(
            tmp.path(),
            &["memory", "cpu", "cpuset", "pids"],
            &[
                ("memory", "memory.limit_in_bytes", "9223372036854771712"),
                ("memory", "memory.soft_limit_in_bytes", ""),
                ("memory", "memory.swappiness", ""),
                ("cpu", "cpu.shares", ""),
                ("cpu", "cpu.cfs_quota_us", ""),
                ("cpu", "cpu.cfs_period_us", ""),
                ("cpuset", "cpuset.cpus", ""),
                ("pids", "pids.max", ""),
            ],
        );
        let r = resources(
            r#"{"memory":{"limit":1048576,"reservation":524288,"swappiness":10},
                "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},
                "pids":{"limit":64}}"#,
        );
        cg.apply(&r).unwrap();
        let root = tmp.path();
        assert_eq!(
            read_back(root, "memory", "memory.limit_in_bytes"),
            "1048576"
        );
        assert_eq!(
            read_back(root, "memory", "memory.soft_limit_in_bytes"),
            "524288"
        );
        assert_eq!(read_back(root, "memory", "memory.swappiness"), "10");
        assert_eq!(read_back(root, "cpu", "cpu.shares"), "512");
        assert_eq!(read_back(root, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read_back(root, "cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(read_back(root, "cpuset", "cpuset.cpus"), "0");
        assert_eq!(read_back(root, "pids", "pids.max"), "64");
    }

    #[test]
    fn zero_pids_limit_leaves_pids_max_alone_and_minus_one_is_max() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(tmp.path(), &["pids"], &[("pids", "pids.max", "12")]);
        cg.apply(&resources(r#"{"pids":{"limit":0}}"#)).unwrap();
        assert_eq!(read_back(tmp.path(), "pids", "pids.max"), "12");
        cg.apply(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
        assert_eq!(read_back(tmp.path(), "pids", "pids.max"), "max");
    }

    #[test]
    fn hugetlb_limits_cover_reservations_where_the_kernel_has_them() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(
            tmp.path(),
            &["hugetlb"],
            &[
                ("hugetlb", "hugetlb.2MB.limit_in_bytes", ""),
                ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", ""),
            ],
        );
        cg.apply(&resources(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
        ))
        .unwrap();
        let root = tmp.path();
        for file in [
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
        ] {
            assert_eq!(read_back(root, "hugetlb", file), "4194304");
        }
    }

    #[test]
    fn a_missing_controller_names_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(tmp.path(), &["cpu"], &[]);
        let err = cg
            .apply(&resources(r#"{"pids":{"limit":5}}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "linux.resources.pids: the cgroup v1 pids controller is not mounted"
        );
    }

    #[test]
    fn unified_needs_a_cgroup2_hierarchy() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cgroup(tmp.path(), &["memory"], &[]);
        let err = cg
            .apply(&resources(r#"{"unified":{"memory.high":"1"}}"#))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("linux.resources.unified:"),
            "{err}"
        );
    }

    #[test]
    fn new_cpuset_cgroups_inherit_cpus_and_mems_at_every_level() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("cpuset.cpus"), "0-1\n").unwrap();
        fs::write(root.join("cpuset.mems"), "0\n").unwrap();
        let leaf = root.join("parent/child");
        fs::create_dir_all(&leaf).unwrap();
        for dir in [root.join("parent"), leaf.clone()] {
            fs::write(dir.join("cpuset.cpus"), "\n").unwrap();
            fs::write(dir.join("cpuset.mems"), "\n").unwrap();
        }
        fill_cpusets(root, &leaf).unwrap();
        assert_eq!(fs::read_to_string(leaf.join("cpuset.cpus")).unwrap(), "0-1");
        assert_eq!(
            fs::read_to_string(root.join("parent/cpuset.mems")).unwrap(),
            "0"
        );
    }
}
