//! CVE-2019-5736: berth's init and exec child are clones of berth, so until
//! they exec the user's program their /proc/<pid>/exe is berth's binary; a
//! `#!/proc/self/exe` script run by them makes the kernel start that binary
//! again inside the container, where the image's code (its dynamic loader,
//! an /etc/ld.so.preload library) can open /proc/self/exe and write to it.
//!
//! The verbs that put a process into a container therefore run berth from a
//! copy that cannot be written: the binary is re-executed from a read-only
//! detached mount of itself (a mount no one else can reach or remount, so
//! any open of it for writing fails with EROFS, also through an O_PATH
//! descriptor reopened later), or, where berth may not make mounts
//! (rootless), from a sealed memfd copy. Whether berth already runs from
//! such a copy is read from the kernel (the mount's read-only flag, the
//! memfd's seals), never from anything the caller could set.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags, StatVfsMountFlags};
use rustix::io::Errno;
use rustix::mount::OpenTreeFlags;

use crate::{Context, Error, Result};

/// The seals of berth's memfd copy: no write, resize or further change.
const COPY_SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE)
    .union(SealFlags::FUTURE_WRITE);

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Returns when berth runs from a binary that cannot be written; otherwise
/// re-executes berth, with the same arguments, environment and descriptors,
/// from such a copy (and does not return unless that fails).
pub fn ensure_sealed() -> Result<()> {
    let exe = rustix::fs::open(
        c"/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /proc/self/exe")?;
    if is_sealed(exe.as_fd()) {
        return Ok(());
    }
    let copy = match read_only_mount_of(&exe) {
        Ok(tree) => tree,
        // No right to make mounts (a rootless berth), or a kernel without
        // the new mount API: a sealed copy in memory instead.
        Err(Errno::PERM | Errno::NOSYS | Errno::INVAL) => sealed_memfd_copy(&exe)?,
        Err(e) => return Err(e).ctx(|| "make a read-only mount of berth's binary"),
    };
    // The re-executed berth must find itself sealed, or it would go round.
    if !is_sealed(copy.as_fd()) {
        return Err(Error::Message(
            "the read-only copy of berth's binary does not read as sealed".into(),
        ));
    }
    reexec(copy.as_fd())
}

/// Whether `exe` is on a read-only mount or is a memfd sealed against
/// writes.
fn is_sealed(exe: BorrowedFd) -> bool {
    let read_only =
        rustix::fs::fstatvfs(exe).is_ok_and(|st| st.f_flag.contains(StatVfsMountFlags::RDONLY));
    read_only || rustix::fs::fcntl_get_seals(exe).is_ok_and(|s| s.contains(COPY_SEALS))
}

/// A detached mount of `exe` alone, made read-only before anything can see
/// it; the descriptor is the file at its root.
fn read_only_mount_of(exe: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        exe,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    crate::sys::mount_setattr(tree.as_fd(), MOUNT_ATTR_RDONLY, 0, false)
        .map_err(|e| Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EINVAL)))?;
    Ok(tree)
}

/// A memfd holding a copy of `exe`, sealed against every change.
fn sealed_memfd_copy(exe: &OwnedFd) -> Result<OwnedFd> {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable where
    // vm.memfd_noexec asks for non-executable memfds by default; older
    // kernels refuse the flag and make every memfd executable.
    let memfd = match rustix::fs::memfd_create("berth", flags | MemfdFlags::EXEC) {
        Err(Errno::INVAL) => rustix::fs::memfd_create("berth", flags),
        other => other,
    }
    .ctx(|| "memfd_create for a sealed copy of berth's binary")?;
    let size = rustix::fs::fstat(exe)
        .ctx(|| "stat /proc/self/exe")?
        .st_size as usize;
    let mut copied = 0;
    while copied < size {
        match rustix::fs::sendfile(&memfd, exe, None, size - copied) {
            Ok(0) => break,
            Ok(n) => copied += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e).ctx(|| "copy berth's binary into a memfd"),
        }
    }
    if copied != size {
        return Err(Error::Message(format!(
            "copy berth's binary into a memfd: {copied} of {size} bytes"
        )));
    }
    rustix::fs::fcntl_add_seals(&memfd, COPY_SEALS).ctx(|| "seal the memfd copy of berth")?;
    Ok(memfd)
}

/// execveat(copy, "", argv, environ, AT_EMPTY_PATH): the same process with
/// the same arguments, environment and inherited descriptors (`copy` itself
/// is close-on-exec, which an ELF binary allows).
fn reexec(copy: BorrowedFd) -> Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).expect("an argument has no NUL"))
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    let empty: &CStr = c"";
    // SAFETY: argv is a NULL-terminated array of C strings that outlive the
    // call; environ is the process's own environment, unchanged by berth so
    // far; on success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            copy.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            environ,
            libc::AT_EMPTY_PATH,
        );
    }
    Err(std::io::Error::last_os_error()).ctx(|| "re-execute berth from its sealed copy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memfd_copy_reads_as_sealed_and_refuses_writes() {
        let exe = rustix::fs::open(
            c"/proc/self/exe",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let copy = sealed_memfd_copy(&exe).unwrap();
        assert!(is_sealed(copy.as_fd()));
        assert_eq!(rustix::io::write(&copy, b"x"), Err(Errno::PERM));
        let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
        let wrote = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(wrote.is_err(), "a write through {path} went in");
    }

    #[test]
    fn the_read_only_mount_refuses_writes_through_proc() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: making a detached mount needs root");
            return;
        }
        // Not the running test binary: the kernel refuses writes to that
        // (ETXTBSY) whatever its mount.
        let file = tempfile::NamedTempFile::new().unwrap();
        let fd: OwnedFd = std::fs::File::open(file.path()).unwrap().into();
        assert!(
            !is_sealed(fd.as_fd()),
            "the temporary file is on a read-only mount"
        );
        let tree = read_only_mount_of(&fd).unwrap();
        assert!(is_sealed(tree.as_fd()));
        let path = format!("/proc/self/fd/{}", tree.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        assert!(std::fs::OpenOptions::new()
            .write(true)
            .open(file.path())
            .is_ok());
    }
}
