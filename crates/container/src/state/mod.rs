//! The state store: one directory per container under the runtime root
//! (`/run/berth/<id>` by default) holding `state.json` and, until `start`,
//! the `exec.fifo` the init waits on.
//!
//! Creating the directory is what claims an id, so of concurrent creates of
//! one id exactly one wins. Every operation that changes a container holds
//! an exclusive flock on its directory. state.json is replaced atomically
//! (written to a temporary file, then renamed), so readers need no lock.

mod oci;
mod status;

use std::collections::HashMap;
use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::{Context, Error, Result};

pub use oci::OciState;
pub use status::{is_alive, ProcStat, Status};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Where `create` notes the cgroup it is about to make, before making it.
pub const CGROUP_PLAN: &str = "cgroup-plan.json";

/// What berth records of a created container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// The init's pid in berth's pid namespace.
    pub pid: i32,
    /// The init's start time, which tells it from a later process that
    /// reuses its pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The container's cgroup, when berth made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<berth_cgroups::Placement>,
    /// The container's resctrl groups (linux.intelRdt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<crate::intelrdt::RdtGroup>,
    /// The config the container was created from: later commands (hooks at
    /// delete, exec) must not see later edits of the bundle.
    pub config: Spec,
}

/// The state root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Opens the state root, which berth trusts with what it kills, unmounts
    /// and runs: it must be a directory itself (not a symlink to one),
    /// owned by berth's user and writable by no one else. `None` when it
    /// does not exist.
    fn open_root(&self) -> Result<Option<OwnedFd>> {
        let shown = self.root.display();
        let fd = match rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
                if fs::symlink_metadata(&self.root).is_ok_and(|m| m.is_symlink()) =>
            {
                return Err(Error::Message(format!(
                    "state root {shown} is a symlink; berth keeps its state only in a directory of its own"
                )))
            }
            Err(e) => return Err(e).ctx(|| format!("state root {shown}")),
        };
        let st = rustix::fs::fstat(&fd).ctx(|| format!("state root {shown}"))?;
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(Error::Message(format!(
                "state root {shown} is owned by uid {}, not by berth's user (uid {euid})",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(Error::Message(format!(
                "state root {shown} is writable by group or others (mode {:o}); make it 0700",
                st.st_mode & 0o7777
            )));
        }
        Ok(Some(fd))
    }

    /// Claims `id`: makes its directory and locks it. Fails when the id is
    /// taken. The directory is made under a name no id can have and locked
    /// before it is renamed into place (RENAME_NOREPLACE), so no other
    /// command ever sees it unlocked.
    pub fn create(&self, id: &str) -> Result<ContainerDir> {
        crate::id::validate(id)?;
        if let Some(parent) = self.root.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .ctx(|| format!("state root {}", self.root.display()))?;
        }
        match DirBuilder::new().mode(0o700).create(&self.root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx(|| format!("state root {}", self.root.display())),
        }
        let root = self.open_root()?.ok_or_else(|| {
            Error::os(format!("state root {}", self.root.display()), libc::ENOENT)
        })?;
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let private = format!(".new~{}~{n}", std::process::id());
        rustix::fs::mkdirat(&root, &private, Mode::from_raw_mode(0o700))
            .ctx(|| format!("create {}/{private}", self.root.display()))?;
        let fd = rustix::fs::openat(
            &root,
            &private,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}/{private}", self.root.display()))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .ctx(|| format!("lock {}/{private}", self.root.display()))?;
        match rustix::fs::renameat_with(
            &root,
            &private,
            &root,
            id,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(ContainerDir {
                id: id.to_string(),
                path: self.dir_of(id),
                root,
                fd,
            }),
            Err(e) => {
                let _ = rustix::fs::unlinkat(&root, &private, rustix::fs::AtFlags::REMOVEDIR);
                match e {
                    rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY => {
                        Err(Error::Exists(id.into()))
                    }
                    e => Err(e).ctx(|| format!("create {}", self.dir_of(id).display())),
                }
            }
        }
    }

    /// Locks the directory of an existing container.
    pub fn lock(&self, id: &str) -> Result<ContainerDir> {
        crate::id::validate(id)?;
        let root = self
            .open_root()?
            .ok_or_else(|| Error::NotFound(id.into()))?;
        ContainerDir::open(root, id, self.dir_of(id))
    }

    /// Reads a container's state without locking it.
    pub fn load(&self, id: &str) -> Result<Container> {
        crate::id::validate(id)?;
        let root = self
            .open_root()?
            .ok_or_else(|| Error::NotFound(id.into()))?;
        let dir = self.dir_of(id);
        let dir_fd = open_container_dir(&root, id, &dir)?;
        let state = read_state_at(dir_fd.as_fd(), &dir)?;
        Ok(Container {
            id: id.to_string(),
            dir,
            state,
        })
    }

    /// Every container under the root, sorted by id.
    pub fn list(&self) -> Result<Vec<Container>> {
        if self.open_root()?.is_none() {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", self.root.display())),
        };
        let mut containers = Vec::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if crate::id::validate(&id).is_err() || !entry.path().is_dir() {
                continue;
            }
            match self.load(&id) {
                Ok(c) => containers.push(c),
                Err(Error::NotFound(_)) => {}
                Err(e) => tracing::warn!("{id}: {e}"),
            }
        }
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(containers)
    }
}

