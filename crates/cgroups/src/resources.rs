//! Facts about a spec's `linux.resources` as a whole: whether it asks for
//! any limit, and how `update` merges a change into it.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources};

/// Whether `r` asks for a limit (device rules aside, which every container
/// gets).
pub fn has_limits(r: &LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().is_some()
        || r.network().is_some()
        || r.rdma().is_some()
        || r.unified().is_some()
}

/// Copies each field `change` sets into `base`, leaving the others.
macro_rules! take {
    ($base:expr, $change:expr; copy: $($get:ident / $set:ident),*) => {
        $(if let Some(v) = $change.$get() { $base.$set(Some(v)); })*
    };
    ($base:expr, $change:expr; clone: $($get:ident / $set:ident),*) => {
        $(if let Some(v) = $change.$get().clone() { $base.$set(Some(v)); })*
    };
}

/// Merges `change` into `base` field by field, as `update` records it: what
/// `change` sets replaces, what it leaves out stays; maps merge by key;
/// lists are replaced whole.
pub fn merge(base: &mut LinuxResources, change: &LinuxResources) {
    fn sub<T: Default>(base: &mut Option<T>, change: &Option<T>, f: impl FnOnce(&mut T, &T)) {
        if let Some(change) = change {
            f(base.get_or_insert_with(T::default), change);
        }
    }
    sub(
        base.memory_mut(),
        change.memory(),
        |b: &mut LinuxMemory, c| {
            take!(b, c; copy: limit / set_limit, reservation / set_reservation, swap / set_swap,
            kernel / set_kernel, kernel_tcp / set_kernel_tcp, swappiness / set_swappiness,
            disable_oom_killer / set_disable_oom_killer, use_hierarchy / set_use_hierarchy,
            check_before_update / set_check_before_update);
        },
    );
    sub(base.cpu_mut(), change.cpu(), |b: &mut LinuxCpu, c| {
        take!(b, c; copy: shares / set_shares, quota / set_quota, idle / set_idle,
            burst / set_burst, period / set_period, realtime_runtime / set_realtime_runtime,
            realtime_period / set_realtime_period);
        take!(b, c; clone: cpus / set_cpus, mems / set_mems);
    });
    if let Some(pids) = change.pids() {
        base.set_pids(Some(*pids));
    }
    sub(
        base.block_io_mut(),
        change.block_io(),
        |b: &mut LinuxBlockIo, c| {
            take!(b, c; copy: weight / set_weight, leaf_weight / set_leaf_weight);
            take!(b, c; clone: weight_device / set_weight_device,
            throttle_read_bps_device / set_throttle_read_bps_device,
            throttle_write_bps_device / set_throttle_write_bps_device,
            throttle_read_iops_device / set_throttle_read_iops_device,
            throttle_write_iops_device / set_throttle_write_iops_device);
        },
    );
    take!(base, change; clone: hugepage_limits / set_hugepage_limits, devices / set_devices);
    sub(
        base.network_mut(),
        change.network(),
        |b: &mut LinuxNetwork, c| {
            take!(b, c; copy: class_id / set_class_id);
            take!(b, c; clone: priorities / set_priorities);
        },
    );
    sub(base.rdma_mut(), change.rdma(), |b, c| {
        b.extend(c.iter().map(|(k, v)| (k.clone(), *v)));
    });
    sub(base.unified_mut(), change.unified(), |b, c| {
        b.extend(c.iter().map(|(k, v)| (k.clone(), v.clone())));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn merging_keeps_what_the_change_does_not_mention() {
        let mut base = resources(
            r#"{"memory":{"limit":1,"swap":2},"pids":{"limit":5},"unified":{"a":"1","b":"2"}}"#,
        );
        merge(
            &mut base,
            &resources(r#"{"memory":{"limit":9},"cpu":{"shares":2},"unified":{"b":"3"}}"#),
        );
        let want = resources(
            r#"{"memory":{"limit":9,"swap":2},"pids":{"limit":5},"cpu":{"shares":2},"unified":{"a":"1","b":"3"}}"#,
        );
        assert_eq!(
            serde_json::to_value(&base).unwrap(),
            serde_json::to_value(&want).unwrap()
        );
    }

    #[test]
    fn only_devices_is_no_limit() {
        assert!(!has_limits(&resources(
            r#"{"devices":[{"allow":false,"access":"rwm"}]}"#
        )));
        assert!(has_limits(&resources(r#"{"pids":{"limit":5}}"#)));
        assert!(has_limits(&resources(r#"{"memory":{}}"#)));
    }
}
