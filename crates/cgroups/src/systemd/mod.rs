//! The systemd cgroup driver (`--systemd-cgroup`), as runc has it: the
//! container's cgroup is a transient unit (a scope, or a slice) that systemd
//! makes when asked over D-Bus, with `Delegate=yes` so that the container
//! may manage what is below it. Limits go to systemd as unit properties and
//! to the cgroup's files (through the v2 backend), so that systemd keeps
//! them and nothing systemd lacks a property for is lost.
//!
//! Nothing here runs unless the driver is chosen: the cgroupfs path never
//! opens a bus.

mod dbus;
pub mod properties;
pub mod unit;
mod wire;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::host::Hierarchy;
use crate::stats::Stats;
use crate::{v1, v2, CgroupsPath, Error, Manager, Placement, Result, SubCgroup, V1Dir};
use dbus::{Address, BusError, Connection};
use properties::Property;
pub use unit::UnitPath;
use wire::{Type, Value};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const SYSTEMD_MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a method call may take to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// How long systemd may take to start or stop a unit (runc waits as long).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The unit a systemd-managed cgroup belongs to, as kept in the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdUnit {
    /// e.g. `docker-<id>.scope`.
    pub unit: String,
    /// Whether the unit belongs to the user's systemd (reached on the user
    /// bus) rather than the system's.
    #[serde(default)]
    pub user: bool,
}

/// What the driver needs from the spec and the command line.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// linux.cgroupsPath, `slice:prefix:name`.
    pub cgroups_path: Option<&'a str>,
    pub id: &'a str,
    /// The user's own systemd (rootless) rather than the system's.
    pub user: bool,
    /// The spec's annotations: `org.systemd.property.*` become properties.
    pub annotations: Option<&'a HashMap<String, String>>,
}

pub struct Cgroup {
    /// The unit's cgroup, as the cgroupfs backend of the host's layout
    /// reaches it.
    fs: Box<dyn Manager>,
    unit: SystemdUnit,
    /// Slice=, or Wants= for a slice unit.
    parent_slice: String,
    bus: RefCell<Option<Connection>>,
    version: Cell<Option<u32>>,
    /// Until the unit starts: what it is to start with.
    unstarted: RefCell<Option<Unstarted>>,
    /// Whether a unit of ours may exist, for `destroy` to stop. A start that
    /// failed cleaned up after itself; a name taken by another unit is
    /// never stopped.
    started: Cell<bool>,
}

struct Unstarted {
    /// Annotation properties (they come last, so they win).
    annotations: Vec<Property>,
    /// Resources applied before the unit existed, in order.
    resources: Vec<LinuxResources>,
    /// On a v1 (or hybrid) host, the hierarchies to join once the unit has
    /// started: systemd makes the unit's directory only in those whose
    /// controllers it manages.
    v1: Option<V1Join>,
}

struct V1Join {
    hierarchies: Vec<Hierarchy>,
    unified: Option<PathBuf>,
    /// The unit's cgroup below each hierarchy's root.
    rel: PathBuf,
}

/// Checks that this host was booted with systemd, as sd_booted(3) does.
fn check_systemd_booted() -> Result<()> {
    if Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    Err(Error::Unsupported {
        field: "--systemd-cgroup".into(),
        message: "systemd is not running on this host (/run/systemd/system does not exist); use the cgroupfs driver".into(),
    })
}

impl Cgroup {
    /// Works out the unit and its cgroup on a pure v2 host, and connects to
    /// the bus; nothing is started. A user (rootless) unit lives below the user manager's
    /// cgroup, which is asked of it over the user bus.
    pub fn create(mount_point: &Path, opts: &Options) -> Result<Cgroup> {
        let (path, mut cgroup) = Self::unstarted(opts)?;
        let mut dir = PathBuf::from(mount_point);
        if opts.user {
            let manager_cgroup = cgroup.manager_property("ControlGroup")?;
            let manager_cgroup = manager_cgroup.as_str().unwrap_or_default();
            dir.push(manager_cgroup.trim_start_matches('/'));
        }
        dir.push(path.cgroup()?);
        cgroup.fs = Box::new(v2::Cgroup::open(Placement::V2 {
            dir,
            created: Vec::new(),
            systemd: Some(cgroup.unit.clone()),
        }));
        Ok(cgroup)
    }

