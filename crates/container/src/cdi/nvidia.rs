//! A CDI spec for the host's NVIDIA GPUs, made without any NVIDIA tool:
//! the GPUs from /proc/driver/nvidia, their device nodes, the driver's
//! user-space libraries from the ld.so cache (and /usr/local/nvidia), its
//! binaries, firmware and sockets. One device per GPU by index and by
//! UUID, and `all`.
//!
//! Everything is looked up under a host root ("/" on a real host; a fake
//! tree in tests): host paths keep that prefix, container paths do not.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::ldcache;
use super::spec::{CdiDevice, CdiSpec, ContainerEdits, DeviceNode, Mount};

pub const HOST_ROOT: &str = "/";

/// The driver's binaries worth having in a container.
const BINARIES: &[&str] = &[
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];
const BINARY_DIRS: &[&str] = &[
    "usr/bin",
    "usr/local/bin",
    "usr/local/nvidia/bin",
    "bin",
    "usr/sbin",
    "sbin",
];
/// Device nodes every GPU needs (those the host has).
const CONTROL_NODES: &[&str] = &[
    "dev/nvidiactl",
    "dev/nvidia-uvm",
    "dev/nvidia-uvm-tools",
    "dev/nvidia-modeset",
];
const SOCKETS: &[&str] = &[
    "run/nvidia-persistenced/socket",
    "run/nvidia-fabricmanager/socket",
    "tmp/nvidia-mps",
];
const LIBRARY_DIRS: &[&str] = &["usr/local/nvidia/lib64", "usr/local/nvidia/lib"];

/// Whether the host has the NVIDIA driver's control device.
pub fn host_has_gpus(root: &str) -> bool {
    Path::new(root).join("dev/nvidiactl").exists()
}

#[derive(Debug)]
struct Gpu {
    minor: u32,
    uuid: Option<String>,
}

/// The spec for the GPUs under `root`.
pub fn generate(root: &str) -> Result<CdiSpec, String> {
    let root = Path::new(root);
    let gpus = find_gpus(root);
    if gpus.is_empty() {
        return Err(format!(
            "no NVIDIA GPU under {}: no proc/driver/nvidia/gpus/*/information and no dev/nvidia[0-9]*",
            root.display()
        ));
    }
    let mut devices = Vec::new();
    let mut all = Vec::new();
    for (index, gpu) in gpus.iter().enumerate() {
        let node = device_node(root, &format!("dev/nvidia{}", gpu.minor))?;
        all.push(node.clone());
        let edits = ContainerEdits {
            device_nodes: vec![node],
            ..Default::default()
        };
        devices.push(CdiDevice {
            name: index.to_string(),
            container_edits: edits.clone(),
            ..Default::default()
        });
        if let Some(uuid) = &gpu.uuid {
            devices.push(CdiDevice {
                name: uuid.clone(),
                container_edits: edits,
                ..Default::default()
            });
        }
    }
    devices.push(CdiDevice {
        name: "all".into(),
        container_edits: ContainerEdits {
            device_nodes: all,
            ..Default::default()
        },
        ..Default::default()
    });

    let mut common = ContainerEdits::default();
    for node in CONTROL_NODES {
        if root.join(node).exists() {
            common.device_nodes.push(device_node(root, node)?);
        }
    }
    if let Ok(caps) = std::fs::read_dir(root.join("dev/nvidia-caps")) {
        let mut names: Vec<String> = caps
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            common
                .device_nodes
                .push(device_node(root, &format!("dev/nvidia-caps/{name}"))?);
        }
    }
    let read_only = ["ro", "nosuid", "nodev", "bind"];
    for path in libraries(root)
        .into_iter()
        .chain(binaries(root))
        .chain(firmware(root))
    {
        common.mounts.push(bind(root, &path, &read_only));
    }
    for socket in SOCKETS {
        if root.join(socket).exists() {
            common.mounts.push(bind(
                root,
                &format!("/{socket}"),
                &["ro", "nosuid", "nodev", "noexec", "bind"],
            ));
        }
    }
    Ok(CdiSpec {
        // Host paths and device names that start with a digit need 0.5.0.
        cdi_version: "0.5.0".into(),
        kind: "nvidia.com/gpu".into(),
        devices,
        container_edits: common,
        ..Default::default()
    })
}

fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn host_path(root: &Path, path: &str) -> Option<String> {
    (root != Path::new("/")).then(|| in_root(root, path).display().to_string())
}

