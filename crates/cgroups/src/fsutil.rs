//! File access to cgroupfs, with errors that name the file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `value` to `dir/file` in one write(2), as cgroupfs wants.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| Error::Write {
        path,
        value: value.to_string(),
        source,
    })
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| Error::Io { path, source })
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Creates `base/rel` and its missing parents, calling `init` on each new
/// directory (after its parent is initialised) and recording it in `created`.
/// A parent removed meanwhile (the last other container below it, deleted
/// concurrently, took it) is made again.
pub fn mkdir_all(
    base: &Path,
    rel: &Path,
    created: &mut Vec<PathBuf>,
    mut init: impl FnMut(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let mut attempts = 0;
    'again: loop {
        let mut dir = base.to_path_buf();
        for component in rel.components() {
            dir.push(component);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    created.push(dir.clone());
                    init(&dir)?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 10 => {
                    attempts += 1;
                    continue 'again;
                }
                Err(source) => return Err(Error::Io { path: dir, source }),
            }
        }
        return Ok(dir);
    }
}

/// Removes a cgroup directory, waiting briefly for exiting tasks to leave it.
/// A directory that is already gone is not an error.
pub fn remove_dir(dir: &Path) -> Result<()> {
    let mut delay = std::time::Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && delay.as_millis() < 256 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(source) => {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Removes the directories that creating a cgroup made, deepest first; a
/// parent still used by another cgroup (not empty, busy) stays.
pub fn remove_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if let Err(e) = fs::remove_dir(dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!("keeping cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// Removes the parents that creating a cgroup made, once its `leaves` are
/// gone (or stay busy): `created` holds the leaves too, which are not tried
/// again.
pub fn remove_created_parents(created: &[PathBuf], leaves: &[&Path]) {
    let parents: Vec<PathBuf> = created
        .iter()
        .filter(|d| !leaves.contains(&d.as_path()))
        .cloned()
        .collect();
    remove_created(&parents);
}

/// Refuses a container's cgroup that had to be new (`CgroupsPath::must_be_new`)
/// but existed already, removing what was made for the others.
pub fn check_new(leaves: &[&Path], created: &[PathBuf]) -> Result<()> {
    let Some(existing) = leaves.iter().find(|l| !created.iter().any(|c| c == *l)) else {
        return Ok(());
    };
    remove_created(created);
    Err(Error::Invalid {
        field: "linux.cgroupsPath".into(),
        message: format!(
            "not set, and the default cgroup {} exists already: berth joins no cgroup it did not make (name another container id, or a cgroupsPath)",
            existing.display()
        ),
    })
}

/// Parses a cgroup.procs file.
pub fn parse_pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}