    /// The same on a v1 or hybrid host: the unit's cgroup is the same path
    /// in every hierarchy (and in the cgroup2 one of a hybrid host).
    pub fn create_v1(
        hierarchies: &[Hierarchy],
        unified: Option<&Path>,
        opts: &Options,
    ) -> Result<Cgroup> {
        if opts.user {
            return Err(Error::Unsupported {
                field: "--systemd-cgroup".into(),
                message: "a rootless container's systemd cgroup needs a pure cgroup v2 host".into(),
            });
        }
        let (path, mut cgroup) = Self::unstarted(opts)?;
        let rel = path.cgroup()?;
        let dirs = hierarchies
            .iter()
            .map(|h| V1Dir {
                controllers: h.controllers.clone(),
                dir: h.mount_point.join(&rel),
            })
            .collect();
        cgroup.fs = Box::new(v1::Cgroup::open(Placement::V1 {
            dirs,
            unified: unified.map(|u| u.join(&rel)),
            created: Vec::new(),
            systemd: Some(cgroup.unit.clone()),
        }));
        if let Some(unstarted) = cgroup.unstarted.get_mut() {
            unstarted.v1 = Some(V1Join {
                hierarchies: hierarchies.to_vec(),
                unified: unified.map(Path::to_path_buf),
                rel,
            });
        }
        Ok(cgroup)
    }

    /// A manager for `opts` whose cgroup is still to be placed.
    fn unstarted(opts: &Options) -> Result<(UnitPath, Cgroup)> {
        let path = UnitPath::parse(opts.cgroups_path, opts.id, opts.user)?;
        let annotations = match opts.annotations {
            Some(a) => properties::from_annotations(a)?,
            None => Vec::new(),
        };
        check_systemd_booted()?;
        let unit = SystemdUnit {
            unit: path.unit.clone(),
            user: opts.user,
        };
        let cgroup = Cgroup {
            fs: Box::new(v2::Cgroup::open(Placement::V2 {
                dir: PathBuf::new(),
                created: Vec::new(),
                systemd: None,
            })),
            unit,
            parent_slice: path.slice.clone(),
            bus: RefCell::new(None),
            version: Cell::new(None),
            unstarted: RefCell::new(Some(Unstarted {
                annotations,
                resources: Vec::new(),
                v1: None,
            })),
            started: Cell::new(false),
        };
        // Connecting now costs nothing more than later, and a missing bus
        // fails the create before any process is made.
        cgroup.with_bus(|_| Ok(()))?;
        Ok((path, cgroup))
    }

    /// The cgroup of a unit an earlier `create` started.
    pub fn open(placement: Placement, unit: SystemdUnit) -> Cgroup {
        let fs: Box<dyn Manager> = match placement {
            Placement::V2 { .. } => Box::new(v2::Cgroup::open(placement)),
            Placement::V1 { .. } => Box::new(v1::Cgroup::open(placement)),
        };
        Cgroup {
            fs,
            unit,
            parent_slice: String::new(),
            bus: RefCell::new(None),
            version: Cell::new(None),
            unstarted: RefCell::new(None),
            started: Cell::new(true),
        }
    }

    fn is_slice(&self) -> bool {
        self.unit.unit.ends_with(".slice")
    }

    fn is_v1(&self) -> bool {
        matches!(self.fs.placement(), Placement::V1 { .. })
    }

    /// The unit properties for `resources`, in the names of this host's
    /// cgroup version.
    fn properties(&self, resources: &LinuxResources) -> Result<Vec<Property>> {
        if self.is_v1() {
            properties::from_resources_v1(resources)
        } else {
            properties::from_resources(resources, &mut || self.version())
        }
    }

    fn unit_error(&self, message: impl Into<String>) -> Error {
        Error::Systemd {
            unit: self.unit.unit.clone(),
            message: message.into(),
        }
    }

    fn bus_error(&self, e: BusError) -> Error {
        match e {
            BusError::Remote { name, .. } if no_systemd(&name) => {
                let bus = self.bus.borrow();
                let on = bus
                    .as_ref()
                    .map(|b| format!("{} ({})", b.address().path.display(), b.address().source))
                    .unwrap_or_default();
                Error::Unsupported {
                    field: "--systemd-cgroup".into(),
                    message: format!("no systemd answers on the bus at {on}: {name}"),
                }
            }
            e => self.unit_error(e.to_string()),
        }
    }

