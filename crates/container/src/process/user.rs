//! The container process's user: groups, gid, uid, HOME and umask.

use std::path::Path;

use oci_spec::runtime::User;
use rustix::process::{Gid, Uid};

use crate::{Context, Result};

/// Sets the supplementary groups (user.additionalGids), as root. Skipped in
/// a user namespace whose setgroups is denied, where only an empty list
/// would be allowed anyway.
pub fn set_groups(user: &User, setgroups_allowed: bool) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if !setgroups_allowed {
        return Ok(());
    }
    rustix::thread::set_thread_groups(&gids).ctx(|| "process.user.additionalGids: setgroups")
}

/// Switches to user.gid and user.uid, keeping the permitted capabilities so
/// that the spec's sets can be applied afterwards.
pub fn switch(user: &User) -> Result<()> {
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .ctx(|| format!("process.user.gid {}: setresgid", user.gid()))?;
    rustix::thread::set_keep_capabilities(true).ctx(|| "prctl(PR_SET_KEEPCAPS)")?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .ctx(|| format!("process.user.uid {}: setresuid", user.uid()))?;
    rustix::thread::set_keep_capabilities(false).ctx(|| "prctl(PR_SET_KEEPCAPS)")
}

/// The home directory of `uid` in the container's /etc/passwd, or "/".
pub fn home_of(uid: u32, passwd: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(passwd) else {
        return "/".into();
    };
    home_in(uid, &text).unwrap_or_else(|| "/".into())
}

fn home_in(uid: u32, passwd: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| fields[5].to_string())
    })
}

/// The umask the process starts with: user.umask, or 0022 as in runc.
pub fn apply_umask(user: &User) {
    let mask = user.umask().unwrap_or(0o022);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask & 0o777));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\nbad\n";
        assert_eq!(home_in(33, passwd).as_deref(), Some("/var/www"));
        assert_eq!(home_in(0, passwd).as_deref(), Some("/root"));
        assert_eq!(home_in(7, passwd), None);
    }
}
