//! The v1 → v2 conversions runc and crun apply, so that one spec means the
//! same on both cgroup versions.

use crate::{Error, Result};

/// cpu.shares (2..262144) → cpu.weight (1..10000), runc 1.3.2's mapping
/// (opencontainers/cgroups 0.0.4): a quadratic in log2(shares) through
/// (2, 1), (1024, 100) and (262144, 10000), so that the v1 default maps
/// onto the v2 default (the older linear mapping gave 1024 shares weight
/// 39). The systemd driver's CPUWeight uses it too.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// blkio.weight (10..1000) → io.weight (1..10000).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = u64::from(weight.clamp(10, 1000));
    1 + ((weight - 10) * 9999) / 990
}

/// v1 memory.memsw (memory + swap) → v2 memory.swap.max (swap alone).
/// `None` leaves swap unset; `Some(-1)` means "max".
pub fn memsw_to_swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<i64>> {
    let memory = limit.unwrap_or(0);
    let memsw = swap.unwrap_or(0);
    // An unlimited memory limit with no swap setting means both unlimited, as
    // on v1 where memsw follows the memory limit.
    if memory == -1 && memsw == 0 {
        return Ok(Some(-1));
    }
    if memsw == 0 {
        return Ok(None);
    }
    if memsw == -1 {
        return Ok(Some(-1));
    }
    let invalid = |message: &str| Error::Invalid {
        field: "linux.resources.memory.swap".into(),
        message: message.into(),
    };
    if memory <= 0 {
        return Err(invalid("a swap limit needs a memory limit"));
    }
    if memsw < memory {
        return Err(invalid(
            "memory+swap limit must be at least the memory limit",
        ));
    }
    Ok(Some(memsw - memory))
}

/// A limit in cgroup v2 notation, where a negative value means "max".
pub fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// The resources as runc reads them: a zero memory limit, reservation or
/// swap, zero cpu shares, quota, period or realtime values, a zero pids
/// limit, zero block IO weights (per device too, where they are written)
/// and empty cpu or memory-node lists mean
/// "not set" (engines send them so: docker's blockIO.weight is 0 unless
/// asked for), not "limit to nothing".
pub fn without_unset(r: &oci_spec::runtime::LinuxResources) -> oci_spec::runtime::LinuxResources {
    fn nz_i64(v: Option<i64>) -> Option<i64> {
        v.filter(|v| *v != 0)
    }
    fn nz_u64(v: Option<u64>) -> Option<u64> {
        v.filter(|v| *v != 0)
    }
    let mut r = r.clone();
    if let Some(mut m) = *r.memory() {
        m.set_limit(nz_i64(m.limit()));
        m.set_reservation(nz_i64(m.reservation()));
        m.set_swap(nz_i64(m.swap()));
        #[allow(deprecated)]
        m.set_kernel(nz_i64(m.kernel()));
        m.set_kernel_tcp(nz_i64(m.kernel_tcp()));
        r.set_memory(Some(m));
    }
    if let Some(mut c) = r.cpu().clone() {
        c.set_shares(nz_u64(c.shares()));
        c.set_quota(nz_i64(c.quota()));
        c.set_period(nz_u64(c.period()));
        c.set_realtime_runtime(nz_i64(c.realtime_runtime()));
        c.set_realtime_period(nz_u64(c.realtime_period()));
        c.set_cpus(c.cpus().clone().filter(|s| !s.is_empty()));
        c.set_mems(c.mems().clone().filter(|s| !s.is_empty()));
        r.set_cpu(Some(c));
    }
    if r.pids().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(mut b) = r.block_io().clone() {
        b.set_weight(b.weight().filter(|w| *w != 0));
        b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
        r.set_block_io(Some(b));
    }
    r
}

/// pids.max: a negative limit means no limit.
pub fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// The page size of a hugepageLimits entry as cgroup file names spell it
/// (`2MB`, `1GB`, `64KB`).
pub fn page_size(size: &str) -> Result<&str> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let valid = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB");
    if valid {
        Ok(size)
    } else {
        Err(Error::Invalid {
            field: "linux.resources.hugepageLimits.pageSize".into(),
            message: format!("{size:?} is not a page size like 2MB or 1GB"),
        })
    }
}

/// An rdma.max line: `mlx4_0 hca_handle=2 hca_object=2000`.
pub fn rdma_line(device: &str, limits: &oci_spec::runtime::LinuxRdma) -> String {
    let mut line = device.to_string();
    if let Some(handles) = limits.hca_handles() {
        line.push_str(&format!(" hca_handle={handles}"));
    }
    if let Some(objects) = limits.hca_objects() {
        line.push_str(&format!(" hca_object={objects}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shares_map_like_runc() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(1), 1);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(3), 2);
        assert_eq!(cpu_shares_to_weight(512), 59);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(2048), 174);
        assert_eq!(cpu_shares_to_weight(262_143), 10_000);
        assert_eq!(cpu_shares_to_weight(2000), 170);
        assert_eq!(cpu_shares_to_weight(22000), 1204);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn blkio_weights_map_onto_io_weights() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn memsw_becomes_swap_alone() {
        assert_eq!(memsw_to_swap_max(Some(100), Some(300)).unwrap(), Some(200));
        assert_eq!(memsw_to_swap_max(Some(100), None).unwrap(), None);
        assert_eq!(memsw_to_swap_max(Some(-1), None).unwrap(), Some(-1));
        assert_eq!(memsw_to_swap_max(Some(100), Some(-1)).unwrap(), Some(-1));
        assert!(memsw_to_swap_max(Some(300), Some(100)).is_err());
        assert!(memsw_to_swap_max(None, Some(100)).is_err());
    }

    #[test]
    fn page_sizes_are_checked() {
        assert_eq!(page_size("2MB").unwrap(), "2MB");
        assert_eq!(page_size("64KB").unwrap(), "64KB");
        assert!(page_size("2M").is_err());
        assert!(page_size("MB").is_err());
        assert!(page_size("../2MB").is_err());
    }

    #[test]
    fn zeros_are_unset_as_runc_reads_them() {
        let r: oci_spec::runtime::LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":0,"reservation":5},"cpu":{"shares":0,"quota":0,"cpus":""},
                "pids":{"limit":0},"blockIO":{"weight":0}}"#,
        )
        .unwrap();
        let r = without_unset(&r);
        let m = r.memory().unwrap();
        assert_eq!((m.limit(), m.reservation()), (None, Some(5)));
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(
            (c.shares(), c.quota(), c.cpus().clone()),
            (None, None, None)
        );
        assert!(r.pids().is_none());
        assert_eq!(r.block_io().as_ref().unwrap().weight(), None);
    }

    #[test]
    fn negative_limits_are_max() {
        assert_eq!(max_or(-1), "max");
        assert_eq!(max_or(42), "42");
    }
}