    /// Runs `f` on the bus connection, opening it first if need be.
    fn with_bus<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> std::result::Result<T, BusError>,
    ) -> Result<T> {
        let mut bus = self.bus.borrow_mut();
        if bus.is_none() {
            let address = if self.unit.user {
                Address::user()
            } else {
                Address::system()
            };
            let address = address.map_err(|message| Error::Unsupported {
                field: "--systemd-cgroup".into(),
                message,
            })?;
            let opened = std::time::Instant::now();
            let conn = Connection::open(address, CALL_TIMEOUT).map_err(|e| Error::Unsupported {
                field: "--systemd-cgroup".into(),
                message: format!("cannot reach systemd over D-Bus: {e}"),
            })?;
            tracing::debug!("systemd: connected to the bus in {:?}", opened.elapsed());
            *bus = Some(conn);
        }
        let result = f(bus.as_mut().expect("the bus was just opened"));
        drop(bus);
        result.map_err(|e| self.bus_error(e))
    }

    fn manager_property(&self, name: &str) -> Result<Value> {
        let reply = self.with_bus(|bus| {
            bus.call(
                SYSTEMD,
                SYSTEMD_PATH,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[Value::Str(SYSTEMD_MANAGER.into()), Value::Str(name.into())],
            )
        })?;
        reply
            .into_iter()
            .next()
            .ok_or_else(|| self.unit_error(format!("systemd's {name} came back empty")))
    }

    /// systemd's version number (252 for "252.36-1~deb12u1"); asked once,
    /// and only when a property needs a recent systemd.
    fn version(&self) -> u32 {
        if let Some(v) = self.version.get() {
            return v;
        }
        let version = match self.manager_property("Version") {
            Ok(v) => v
                .as_str()
                .map(|s| {
                    let digits: String = s
                        .trim_start_matches(['v', '"'])
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits.parse().unwrap_or(0)
                })
                .unwrap_or(0),
            Err(e) => {
                tracing::warn!("cannot read systemd's version: {e}");
                0
            }
        };
        self.version.set(Some(version));
        version
    }

    /// Starts the transient unit with `pid` in it and waits for its job.
    /// A unit of that name left failed by an earlier run is reset and the
    /// start tried once more, as runc does.
    fn start(&self, pid: i32, unstarted: &Unstarted) -> Result<()> {
        let mut props = vec![
            (
                "Description".to_string(),
                Value::Str(format!("berth container {}", self.unit.unit)),
            ),
            ("DefaultDependencies".into(), Value::Bool(false)),
            ("MemoryAccounting".into(), Value::Bool(true)),
            ("CPUAccounting".into(), Value::Bool(true)),
            (
                if self.is_v1() {
                    "BlockIOAccounting"
                } else {
                    "IOAccounting"
                }
                .into(),
                Value::Bool(true),
            ),
            ("TasksAccounting".into(), Value::Bool(true)),
        ];
        if self.is_slice() {
            // A slice takes no PIDs: the init joins it once it exists.
            props.push(("Wants".into(), Value::strings(&[&self.parent_slice])));
        } else {
            props.push(("Slice".into(), Value::Str(self.parent_slice.clone())));
            props.push(("Delegate".into(), Value::Bool(true)));
            props.push((
                "PIDs".into(),
                Value::Array(Type::U32, vec![Value::U32(pid as u32)]),
            ));
        }
        for r in &unstarted.resources {
            props.extend(self.properties(r)?);
        }
        if let Some(r) = unstarted
            .resources
            .iter()
            .rev()
            .find_map(|r| r.unified().as_ref())
        {
            if let Some(v) = r.get("memory.oom.group") {
                let policy = match v.trim() {
                    "1" => "kill",
                    _ => "continue",
                };
                props.push(("OOMPolicy".into(), Value::Str(policy.into())));
            }
        }
        props.extend(unstarted.annotations.iter().cloned());
        let props = property_array(props);
        let unit = self.unit.unit.clone();
        let start = |bus: &mut Connection| {
            bus.call_with_job(
                "StartTransientUnit",
                &[
                    Value::Str(unit.clone()),
                    Value::Str("replace".into()),
                    props.clone(),
                    Value::Array(
                        Type::Struct(vec![
                            Type::Str,
                            Type::Array(Box::new(Type::Struct(vec![Type::Str, Type::Variant]))),
                        ]),
                        Vec::new(),
                    ),
                ],
            )
        };
        let mut result = self.with_bus(start);
        if let Err(Error::Systemd { message, .. }) = &result {
            if message.starts_with("org.freedesktop.systemd1.UnitExists") {
                self.reset_failed();
                result = self.with_bus(start);
            }
        }
        match result? {
            JobResult::Done => {
                self.started.set(true);
                Ok(())
            }
            JobResult::Other(why) => {
                // A failed start leaves a failed unit: have systemd forget it.
                self.reset_failed();
                Err(self.unit_error(format!(
                    "systemd could not start it: job result \"{why}\" (see `journalctl -u {}`)",
                    self.unit.unit
                )))
            }
            JobResult::TimedOut => {
                // It may start yet: `destroy` is to stop it.
                self.started.set(true);
                Err(self.unit_error(format!("systemd did not start it within {JOB_TIMEOUT:?}")))
            }
        }
    }

    fn reset_failed(&self) {
        let unit = self.unit.unit.clone();
        let result = self.with_bus(|bus| {
            bus.call(
                SYSTEMD,
                SYSTEMD_PATH,
                SYSTEMD_MANAGER,
                "ResetFailedUnit",
                &[Value::Str(unit)],
            )
        });
        if let Err(e) = result {
            tracing::debug!("reset-failed: {e}");
        }
    }
}