/// A container as read from the store.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    /// `None` while `create` runs (or when it died before finishing).
    pub state: Option<State>,
}

impl Container {
    pub fn status(&self) -> Status {
        match &self.state {
            None if creation_in_progress(&self.dir) => Status::Creating,
            None => Status::Stopped,
            Some(state) => derive_status(state, &self.dir),
        }
    }
}

/// Created while the init waits on the exec fifo, running once `start` has
/// removed it, paused while the cgroup is frozen, stopped once the init is gone.
fn derive_status(state: &State, dir: &Path) -> Status {
    if !is_alive(state.pid, state.pid_start_time) {
        Status::Stopped
    } else if dir.join(EXEC_FIFO).exists() {
        Status::Created
    } else if state.cgroup.as_ref().is_some_and(berth_cgroups::is_frozen) {
        Status::Paused
    } else {
        Status::Running
    }
}

/// A state directory without state.json is still being created if its
/// creator holds the lock; otherwise the creator died.
fn creation_in_progress(dir: &Path) -> bool {
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(_) => true,
    }
}

/// state.json of the directory `dir` (named `path` in errors), not
/// following a symlink in its place.
fn read_state_at(dir: std::os::fd::BorrowedFd, path: &Path) -> Result<Option<State>> {
    let shown = path.join(STATE_FILE);
    let fd = match rustix::fs::openat(
        dir,
        STATE_FILE,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("read {}", shown.display())),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut fs::File::from(fd), &mut bytes)
        .ctx(|| format!("read {}", shown.display()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Message(format!("{}: {e}", shown.display())))
}

/// A container's state directory, locked for as long as this value lives.
/// Only the holder of this lock renames or removes the directory's name.
#[derive(Debug)]
pub struct ContainerDir {
    id: String,
    path: PathBuf,
    root: OwnedFd,
    fd: OwnedFd,
}

impl ContainerDir {
    fn open(root: OwnedFd, id: &str, path: PathBuf) -> Result<ContainerDir> {
        let fd = open_container_dir(&root, id, &path)?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .ctx(|| format!("lock {}", path.display()))?;
        let dir = ContainerDir {
            id: id.to_string(),
            path,
            root,
            fd,
        };
        // A directory removed while we waited for the lock is gone.
        if !dir.still_named()? {
            return Err(Error::NotFound(id.into()));
        }
        Ok(dir)
    }

    /// Whether the id still names this directory.
    fn still_named(&self) -> Result<bool> {
        let ours = rustix::fs::fstat(&self.fd).ctx(|| format!("stat {}", self.path.display()))?;
        if ours.st_nlink == 0 {
            return Ok(false);
        }
        match rustix::fs::statat(
            &self.root,
            self.id.as_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(named) => Ok(named.st_ino == ours.st_ino && named.st_dev == ours.st_dev),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e).ctx(|| format!("stat {}", self.path.display())),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn container(&self) -> Result<Container> {
        Ok(Container {
            id: self.id.clone(),
            dir: self.path.clone(),
            state: read_state_at(self.fd.as_fd(), &self.path)?,
        })
    }

    /// Replaces state.json atomically.
    pub fn write_state(&self, state: &State) -> Result<()> {
        let json =
            serde_json::to_vec(state).map_err(|e| Error::Message(format!("encode state: {e}")))?;
        self.replace_file(STATE_FILE, &json)
    }

    /// Notes the cgroup `create` is about to make (atomically, before it
    /// makes any of it): a create killed before it recorded the container
    /// leaves a cgroup that `delete` finds here.
    pub fn write_cgroup_plan(&self, placement: &berth_cgroups::Placement) -> Result<()> {
        let json = serde_json::to_vec(placement)
            .map_err(|e| Error::Message(format!("encode the cgroup plan: {e}")))?;
        self.replace_file(CGROUP_PLAN, &json)
    }

    /// The cgroup a create noted with [`Self::write_cgroup_plan`], if any.
    pub fn cgroup_plan(&self) -> Result<Option<berth_cgroups::Placement>> {
        let fd = match rustix::fs::openat(
            &self.fd,
            CGROUP_PLAN,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("open {}/{CGROUP_PLAN}", self.path.display())),
        };
        serde_json::from_reader(fs::File::from(fd))
            .map(Some)
            .map_err(|e| Error::Message(format!("{}/{CGROUP_PLAN}: {e}", self.path.display())))
    }

