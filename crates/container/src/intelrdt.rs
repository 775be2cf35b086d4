//! linux.intelRdt: the container in a resctrl group, as runc 1.3 puts it.
//!
//! The group is the one `closID` names, shared with whoever else names it
//! and never removed by berth, or else one of the container's own, named
//! after it and removed with it. Its schemata are the spec's l3CacheSchema,
//! memBwSchema and then schemata lines, written whole. With
//! enableMonitoring the container gets a monitoring group of its own in
//! the group's mon_groups, named after it. The init joins both before it
//! goes on (what it forks inherits them), an exec'd process too.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxIntelRdt;
use serde::{Deserialize, Serialize};

use crate::{Context, Error, Result};

/// Where resctrl is mounted on hosts that have it.
pub const RESCTRL_MOUNT: &str = "/sys/fs/resctrl";

/// resctrl's statfs magic (RDTGROUP_SUPER_MAGIC).
const RESCTRL_MAGIC: i64 = 0x7655821;

/// A resctrl filesystem.
#[derive(Debug, Clone)]
pub struct Resctrl {
    root: PathBuf,
}

impl Resctrl {
    /// The host's resctrl: at /sys/fs/resctrl, else wherever mountinfo
    /// shows one (as runc looks).
    pub fn find() -> Result<Resctrl> {
        if let Ok(fs) = rustix::fs::statfs(RESCTRL_MOUNT) {
            // f_type's type differs from one architecture to another.
            #[allow(clippy::unnecessary_cast)]
            if fs.f_type as i64 == RESCTRL_MAGIC {
                return Ok(Resctrl::at(RESCTRL_MOUNT));
            }
        }
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
        berth_cgroups::mountinfo::parse(&mountinfo)
            .into_iter()
            .find(|m| m.fs_type == "resctrl")
            .map(|m| Resctrl::at(m.mount_point))
            .ok_or_else(|| {
                Error::spec(
                    "linux.intelRdt",
                    format!(
                        "intelRdt is specified in config, but Intel RDT is not enabled \
                         (no resctrl filesystem at {RESCTRL_MOUNT} or elsewhere)"
                    ),
                )
            })
    }

    /// The resctrl tree at `root` (a fake one in tests).
    pub fn at(root: impl Into<PathBuf>) -> Resctrl {
        Resctrl { root: root.into() }
    }

    /// Whether the hardware has the feature resctrl lists as info/`name`
    /// (L3: cache allocation, MB: memory bandwidth allocation, L3_MON:
    /// monitoring).
    fn has(&self, name: &str) -> bool {
        self.root.join("info").join(name).is_dir()
    }
}

/// The container's place in resctrl, recorded in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdtGroup {
    /// The group (closID's, or the container's own).
    pub group: PathBuf,
    /// Whether the group is the container's own, removed with it.
    pub own: bool,
    /// The container's monitoring group, with enableMonitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<PathBuf>,
}

/// Checks what can be checked without the host: a closID is one resctrl
/// group name ("/" is the root group), as runc checks it.
pub fn validate(rdt: &LinuxIntelRdt) -> Result<()> {
    if let Some(clos) = rdt.clos_id().as_deref() {
        if clos.is_empty() || clos == "." || clos == ".." || (clos != "/" && clos.contains('/')) {
            return Err(Error::spec(
                "linux.intelRdt.closID",
                format!("invalid intelRdt.closID {clos:?}: not a resctrl group name"),
            ));
        }
    }
    Ok(())
}