/// Whether a D-Bus error says that nothing answers for systemd's name.
fn no_systemd(error_name: &str) -> bool {
    error_name == "org.freedesktop.DBus.Error.ServiceUnknown"
        || error_name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        || error_name.starts_with("org.freedesktop.DBus.Error.Spawn.")
}

fn property_array(props: Vec<Property>) -> Value {
    Value::Array(
        Type::Struct(vec![Type::Str, Type::Variant]),
        props
            .into_iter()
            .map(|(name, value)| {
                Value::Struct(vec![Value::Str(name), Value::Variant(Box::new(value))])
            })
            .collect(),
    )
}

/// How a systemd job ended.
enum JobResult {
    Done,
    Other(String),
    TimedOut,
}

impl Connection {
    /// Calls a systemd Manager method that queues a job (its reply is the
    /// job's path) and waits for the job's JobRemoved signal.
    fn call_with_job(
        &mut self,
        method: &str,
        args: &[Value],
    ) -> std::result::Result<JobResult, BusError> {
        let started = Instant::now();
        // Subscribing first, pipelined with the call, costs no round trip.
        let rule = format!(
            "type='signal',sender='{SYSTEMD}',path='{SYSTEMD_PATH}',interface='{SYSTEMD_MANAGER}',member='JobRemoved'"
        );
        let add_match = self.send_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Value::Str(rule)],
        )?;
        let call = self.send_call(SYSTEMD, SYSTEMD_PATH, SYSTEMD_MANAGER, method, args)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        self.wait_reply(add_match, deadline)?;
        let reply = self.wait_reply(call, deadline)?;
        let Some(job) = reply.first().and_then(Value::as_str).map(str::to_string) else {
            return Err(BusError::Transport(format!("{method} returned no job")));
        };
        let queued = started.elapsed();
        let waited = self.wait_signal(
            SYSTEMD_MANAGER,
            "JobRemoved",
            Instant::now() + JOB_TIMEOUT,
            |body| match body {
                [_, path, _, result] if path.as_str() == Some(job.as_str()) => {
                    result.as_str().map(str::to_string)
                }
                _ => None,
            },
        );
        tracing::debug!(
            "systemd: {method}: job queued after {queued:?}, removed after {:?}",
            started.elapsed()
        );
        match waited {
            Ok(result) if result == "done" => Ok(JobResult::Done),
            Ok(result) => Ok(JobResult::Other(result)),
            Err(BusError::Transport(m)) if m.contains("timed out") => Ok(JobResult::TimedOut),
            Err(e) => Err(e),
        }
    }
}

impl Manager for Cgroup {
    fn placement(&self) -> &Placement {
        self.fs.placement()
    }