    /// Replaces the file `name` of the directory with `contents`, through a
    /// temporary renamed over it.
    fn replace_file(&self, name: &str, contents: &[u8]) -> Result<()> {
        let tmp = format!("{name}.tmp");
        let tmp = tmp.as_str();
        let fd = rustix::fs::openat(
            &self.fd,
            tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .ctx(|| format!("write {}/{tmp}", self.path.display()))?;
        fs::File::from(fd)
            .write_all(contents)
            .ctx(|| format!("write {}/{tmp}", self.path.display()))?;
        rustix::fs::renameat(&self.fd, tmp, &self.fd, name)
            .ctx(|| format!("rename {}/{tmp}", self.path.display()))
    }

    /// Makes the fifo the init blocks on until `start`.
    pub fn make_exec_fifo(&self) -> Result<()> {
        rustix::fs::mknodat(
            &self.fd,
            EXEC_FIFO,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .ctx(|| format!("mkfifo {}", self.fifo_path().display()))
    }

    /// Opens the exec fifo read-write: the init holds it this way, so that a
    /// read blocks until `start` writes (and never sees end-of-file).
    pub fn open_exec_fifo(&self) -> Result<OwnedFd> {
        rustix::fs::openat(
            &self.fd,
            EXEC_FIFO,
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", self.fifo_path().display()))
    }

    pub fn remove_exec_fifo(&self) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, EXEC_FIFO, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove {}", self.fifo_path().display())),
        }
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Removes the directory and everything in it; the lock goes with it.
    /// The files go through the locked descriptor, and the name is removed
    /// only while it still names this directory.
    pub fn remove(self) -> Result<()> {
        let entries =
            rustix::fs::Dir::read_from(&self.fd).ctx(|| format!("read {}", self.path.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            match rustix::fs::unlinkat(&self.fd, name, rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e).ctx(|| format!("remove {}/{name:?}", self.path.display())),
            }
        }
        if self.still_named()? {
            rustix::fs::unlinkat(&self.root, self.id.as_str(), rustix::fs::AtFlags::REMOVEDIR)
                .ctx(|| format!("remove {}", self.path.display()))?;
        }
        Ok(())
    }
}

/// The directory of container `id` under the state root, never through a
/// symlink; `path` names it in errors.
fn open_container_dir(root: &OwnedFd, id: &str, path: &Path) -> Result<OwnedFd> {
    match rustix::fs::openat(
        root,
        id,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) => Err(Error::NotFound(id.into())),
        Err(e) => Err(e).ctx(|| format!("open {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state(id: &str) -> State {
        State {
            oci_version: "1.2.0".into(),
            id: id.into(),
            pid: std::process::id() as i32,
            pid_start_time: ProcStat::read(std::process::id() as i32)
                .unwrap()
                .start_time,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: HashMap::new(),
            cgroup: None,
            intel_rdt: None,
            config: Spec::default(),
        }
    }

    #[test]
    fn an_id_can_be_claimed_once() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path().join("berth"));
        let dir = store.create("c1").unwrap();
        assert!(matches!(store.create("c1"), Err(Error::Exists(_))));
        dir.remove().unwrap();
        store.create("c1").unwrap().remove().unwrap();
    }

    #[test]
    fn status_follows_the_process_and_the_fifo() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        let dir = store.create("c2").unwrap();
        // While the creator holds the lock, a container without state is creating.
        assert_eq!(store.load("c2").unwrap().status(), Status::Creating);
        dir.make_exec_fifo().unwrap();
        dir.write_state(&sample_state("c2")).unwrap();
        assert_eq!(store.load("c2").unwrap().status(), Status::Created);
        dir.remove_exec_fifo().unwrap();
        assert_eq!(store.load("c2").unwrap().status(), Status::Running);
        let mut dead = sample_state("c2");
        dead.pid_start_time += 1;
        dir.write_state(&dead).unwrap();
        assert_eq!(store.load("c2").unwrap().status(), Status::Stopped);
        dir.remove().unwrap();
        assert!(matches!(store.load("c2"), Err(Error::NotFound(_))));
    }

    #[test]
    fn a_creator_that_died_leaves_a_stopped_container() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        drop(store.create("c3").unwrap());
        assert_eq!(store.load("c3").unwrap().status(), Status::Stopped);
    }

    #[test]
    fn list_skips_foreign_entries() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        fs::create_dir(root.path().join("not an id")).unwrap();
        fs::write(root.path().join("file"), "").unwrap();
        let dir = store.create("c4").unwrap();
        dir.write_state(&sample_state("c4")).unwrap();
        let ids: Vec<_> = store.list().unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["c4"]);
    }

    #[test]
    fn locking_a_missing_container_is_not_found() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::new(root.path()).lock("nope"),
            Err(Error::NotFound(_))
        ));
    }
}