/// The schemata file's new content: l3CacheSchema, memBwSchema, then the
/// schemata lines, each ended by a newline; empty when the spec sets none.
pub fn schemata(rdt: &LinuxIntelRdt) -> String {
    let mut lines: Vec<&str> = vec![
        rdt.l3_cache_schema().as_deref().unwrap_or_default(),
        rdt.mem_bw_schema().as_deref().unwrap_or_default(),
    ];
    lines.extend(rdt.schemata().iter().flatten().map(String::as_str));
    lines
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

impl RdtGroup {
    /// Where container `id` goes in `resctrl`, once the host can do what
    /// `rdt` asks: cache or bandwidth schemas need the hardware for them,
    /// monitoring needs L3_MON, and a closID with no schemata names a
    /// group that must exist already (runc's rules).
    pub fn plan(resctrl: &Resctrl, rdt: &LinuxIntelRdt, id: &str) -> Result<RdtGroup> {
        validate(rdt)?;
        let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        if set(rdt.l3_cache_schema()) && !resctrl.has("L3") {
            return Err(Error::spec(
                "linux.intelRdt.l3CacheSchema",
                "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled",
            ));
        }
        if set(rdt.mem_bw_schema()) && !resctrl.has("MB") {
            return Err(Error::spec(
                "linux.intelRdt.memBwSchema",
                "intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled",
            ));
        }
        let monitor = *rdt.enable_monitoring() == Some(true);
        if monitor && !resctrl.has("L3_MON") {
            return Err(Error::spec(
                "linux.intelRdt.enableMonitoring",
                "monitoring is asked for, but resctrl has no monitoring (no info/L3_MON)",
            ));
        }
        let clos = rdt.clos_id().as_deref();
        let group = match clos {
            Some("/") => resctrl.root.clone(),
            Some(clos) => resctrl.root.join(clos),
            None => resctrl.root.join(id),
        };
        if clos.is_some() && schemata(rdt).is_empty() && !group.is_dir() {
            return Err(Error::spec(
                "linux.intelRdt.closID",
                format!(
                    "clos dir {} not accessible (must be pre-created when schemata, \
                     l3CacheSchema and memBwSchema are empty)",
                    group.display()
                ),
            ));
        }
        Ok(RdtGroup {
            monitoring: monitor.then(|| group.join("mon_groups").join(id)),
            own: clos.is_none(),
            group,
        })
    }

    /// Makes the groups that are missing and writes the schemata (before
    /// any process is in the group, which never runs under the defaults).
    /// On error, what it made is removed.
    pub fn make(&self, resctrl: &Resctrl, schemata: &str) -> Result<()> {
        let made = make_dir(&self.group)?;
        let result = (|| {
            if !schemata.is_empty() {
                let path = self.group.join("schemata");
                std::fs::write(&path, schemata)
                    .ctx(|| format!("linux.intelRdt: write {}", path.display()))
                    .map_err(|e| last_cmd_error(resctrl, e))?;
            }
            if let Some(monitoring) = &self.monitoring {
                make_dir(monitoring)?;
            }
            Ok(())
        })();
        if result.is_err() && made {
            let _ = std::fs::remove_dir(&self.group);
        }
        result
    }

    /// Puts process `pid` in the group and in the monitoring group.
    pub fn add(&self, pid: i32) -> Result<()> {
        for dir in std::iter::once(&self.group).chain(self.monitoring.as_ref()) {
            let tasks = dir.join("tasks");
            std::fs::write(&tasks, pid.to_string())
                .ctx(|| format!("linux.intelRdt: add pid {pid} to {}", tasks.display()))?;
        }
        Ok(())
    }

    /// Removes what is the container's: its own group (resctrl removes
    /// the monitoring groups in it), else its monitoring group.
    pub fn remove(&self) -> Result<()> {
        let dir = if self.own {
            Some(&self.group)
        } else {
            self.monitoring.as_ref()
        };
        match dir.map(std::fs::remove_dir) {
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("remove the resctrl group {}", dir.unwrap().display()))
            }
            _ => Ok(()),
        }
    }
}

/// Makes `dir`; whether it was made (false: it was there).
fn make_dir(dir: &Path) -> Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).ctx(|| format!("linux.intelRdt: make {}", dir.display())),
    }
}