fn bind(root: &Path, path: &str, options: &[&str]) -> Mount {
    Mount {
        host_path: in_root(root, path).display().to_string(),
        container_path: path.to_string(),
        typ: None,
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

fn device_node(root: &Path, relative: &str) -> Result<DeviceNode, String> {
    let path = format!("/{relative}");
    let host = in_root(root, relative);
    let meta = std::fs::metadata(&host).map_err(|e| format!("{}: {e}", host.display()))?;
    if !meta.file_type().is_char_device() {
        return Err(format!("{} is not a character device", host.display()));
    }
    Ok(DeviceNode {
        host_path: host_path(root, &path),
        path,
        typ: Some("c".into()),
        major: Some(i64::from(rustix::fs::major(meta.rdev()))),
        minor: Some(i64::from(rustix::fs::minor(meta.rdev()))),
        ..Default::default()
    })
}

/// GPUs from /proc/driver/nvidia/gpus/<pci>/information, in PCI order (the
/// order NVML numbers them), or from the /dev/nvidiaN nodes without it.
fn find_gpus(root: &Path) -> Vec<Gpu> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("proc/driver/nvidia/gpus"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    let mut gpus: Vec<Gpu> = dirs
        .iter()
        .filter_map(|dir| {
            let info = std::fs::read_to_string(dir.join("information")).ok()?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            };
            Some(Gpu {
                minor: field("Device Minor")?.parse().ok()?,
                uuid: field("GPU UUID"),
            })
        })
        .collect();
    if gpus.is_empty() {
        let mut minors: Vec<u32> = std::fs::read_dir(root.join("dev"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str()?.strip_prefix("nvidia")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        minors.sort();
        gpus = minors
            .into_iter()
            .map(|minor| Gpu { minor, uuid: None })
            .collect();
    }
    gpus
}

fn is_driver_library(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "libnvidia-",
        "libcuda.so",
        "libcudadebugger.so",
        "libnvcuvid.so",
        "libnvoptix.so",
        "libGLX_nvidia.so",
        "libEGL_nvidia.so",
        "libGLESv2_nvidia.so",
        "libGLESv1_CM_nvidia.so",
    ];
    // libnvidia-container belongs to NVIDIA's container toolkit, not the driver.
    PREFIXES.iter().any(|p| name.starts_with(p)) && !name.starts_with("libnvidia-container")
}

/// The driver's libraries, as container paths.
fn libraries(root: &Path) -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read(root.join("etc/ld.so.cache"))
        .ok()
        .and_then(|bytes| ldcache::read(&bytes).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(soname, _)| is_driver_library(soname))
        .map(|(_, path)| path)
        .collect();
    for dir in LIBRARY_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_driver_library(&name) {
                paths.push(format!("/{dir}/{name}"));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths.retain(|p| in_root(root, p).exists());
    paths
}

fn binaries(root: &Path) -> Vec<String> {
    BINARIES
        .iter()
        .filter_map(|bin| {
            BINARY_DIRS
                .iter()
                .map(|dir| format!("/{dir}/{bin}"))
                .find(|p| in_root(root, p).is_file())
        })
        .collect()
}

/// The GSP firmware of the running driver.
fn firmware(root: &Path) -> Vec<String> {
    let Some(version) = driver_version(root) else {
        return Vec::new();
    };
    ["lib/firmware/nvidia", "usr/lib/firmware/nvidia"]
        .iter()
        .map(|dir| format!("/{dir}/{version}"))
        .filter(|p| in_root(root, p).is_dir())
        .take(1)
        .collect()
}

/// From "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15 ...".
fn driver_version(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("proc/driver/nvidia/version")).ok()?;
    let line = text.lines().find(|l| l.contains("Kernel Module"))?;
    let after = line.split("Kernel Module").nth(1)?;
    after
        .split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_libraries_only() {
        for yes in [
            "libcuda.so.1",
            "libnvidia-ml.so.1",
            "libGLX_nvidia.so.0",
            "libnvidia-ptxjitcompiler.so.1",
        ] {
            assert!(is_driver_library(yes), "{yes}");
        }
        for no in [
            "libc.so.6",
            "libnvidia-container.so.1",
            "libcudart.so.12",
            "libnvrtc.so",
        ] {
            assert!(!is_driver_library(no), "{no}");
        }
    }

    #[test]
    fn reads_the_driver_version() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("proc/driver/nvidia");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version: gcc 12\n",
        )
        .unwrap();
        assert_eq!(driver_version(root.path()).as_deref(), Some("550.54.15"));
    }

    #[test]
    fn no_gpu_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let err = generate(root.path().to_str().unwrap()).unwrap_err();
        assert!(err.contains("no NVIDIA GPU"), "{err}");
    }
}
