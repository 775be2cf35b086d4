//! linux.cgroupsPath, read as runc reads it with its cgroupfs driver.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// Where a container's cgroup goes, relative to a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// An absolute cgroupsPath: below the root of each hierarchy.
    Absolute(PathBuf),
    /// A relative cgroupsPath: below the cgroup of the calling process.
    Relative(PathBuf),
    /// No cgroupsPath: `/<id>`, below the root of each hierarchy, as runc
    /// places it when called from the root cgroup. No shared parent: one
    /// would be made and removed again around every lone container (on a
    /// v1 host, in each hierarchy: ~1.3 ms of a `run`). Only a cgroup berth
    /// makes is used this way, never one that exists already (an id must
    /// not make a container join `system.slice`).
    Default(String),
}

impl CgroupsPath {
    /// Reads linux.cgroupsPath; a path with `.` or `..` components is refused,
    /// so that no spec can reach outside the cgroup hierarchy.
    pub fn from_spec(path: Option<&Path>, id: &str) -> Result<CgroupsPath> {
        let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(CgroupsPath::Default(id.to_string()));
        };
        let mut rel = PathBuf::new();
        for component in path.components() {
            match component {
                Component::RootDir => {}
                Component::Normal(name) => rel.push(name),
                _ => {
                    return Err(Error::Invalid {
                        field: "linux.cgroupsPath".into(),
                        message: format!("{:?} must not contain \".\" or \"..\"", path),
                    })
                }
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(Error::Invalid {
                field: "linux.cgroupsPath".into(),
                message: format!("{path:?} names the root cgroup"),
            });
        }
        Ok(if path.is_absolute() {
            CgroupsPath::Absolute(rel)
        } else {
            CgroupsPath::Relative(rel)
        })
    }

    /// The container's cgroup relative to the mount point of a hierarchy whose
    /// mount root is `mount_root`, given the caller's cgroup `own` in it.
    pub(crate) fn below_mount(&self, mount_root: &Path, own: Option<&Path>) -> PathBuf {
        match self {
            CgroupsPath::Absolute(rel) => rel.clone(),
            CgroupsPath::Default(id) => PathBuf::from(id),
            CgroupsPath::Relative(rel) => {
                let own = own.unwrap_or(Path::new("/"));
                let own = own.strip_prefix(mount_root).unwrap_or(own);
                let own = own.strip_prefix("/").unwrap_or(own);
                own.join(rel)
            }
        }
    }

    /// Whether the container's cgroup must be one berth makes now.
    pub(crate) fn must_be_new(&self) -> bool {
        matches!(self, CgroupsPath::Default(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_empty_path_is_the_default() {
        assert_eq!(
            CgroupsPath::from_spec(None, "c1").unwrap(),
            CgroupsPath::Default("c1".into())
        );
        assert_eq!(
            CgroupsPath::from_spec(Some(Path::new("")), "c1").unwrap(),
            CgroupsPath::Default("c1".into())
        );
        assert_eq!(
            CgroupsPath::Default("c1".into()).below_mount(Path::new("/"), None),
            PathBuf::from("c1")
        );
    }

    #[test]
    fn absolute_paths_are_below_the_hierarchy_root() {
        let p = CgroupsPath::from_spec(Some(Path::new("/a/b")), "c").unwrap();
        assert_eq!(p, CgroupsPath::Absolute("a/b".into()));
        assert_eq!(
            p.below_mount(Path::new("/"), Some(Path::new("/user.slice"))),
            PathBuf::from("a/b")
        );
    }

    #[test]
    fn relative_paths_are_below_the_callers_cgroup() {
        let p = CgroupsPath::from_spec(Some(Path::new("x/y")), "c").unwrap();
        assert_eq!(
            p.below_mount(Path::new("/"), Some(Path::new("/user.slice/s1"))),
            PathBuf::from("user.slice/s1/x/y")
        );
        // Inside a container the mount root is the container's own cgroup.
        assert_eq!(
            p.below_mount(Path::new("/docker/abc"), Some(Path::new("/docker/abc/sub"))),
            PathBuf::from("sub/x/y")
        );
    }

    #[test]
    fn dot_dot_is_refused() {
        let err = CgroupsPath::from_spec(Some(Path::new("/a/../../etc")), "c").unwrap_err();
        assert!(err.to_string().starts_with("linux.cgroupsPath:"), "{err}");
        assert!(CgroupsPath::from_spec(Some(Path::new("/")), "c").is_err());
    }
}