/// `err` with the kernel's reason, which resctrl gives in
/// info/last_cmd_status rather than in the errno.
fn last_cmd_error(resctrl: &Resctrl, err: Error) -> Error {
    match std::fs::read_to_string(resctrl.root.join("info/last_cmd_status")) {
        Ok(status) => Error::Message(format!("{err}, last_cmd_status: {}", status.trim())),
        Err(_) => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake resctrl tree: info/ with the given features, and what the
    /// root group has.
    fn fake(features: &[&str]) -> (tempfile::TempDir, Resctrl) {
        let dir = tempfile::tempdir().unwrap();
        for feature in features {
            std::fs::create_dir_all(dir.path().join("info").join(feature)).unwrap();
        }
        std::fs::write(dir.path().join("info/last_cmd_status"), "ok\n").unwrap();
        std::fs::write(dir.path().join("schemata"), "L3:0=fff\n").unwrap();
        std::fs::write(dir.path().join("tasks"), "").unwrap();
        let resctrl = Resctrl::at(dir.path());
        (dir, resctrl)
    }

    fn rdt(json: serde_json::Value) -> LinuxIntelRdt {
        serde_json::from_value(json).unwrap()
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn schemata_are_the_two_schemas_then_the_lines() {
        let spec = rdt(serde_json::json!({
            "l3CacheSchema": "L3:0=f0",
            "memBwSchema": "MB:0=50",
            "schemata": ["L2:0=3", "L3CODE:0=f"]
        }));
        assert_eq!(schemata(&spec), "L3:0=f0\nMB:0=50\nL2:0=3\nL3CODE:0=f\n");
        assert_eq!(schemata(&rdt(serde_json::json!({"closID": "x"}))), "");
    }

    #[test]
    fn a_container_without_clos_id_gets_its_own_group_and_leaves_none() {
        let (_dir, resctrl) = fake(&["L3", "L3_MON"]);
        let spec = rdt(serde_json::json!({"l3CacheSchema": "L3:0=f0", "enableMonitoring": true}));
        let group = RdtGroup::plan(&resctrl, &spec, "ctr1").unwrap();
        assert_eq!(group.group, resctrl.root.join("ctr1"));
        assert!(group.own);
        let monitoring = resctrl.root.join("ctr1/mon_groups/ctr1");
        assert_eq!(group.monitoring.as_deref(), Some(monitoring.as_path()));
        // resctrl makes mon_groups in every group; the fake needs a hand.
        std::fs::create_dir_all(resctrl.root.join("ctr1/mon_groups")).unwrap();
        group.make(&resctrl, &schemata(&spec)).unwrap();
        assert_eq!(read(&group.group.join("schemata")), "L3:0=f0\n");
        group.add(42).unwrap();
        assert_eq!(read(&group.group.join("tasks")), "42");
        assert_eq!(read(&monitoring.join("tasks")), "42");
        // resctrl's rmdir takes a group with its files and mon_groups; the
        // fake's cannot, so they go by hand first.
        std::fs::remove_dir_all(resctrl.root.join("ctr1/mon_groups")).unwrap();
        std::fs::remove_file(group.group.join("schemata")).unwrap();
        std::fs::remove_file(group.group.join("tasks")).unwrap();
        group.remove().unwrap();
        assert!(!group.group.exists());
    }

    #[test]
    fn a_clos_id_group_is_shared_and_kept() {
        let (_dir, resctrl) = fake(&["L3", "MB", "L3_MON"]);
        let spec = rdt(serde_json::json!({
            "closID": "gold",
            "memBwSchema": "MB:0=70",
            "enableMonitoring": true
        }));
        let group = RdtGroup::plan(&resctrl, &spec, "ctr2").unwrap();
        assert_eq!(group.group, resctrl.root.join("gold"));
        assert!(!group.own);
        std::fs::create_dir_all(resctrl.root.join("gold/mon_groups")).unwrap();
        group.make(&resctrl, &schemata(&spec)).unwrap();
        assert_eq!(read(&resctrl.root.join("gold/schemata")), "MB:0=70\n");
        group.add(7).unwrap();
        assert_eq!(read(&resctrl.root.join("gold/tasks")), "7");
        assert_eq!(read(&resctrl.root.join("gold/mon_groups/ctr2/tasks")), "7");
        // What resctrl's rmdir takes with the group, by hand in the fake.
        std::fs::remove_file(resctrl.root.join("gold/mon_groups/ctr2/tasks")).unwrap();
        group.remove().unwrap();
        // Only the container's monitoring group goes.
        assert!(resctrl.root.join("gold").is_dir());
        assert!(!resctrl.root.join("gold/mon_groups/ctr2").exists());
    }

    #[test]
    fn the_root_group_is_clos_id_slash() {
        let (_dir, resctrl) = fake(&["L3"]);
        let spec = rdt(serde_json::json!({"closID": "/"}));
        let group = RdtGroup::plan(&resctrl, &spec, "ctr3").unwrap();
        assert_eq!(group.group, resctrl.root);
        group.make(&resctrl, "").unwrap();
        group.add(9).unwrap();
        assert_eq!(read(&resctrl.root.join("tasks")), "9");
        assert_eq!(read(&resctrl.root.join("schemata")), "L3:0=fff\n");
        group.remove().unwrap();
        assert!(resctrl.root.is_dir());
    }

    #[test]
    fn what_the_host_cannot_do_is_refused_before_anything_is_made() {
        let (_dir, resctrl) = fake(&["L3"]);
        let refused = |json: serde_json::Value| {
            let err = RdtGroup::plan(&resctrl, &rdt(json.clone()), "ctr4")
                .unwrap_err()
                .to_string();
            assert!(std::fs::read_dir(&resctrl.root)
                .unwrap()
                .all(|e| ["info", "schemata", "tasks"]
                    .contains(&e.unwrap().file_name().to_str().unwrap())));
            err
        };
        let err = refused(serde_json::json!({"memBwSchema": "MB:0=50"}));
        assert!(err.starts_with("linux.intelRdt.memBwSchema: "), "{err}");
        assert!(err.contains("Intel RDT/MBA is not enabled"), "{err}");
        let err = refused(serde_json::json!({"enableMonitoring": true}));
        assert!(
            err.starts_with("linux.intelRdt.enableMonitoring: "),
            "{err}"
        );
        let err = refused(serde_json::json!({"closID": "missing"}));
        assert!(err.contains("must be pre-created"), "{err}");
        for bad in ["..", "a/b", ""] {
            let err = refused(serde_json::json!({"closID": bad}));
            assert!(err.starts_with("linux.intelRdt.closID: invalid"), "{err}");
        }
    }

    #[test]
    fn a_schemata_the_kernel_refuses_reports_its_reason_and_leaves_no_group() {
        let (_dir, resctrl) = fake(&["L3"]);
        std::fs::write(
            resctrl.root.join("info/last_cmd_status"),
            "Unknown or unsupported resource name 'L9'\n",
        )
        .unwrap();
        let spec = rdt(serde_json::json!({"schemata": ["L9:0=1"]}));
        let group = RdtGroup::plan(&resctrl, &spec, "ctr5").unwrap();
        // A schemata that cannot be written stands for the kernel's EINVAL.
        std::fs::create_dir(&group.group).unwrap();
        std::fs::create_dir(group.group.join("schemata")).unwrap();
        let err = group
            .make(&resctrl, &schemata(&spec))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("last_cmd_status: Unknown or unsupported resource name 'L9'"),
            "{err}"
        );
        // The group was there before: it stays (only what make made goes).
        assert!(group.group.is_dir());
    }

    #[test]
    fn without_resctrl_the_error_names_the_field() {
        if Path::new(RESCTRL_MOUNT).join("info").is_dir() {
            eprintln!("SKIPPED: this host has resctrl");
            return;
        }
        let err = Resctrl::find().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled"
            ),
            "{err}"
        );
    }
}