    /// Before the unit exists, the resources are kept to start it with;
    /// after, they are set as unit properties (runtime only, as runc) and
    /// written to the cgroup's files.
    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if let Some(unstarted) = self.unstarted.borrow_mut().as_mut() {
            unstarted.resources.push(resources.clone());
            return Ok(());
        }
        let props = self.properties(resources)?;
        if !props.is_empty() {
            let unit = self.unit.unit.clone();
            let props = property_array(props);
            self.with_bus(|bus| {
                bus.call(
                    SYSTEMD,
                    SYSTEMD_PATH,
                    SYSTEMD_MANAGER,
                    "SetUnitProperties",
                    &[Value::Str(unit), Value::Bool(true), props],
                )
            })?;
        }
        self.fs.apply(resources)
    }

    /// The first process (the init) starts the unit; later ones (exec's)
    /// join its cgroup, or a sub-cgroup of it, through cgroupfs.
    fn join(&self, pid: i32, sub: Option<&SubCgroup>) -> Result<()> {
        let unstarted = match sub {
            Some(_) => None,
            None => self.unstarted.borrow_mut().take(),
        };
        let Some(unstarted) = unstarted else {
            return self.fs.join(pid, sub);
        };
        self.start(pid, &unstarted)?;
        if let Placement::V2 { dir, .. } = self.fs.placement() {
            // systemd enables for its units only the controllers it has
            // properties for; the others (hugetlb, rdma, misc) the unit's
            // parents are asked for, as runc does, so their limits apply.
            if let Err(e) = v2::enable_controllers(Path::new(crate::CGROUP_MOUNT), dir) {
                let _ = self.destroy();
                return Err(e);
            }
        }
        if self.is_slice() && unstarted.v1.is_none() {
            if let Err(e) = self.fs.join(pid, None) {
                let _ = self.destroy();
                return Err(e);
            }
        }
        if let Some(join) = &unstarted.v1 {
            // The hierarchies systemd left alone get the same path, as
            // runc does (cpusets filled from the parent).
            let joined = v1::Cgroup::create(
                &join.hierarchies,
                join.unified.as_deref(),
                &CgroupsPath::Absolute(join.rel.clone()),
            )
            .and_then(|c| c.join(pid, None));
            if let Err(e) = joined {
                let _ = self.destroy();
                return Err(e);
            }
        }
        for r in &unstarted.resources {
            if let Err(e) = self.fs.apply(r) {
                let _ = self.destroy();
                return Err(e);
            }
        }
        Ok(())
    }

    fn procs(&self) -> Result<Vec<i32>> {
        self.fs.procs()
    }

    /// Stops the unit and waits for it to go; then removes what is left of
    /// its cgroup. A unit that never started, or is gone already, is fine.
    /// The bus is only opened when there is a unit to stop.
    fn destroy(&self) -> Result<()> {
        if self.started.get() {
            let unit = self.unit.unit.clone();
            let stopped = self.with_bus(|bus| {
                bus.call_with_job(
                    "StopUnit",
                    &[Value::Str(unit), Value::Str("replace".into())],
                )
            });
            match stopped {
                Ok(JobResult::Done) => {}
                Ok(JobResult::Other(result)) => {
                    tracing::warn!("stop {}: job result {result:?}", self.unit.unit)
                }
                Ok(JobResult::TimedOut) => {
                    return Err(
                        self.unit_error(format!("systemd did not stop it within {JOB_TIMEOUT:?}"))
                    )
                }
                Err(Error::Systemd { message, .. })
                    if message.starts_with("org.freedesktop.systemd1.NoSuchUnit") => {}
                Err(e) => return Err(e),
            }
            self.reset_failed();
        }
        self.fs.destroy()
    }

    fn clone_into_fd(&self, sub: Option<&SubCgroup>) -> Result<Option<OwnedFd>> {
        // Before the unit starts its cgroup does not exist: the init is
        // cloned outside and `join` starts the unit with it.
        if !self.started.get() {
            return Ok(None);
        }
        self.fs.clone_into_fd(sub)
    }

    fn freeze(&self) -> Result<()> {
        self.fs.freeze()
    }

    fn thaw(&self) -> Result<()> {
        self.fs.thaw()
    }

    fn stats(&self) -> Result<Stats> {
        self.fs.stats()
    }

    fn oom_kills(&self) -> u64 {
        self.fs.oom_kills()
    }

    fn oom_notifier(&self) -> Option<OwnedFd> {
        self.fs.oom_notifier()
    }

    fn parent_oom_kills(&self) -> Option<u64> {
        let Placement::V2 { dir, .. } = self.fs.placement() else {
            return None;
        };
        crate::stats::keyed(dir.parent()?, "memory.events")
            .get("oom_kill")
            .copied()
    }
}
