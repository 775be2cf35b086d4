//! Reads glibc's /etc/ld.so.cache (the "glibc-ld.so.cache1.1" format), to
//! find where the host keeps a library without running ldconfig -p.

/// `(soname, path)` of each library of this machine's architecture.
pub fn read(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    const HEADER: usize = 48;
    const ENTRY: usize = 24;
    // An old-format table may come first: the new one is found by magic.
    let start = bytes
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .ok_or("no glibc-ld.so.cache1.1 table")?;
    let cache = &bytes[start..];
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(cache.get(at..at + 4)?.try_into().ok()?))
    };
    let nlibs = u32_at(20).ok_or("truncated header")? as usize;
    let string = |offset: u32| -> Option<String> {
        let s = cache.get(offset as usize..)?;
        let end = s.iter().position(|&b| b == 0)?;
        String::from_utf8(s[..end].to_vec()).ok()
    };
    let mut libs = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = HEADER + i * ENTRY;
        let (Some(flags), Some(key), Some(value)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8))
        else {
            return Err(format!("truncated at entry {i}"));
        };
        if flags & 0xff != ELF_LIBC6 || flags & 0xff00 != ARCH_FLAG {
            continue;
        }
        let (Some(soname), Some(path)) = (string(key), string(value)) else {
            return Err(format!("entry {i} points outside the cache"));
        };
        libs.push((soname, path));
    }
    Ok(libs)
}

const ELF_LIBC6: u32 = 0x03;
#[cfg(target_arch = "x86_64")]
const ARCH_FLAG: u32 = 0x0300;
#[cfg(target_arch = "aarch64")]
const ARCH_FLAG: u32 = 0x0a00;

#[cfg(test)]
mod tests {
    #[test]
    fn finds_libc_in_this_hosts_cache() {
        let bytes = std::fs::read("/etc/ld.so.cache").unwrap();
        let libs = super::read(&bytes).unwrap();
        let (_, path) = libs.iter().find(|(name, _)| name == "libc.so.6").unwrap();
        assert!(std::path::Path::new(path).exists(), "{path}");
    }

    #[test]
    fn rejects_what_is_not_a_cache() {
        assert!(super::read(b"not a cache").is_err());
    }
}
