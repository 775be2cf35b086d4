//! Paths inside the container's root, resolved by the kernel with
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): a symlink or `..` of
//! the image can never lead out of the root, and no /proc magic link is
//! followed. Creation goes component by component through the descriptor
//! of the parent, so nothing is ever made outside the root either.
//!
//! Written here rather than taken from pathrs's `Root`, which berth used
//! before: pathrs re-checks every step through procfs to serve kernels
//! without openat2 (some sixty system calls per mount point, a third of the
//! init's work). berth needs openat2 (Linux 5.6) anyway, and with it the
//! kernel's own resolution is the whole guarantee.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The container's root directory, held open.
pub struct RootDir {
    fd: OwnedFd,
}

impl RootDir {
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir { fd })
    }

    fn openat2(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let flags = flags | OFlags::PATH | OFlags::CLOEXEC;
        // EAGAIN: a rename or mount elsewhere raced the lookup; the kernel
        // asks for a retry rather than risk an escape.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                Err(Errno::NOSYS) => {
                    return Err(io::Error::other(
                        "openat2 is missing: berth needs Linux 5.6 or later",
                    ))
                }
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// `rel` (relative to the root; symlinks followed, inside the root).
    pub fn resolve(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.openat2(rel, OFlags::empty())
    }

    /// `rel`, not following a final symlink.
    pub fn resolve_nofollow(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.openat2(rel, OFlags::NOFOLLOW)
    }

    /// The directory `rel`, made (with its parents, `mode`) when missing.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> io::Result<OwnedFd> {
        let rel: PathBuf = normal_components(rel).collect();
        self.mkdir_all_normal(&rel, mode, &mut 0)
    }

    /// mkdir_all of a path of normal components only: the missing part is
    /// made from the deepest parent that exists, not walked from the root.
    /// A dangling symlink on the way is followed, inside the root, and what
    /// it names is made (as runc does); `links` counts the symlinks
    /// followed, against loops.
    fn mkdir_all_normal(&self, rel: &Path, mode: u32, links: &mut u32) -> io::Result<OwnedFd> {
        match self.openat2(rel, OFlags::DIRECTORY) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            found => return found,
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        let parent_fd = self.mkdir_all_normal(parent, mode, links)?;
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => {}
            // Made meanwhile, or a dangling symlink.
            Err(Errno::EXIST) => {
                if let Some(target) = self.dangling_target(&parent_fd, parent, name, links)? {
                    return self.mkdir_all_normal(&target, mode, links);
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.openat2(rel, OFlags::DIRECTORY)
    }

    /// When `name` in `parent_fd` (the directory `parent` of the root) is a
    /// symlink whose target is missing, that target as a path of normal
    /// components inside the root.
    fn dangling_target(
        &self,
        parent_fd: &OwnedFd,
        parent: &Path,
        name: &std::ffi::OsStr,
        links: &mut u32,
    ) -> io::Result<Option<PathBuf>> {
        let rel = parent.join(name);
        if !matches!(self.openat2(&rel, OFlags::empty()), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
        {
            return Ok(None);
        }
        let Ok(target) = rustix::fs::readlinkat(parent_fd, name, Vec::new()) else {
            return Ok(None);
        };
        *links += 1;
        if *links > 40 {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = Path::new(std::ffi::OsStr::from_bytes(target.to_bytes()));
        let base = if target.is_absolute() {
            Path::new("")
        } else {
            parent
        };
        let mut resolved = PathBuf::new();
        for component in base.join(target).components() {
            match component {
                Component::Normal(part) => resolved.push(part),
                // `..` at the root stays at the root, as RESOLVE_IN_ROOT has it.
                Component::ParentDir => {
                    resolved.pop();
                }
                _ => {}
            }
        }
        Ok(Some(resolved))
    }

    /// The parent directory of `rel` (made when missing) and its last name.
    fn parent<'p>(&self, rel: &'p Path) -> io::Result<(OwnedFd, &'p Path)> {
        let name = rel
            .file_name()
            .map(Path::new)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.mkdir_all(parent, 0o755)?, name))
    }

    /// An empty regular file at `rel` unless something is there already;
    /// returns what is there (a final symlink followed, inside the root).
    /// A final symlink that dangles is followed, inside the root, and the
    /// file made where it points (as runc does).
    pub fn create_file(&self, rel: &Path, mode: u32) -> io::Result<OwnedFd> {
        let mut rel: PathBuf = normal_components(rel).collect();
        let mut links = 0;
        loop {
            let (parent, name) = self.parent(&rel)?;
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(mode)) {
                Ok(_) => {}
                Err(Errno::EXIST) => {
                    let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
                    let name = name.as_os_str().to_os_string();
                    if let Some(target) = self.dangling_target(&parent, &dir, &name, &mut links)? {
                        rel = target;
                        continue;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            return self.resolve(&rel);
        }
    }

    /// mknodat inside the root; EEXIST is the caller's to judge.
    pub fn mknod(&self, rel: &Path, kind: FileType, mode: u32, dev: u64) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        rustix::fs::mknodat(&parent, name, kind, Mode::from_raw_mode(mode), dev)?;
        Ok(())
    }

    /// symlinkat inside the root; EEXIST is the caller's to judge.
    pub fn symlink(&self, rel: &Path, target: &str) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        rustix::fs::symlinkat(target, &parent, name)?;
        Ok(())
    }

    /// Removes the non-directory `rel` (not following a final symlink).
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty())?;
        Ok(())
    }
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn normal_components(rel: &Path) -> impl Iterator<Item = &std::ffi::OsStr> {
    rel.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        dir
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside_the_root() {
        let dir = scratch("escape");
        symlink("/", dir.join("root/abs")).unwrap();
        symlink("../../..", dir.join("root/up")).unwrap();
        let root = RootDir::open(&dir.join("root")).unwrap();
        root.mkdir_all(Path::new("abs/made"), 0o755).unwrap();
        root.mkdir_all(Path::new("up/also"), 0o755).unwrap();
        root.create_file(Path::new("abs/file"), 0o644).unwrap();
        assert!(dir.join("root/made").is_dir());
        assert!(dir.join("root/also").is_dir());
        assert!(dir.join("root/file").is_file());
        assert!(!Path::new("/made").exists() && !Path::new("/also").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dangling_symlink_is_followed_inside_the_root() {
        let dir = scratch("dangling");
        symlink("/nowhere/x", dir.join("root/d")).unwrap();
        symlink("../../jump/file", dir.join("root/f")).unwrap();
        symlink("/elsewhere", dir.join("root/jump")).unwrap();
        symlink("loop", dir.join("root/loop")).unwrap();
        let root = RootDir::open(&dir.join("root")).unwrap();
        root.mkdir_all(Path::new("d/sub"), 0o755).unwrap();
        assert!(dir.join("root/nowhere/x/sub").is_dir());
        root.create_file(Path::new("f"), 0o644).unwrap();
        assert!(dir.join("root/elsewhere/file").is_file());
        let err = root.mkdir_all(Path::new("loop/x"), 0o755).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert!(!Path::new("/nowhere").exists() && !Path::new("/elsewhere").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_nodes_and_links_are_made_where_asked() {
        let dir = scratch("make");
        let root = RootDir::open(&dir.join("root")).unwrap();
        root.symlink(Path::new("dev/fd"), "/proc/self/fd").unwrap();
        let err = root.symlink(Path::new("dev/fd"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        root.mknod(Path::new("dev/p"), FileType::Fifo, 0o600, 0)
            .unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("root/dev/fd")).unwrap(),
            Path::new("/proc/self/fd")
        );
        root.remove_file(Path::new("dev/p")).unwrap();
        assert!(!dir.join("root/dev/p").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
