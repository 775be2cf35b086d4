#!/usr/bin/env python3
"""The CRI scenarios of tests/cri/run.sh: a client in kubelet's place that
drives containerd's CRI plugin, whose runtime handler runs the runtime under
test, through pods as kubelet would, and checks from the host what the
runtime made (namespaces, cgroups, processes, state, mounts). One PASS/FAIL
line per scenario, then `N passed, N failed`; exits 1 on any failure.

Environment: CRI_SOCKET (containerd's socket), CRI_HANDLER (the runtime
handler), CRI_WORK (a scratch directory), CRI_RUNTIME (the runtime's
binary), CRI_RUNTIME_ROOT (the runtime's --root under the shim), CRI_SYSTEMD
(true: containerd's SystemdCgroup is on)."""

import json
import os
import sys
import time
import uuid

import grpc

import cri_pb2 as cri

SOCKET = os.environ["CRI_SOCKET"]
HANDLER = os.environ["CRI_HANDLER"]
WORK = os.environ["CRI_WORK"]
RUNTIME = os.environ["CRI_RUNTIME"]
RUNTIME_ROOT = os.environ["CRI_RUNTIME_ROOT"]
IMAGE = "localhost/busybox:cri"
# The pods' cgroups sit under a parent of this run's, as kubelet's sit
# under kubepods: a directory, or with systemd a slice (berthcriRUN.slice,
# which systemd makes for berthcriRUN-podUID.slice).
SYSTEMD = os.environ.get("CRI_SYSTEMD") == "true"
CGROUP_PARENT = "berthcri" + uuid.uuid4().hex[:8]
MiB = 1024 * 1024
LOOP = "while true; do sleep 0.2; done"
IGNORES_TERM = "trap '' TERM; " + LOOP

channel = grpc.insecure_channel("unix://" + SOCKET)


def rpc(request, timeout=60):
    """The CRI call that takes `request` (a FooRequest calls Foo)."""
    name = type(request).__name__.removesuffix("Request")
    service = "ImageService" if name == "ImageStatus" else "RuntimeService"
    call = channel.unary_unary(
        f"/runtime.v1.{service}/{name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=getattr(cri, name + "Response").FromString,
    )
    return call(request, timeout=timeout)


class Pod:
    """A pod sandbox and its containers, as kubelet keeps track of them."""

    def __init__(self, name, privileged=False, pid=cri.CONTAINER, sysctls=None):
        self.uid = uuid.uuid4().hex
        self.log_dir = os.path.join(WORK, "logs", name)
        os.makedirs(self.log_dir, exist_ok=True)
        # Every container of the pod takes the pod's namespace options, as
        # kubelet gives them.
        self.namespaces = cri.NamespaceOption(network=cri.NODE, pid=pid, ipc=cri.POD)
        security = cri.LinuxSandboxSecurityContext(
            namespace_options=self.namespaces, privileged=privileged)
        self.config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=self.uid, namespace="berth-cri"),
            log_directory=self.log_dir,
            linux=cri.LinuxPodSandboxConfig(
                cgroup_parent=(f"{CGROUP_PARENT}-pod{self.uid}.slice" if SYSTEMD
                               else f"/{CGROUP_PARENT}/pod{self.uid}"),
                security_context=security, sysctls=sysctls or {}))
        self.id = rpc(cri.RunPodSandboxRequest(
            config=self.config, runtime_handler=HANDLER)).pod_sandbox_id
        created.append(self)
        self.containers = {}
        self.pids = [self.pid()]

    def pid(self):
        info = rpc(cri.PodSandboxStatusRequest(pod_sandbox_id=self.id, verbose=True)).info
        return json.loads(info["info"])["pid"]

    def create(self, name, command, working_dir="", resources=None, security=None):
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image=IMAGE),
            command=command,
            working_dir=working_dir,
            log_path=name + ".log",
            linux=cri.LinuxContainerConfig(
                resources=resources or cri.LinuxContainerResources(),
                security_context=security or cri.LinuxContainerSecurityContext(
                    namespace_options=self.namespaces)))
        cid = rpc(cri.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config)).container_id
        self.containers[name] = cid
        return cid

    def run(self, name, command, **kwargs):
        """Creates and starts a container; returns its id and host pid."""
        cid = self.create(name, command, **kwargs)
        rpc(cri.StartContainerRequest(container_id=cid))
        pid = container_pid(cid)
        self.pids.append(pid)
        return cid, pid

    def remove(self):
        rpc(cri.StopPodSandboxRequest(pod_sandbox_id=self.id))
        rpc(cri.RemovePodSandboxRequest(pod_sandbox_id=self.id))
        created.remove(self)

    def ids(self):
        return [self.id] + list(self.containers.values())


created = []


def container_status(cid):
    return rpc(cri.ContainerStatusRequest(container_id=cid, verbose=True))


def container_pid(cid):
    return json.loads(container_status(cid).info["info"])["pid"]


def exec_sync(cid, *cmd, timeout=10):
    return rpc(cri.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout),
               timeout=timeout + 30)


def output(cid, *cmd):
    """stdout of a command that must succeed in the container."""
    r = exec_sync(cid, *cmd)
    expect(r.exit_code == 0, f"{cmd}: exit {r.exit_code}, stderr {r.stderr!r}")
    return r.stdout.decode().strip()


def expect(ok, message):
    if not ok:
        raise AssertionError(message)


def expect_eq(got, want, what):
    expect(got == want, f"{what}: got {got!r}, wanted {want!r}")


def cgroup_file(pid, v1_controller, v1_file, v2_file):
    """A file of the process's cgroup, as the host sees it."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if v1_controller in controllers.split(","):
            return open(f"/sys/fs/cgroup/{v1_controller}{path}/{v1_file}").read().strip()
    for hierarchy, _, path in lines:
        if hierarchy == "0":
            return open(f"/sys/fs/cgroup{path}/{v2_file}").read().strip()
    raise AssertionError(f"pid {pid} has no {v1_controller} cgroup")


def memory_limit(pid):
    value = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    return int(value)


def cpu_quota(pid):
    value = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
    return int(value.split()[0])


def ns(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def nothing_left(pod):
    """No process, runtime state, cgroup or mount of the pod remains."""
    ids = pod.ids()
    left = [pid for pid in pod.pids if alive(pid)]
    expect(not left, f"processes left: {left}")
    state = os.listdir(RUNTIME_ROOT) if os.path.isdir(RUNTIME_ROOT) else []
    expect(not [s for s in state if s in ids], f"runtime state left in {RUNTIME_ROOT}: {state}")
    cgroups = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        cgroups += [os.path.join(top, d) for d in dirs if any(i in d for i in ids)]
        dirs[:] = [d for d in dirs if top.count("/") < 8]
    expect(not cgroups, f"cgroups left: {cgroups}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if any(i in line for i in ids)]
    expect(not mounts, f"mounts left: {mounts}")
    runtimes = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0] == RUNTIME.encode():
                    runtimes.append(entry)
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            pass
    expect(not runtimes, f"runtime processes left: {runtimes}")


def wait_exited(cid, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        status = container_status(cid).status
        if status.state == cri.CONTAINER_EXITED:
            return status
        time.sleep(0.1)
    raise AssertionError(f"container {cid} has not exited after {seconds}s")


# The scenarios, in order; later ones use the pod of the first.
pod = None
app = None


def run_pod_sandbox():
    global pod
    expect(rpc(cri.ImageStatusRequest(image=cri.ImageSpec(image=IMAGE))).image.id,
           f"image {IMAGE} not imported")
    pod = Pod("web", sysctls={"kernel.shm_rmid_forced": "1"})
    status = rpc(cri.PodSandboxStatusRequest(pod_sandbox_id=pod.id)).status
    expect_eq(status.state, cri.SANDBOX_READY, "sandbox state")
    expect_eq(status.runtime_handler, HANDLER, "runtime handler")
    expect(alive(pod.pids[0]), "the pause process is not running")
    expect(ns(pod.pids[0], "ipc") != ns("self", "ipc"), "the sandbox has the host's IPC namespace")
    expect_eq(ns(pod.pids[0], "net"), ns("self", "net"), "the host-network sandbox's net namespace")


def limits_and_missing_working_dir():
    global app
    resources = cri.LinuxContainerResources(
        memory_limit_in_bytes=64 * MiB, cpu_period=100000, cpu_quota=50000, cpu_shares=512)
    app, pid = pod.run("app", ["sh", "-c", "echo app-started; exec sleep 3600"],
                       working_dir="/srv/app/not-in-image", resources=resources)
    expect_eq(container_status(app).status.state, cri.CONTAINER_RUNNING, "state")
    expect_eq(output(app, "pwd"), "/srv/app/not-in-image", "working directory")
    expect_eq(memory_limit(pid), 64 * MiB, "memory limit")
    expect_eq(cpu_quota(pid), 50000, "cpu quota")


def container_log():
    path = os.path.join(pod.log_dir, "app.log")
    for _ in range(50):
        if os.path.exists(path) and "app-started" in open(path).read():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} lacks the container's output")


def exec_sync_status_and_streams():
    r = exec_sync(app, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
    expect_eq((r.exit_code, r.stdout, r.stderr), (3, b"to-stdout\n", b"to-stderr\n"),
              "exit code, stdout, stderr")
    expect_eq(exec_sync(app, "true").exit_code, 0, "exit code of true")
    expect(output(app, "cat", "/proc/1/cmdline").startswith("sleep"),
           "the exec does not see the container's init")


def update_container_resources():
    rpc(cri.UpdateContainerResourcesRequest(
        container_id=app, linux=cri.LinuxContainerResources(
            memory_limit_in_bytes=128 * MiB, cpu_period=100000, cpu_quota=25000,
            cpu_shares=256)))
    pid = container_pid(app)
    expect_eq(memory_limit(pid), 128 * MiB, "memory limit after the update")
    expect_eq(cpu_quota(pid), 25000, "cpu quota after the update")


def second_container_shares_ipc_and_net_not_pid():
    sidecar, pid = pod.run("sidecar", ["sleep", "3600"])
    pause, app_pid = pod.pids[0], container_pid(app)
    expect_eq(ns(pid, "ipc"), ns(pause, "ipc"), "IPC namespace (the pod's)")
    expect_eq(ns(pid, "net"), ns(pause, "net"), "network namespace (the pod's)")
    for other, what in [(pause, "the sandbox's"), (app_pid, "app's"), ("self", "the host's")]:
        expect(ns(pid, "pid") != ns(other, "pid"), f"the sidecar shares {what} pid namespace")
    output(app, "sh", "-c", "echo through-ipc > /dev/shm/probe")
    expect_eq(output(sidecar, "cat", "/dev/shm/probe"), "through-ipc", "the pod's /dev/shm")
    expect_eq(output(sidecar, "cat", "/proc/sys/kernel/shm_rmid_forced"), "1",
              "the pod's sysctl kernel.shm_rmid_forced")
    expect_eq(output(sidecar, "sh", "-c", "ps -o comm | grep -c sleep"), "1",
              "sleep processes the sidecar sees")


def restricted_security_context():
    security = cri.LinuxContainerSecurityContext(
        namespace_options=pod.namespaces,
        run_as_user=cri.Int64Value(value=1000), run_as_group=cri.Int64Value(value=1000),
        capabilities=cri.Capability(drop_capabilities=["ALL"]),
        readonly_rootfs=True, no_new_privs=True,
        seccomp=cri.SecurityProfile(profile_type=cri.SecurityProfile.RuntimeDefault))
    restricted, _ = pod.run("restricted", ["sleep", "3600"], working_dir="/home/not-in-image",
                            security=security)
    expect_eq(output(restricted, "id", "-u"), "1000", "uid")
    expect_eq(output(restricted, "id", "-g"), "1000", "gid")
    status = output(restricted, "cat", "/proc/self/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    for cap in ["CapEff", "CapPrm", "CapBnd", "CapAmb"]:
        expect_eq(fields[cap].strip(), "0000000000000000", cap)
    expect_eq(fields["NoNewPrivs"].strip(), "1", "NoNewPrivs")
    expect_eq(fields["Seccomp"].strip(), "2", "Seccomp (containerd's default profile)")
    r = exec_sync(restricted, "touch", "/probe")
    expect(r.exit_code != 0 and b"Read-only file system" in r.stderr,
           f"touch / in a read-only root: exit {r.exit_code}, {r.stderr!r}")
    expect_eq(output(restricted, "pwd"), "/home/not-in-image", "working directory")


def stop_container_within_grace_period():
    stubborn, _ = pod.run("stubborn", ["sh", "-c", IGNORES_TERM])
    polite, _ = pod.run("polite", ["sh", "-c", "trap 'exit 0' TERM; " + LOOP])
    time.sleep(0.5)
    start = time.time()
    rpc(cri.StopContainerRequest(container_id=polite, timeout=30))
    took = time.time() - start
    status = wait_exited(polite, 5)
    expect(took < 5, f"a container that exits on SIGTERM took {took:.1f}s to stop")
    expect_eq(status.exit_code, 0, "exit code after SIGTERM")
    start = time.time()
    rpc(cri.StopContainerRequest(container_id=stubborn, timeout=2))
    took = time.time() - start
    status = wait_exited(stubborn, 5)
    expect(2 <= took < 10, f"StopContainer with a 2s grace period took {took:.1f}s")
    expect_eq(status.exit_code, 137, "exit code after SIGKILL")
    for cid in (polite, stubborn):
        rpc(cri.RemoveContainerRequest(container_id=cid))


def missing_binary():
    broken = pod.create("broken", ["/no/such/binary"])
    try:
        rpc(cri.StartContainerRequest(container_id=broken))
    except grpc.RpcError as e:
        message = e.details()
    else:
        raise AssertionError("StartContainer of a missing binary succeeded")
    expect("/no/such/binary" in message and "no such file or directory" in message,
           f"StartContainer's error: {message}")
    r = None
    try:
        r = exec_sync(app, "no-such-command")
    except grpc.RpcError as e:
        message = e.details()
    expect(r is None and "executable file not found" in message,
           f"ExecSync of a missing command: {r or message}")
    rpc(cri.RemoveContainerRequest(container_id=broken))


def oom_kill_is_reported():
    hog, _ = pod.run("hog", ["sh", "-c", "head -c 256m /dev/zero | tail"],
                     resources=cri.LinuxContainerResources(memory_limit_in_bytes=16 * MiB))
    status = wait_exited(hog, 30)
    expect_eq((status.exit_code, status.reason), (137, "OOMKilled"), "exit code and reason")
    rpc(cri.RemoveContainerRequest(container_id=hog))


def pod_teardown_leaves_nothing():
    start = time.time()
    pod.remove()
    took = time.time() - start
    expect(took < 20, f"StopPodSandbox and RemovePodSandbox took {took:.1f}s")
    nothing_left(pod)


def privileged_pod():
    with open("/proc/self/status") as f:
        host_caps = [line.split()[1] for line in f if line.startswith("CapEff")][0]
    privileged = Pod("privileged", privileged=True)
    security = cri.LinuxContainerSecurityContext(
        privileged=True, namespace_options=privileged.namespaces)
    cid, _ = privileged.run("admin", ["sleep", "3600"], security=security)
    caps = output(cid, "sh", "-c", "grep CapEff /proc/self/status").split()[1]
    expect_eq(caps, host_caps, "CapEff (the host's)")
    expect_eq(output(cid, "sh", "-c", "test -c /dev/kmsg && echo host-devices"),
              "host-devices", "the host's /dev")
    expect(" rw," in output(cid, "sh", "-c", "grep ' /sys sysfs' /proc/mounts") + ",",
           "/sys is not writable")
    privileged.remove()
    nothing_left(privileged)


def shared_pid_namespace():
    shared = Pod("shared-pid", pid=cri.POD)
    try:
        stubborn, pid = shared.run("stubborn", ["sh", "-c", IGNORES_TERM])
        expect_eq(ns(pid, "pid"), ns(shared.pids[0], "pid"), "pid namespace (the pod's)")
        expect("sleep infinity" in output(stubborn, "ps", "-o", "args"),
               "the container does not see the pod's pause process")
        start = time.time()
        rpc(cri.StopContainerRequest(container_id=stubborn, timeout=2))
        took = time.time() - start
        expect(2 <= took < 10, f"StopContainer with a 2s grace period took {took:.1f}s")
        expect_eq(wait_exited(stubborn, 5).exit_code, 137, "exit code after SIGKILL")
    finally:
        shared.remove()
    nothing_left(shared)


def host_pid_namespace():
    host = Pod("host-pid", pid=cri.NODE)
    try:
        cid, pid = host.run("app", ["sh", "-c", "sleep 3600 & echo $! > /bg.pid; exec sleep 3600"])
        expect_eq(ns(pid, "pid"), ns("self", "pid"), "pid namespace (the host's)")
        background = int(output(cid, "cat", "/bg.pid"))
        expect(alive(background), "the container's background sleep is not running")
        host.pids.append(background)
        rpc(cri.StopContainerRequest(container_id=cid, timeout=2))
        wait_exited(cid, 5)
    finally:
        host.remove()
    nothing_left(host)


SCENARIOS = [
    ("RunPodSandbox: the sandbox runs under the handler", run_pod_sandbox),
    ("CreateContainer, StartContainer: memory and CPU limits, a workingDir missing from the image",
     limits_and_missing_working_dir),
    ("the container's output reaches its log file", container_log),
    ("ExecSync: exit codes, stdout and stderr apart", exec_sync_status_and_streams),
    ("UpdateContainerResources: the new limits reach the cgroup", update_container_resources),
    ("a second container shares the pod's IPC and network namespaces, not its pid namespace",
     second_container_shares_ipc_and_net_not_pid),
    ("restricted security context: uid, no capabilities, read-only root, seccomp",
     restricted_security_context),
    ("StopContainer: SIGTERM, then SIGKILL at the end of the grace period",
     stop_container_within_grace_period),
    ("a missing binary is reported as such (StartContainer, ExecSync)", missing_binary),
    ("a container past its memory limit is OOMKilled", oom_kill_is_reported),
    ("StopPodSandbox and RemovePodSandbox leave nothing (state, cgroup, mount, process)",
     pod_teardown_leaves_nothing),
    ("a privileged pod: all capabilities, the host's devices, and nothing left",
     privileged_pod),
    ("a shared pid namespace (shareProcessNamespace): joined, stopped, nothing left",
     shared_pid_namespace),
    ("the host's pid namespace (hostPID): what the container forked goes with it",
     host_pid_namespace),
]


def main():
    try:
        version = rpc(cri.VersionRequest())
    except grpc.RpcError as e:
        print(f"cri: the CRI plugin does not answer: {e.details()}\n0 passed, 1 failed")
        return 1
    print(f"cri: {version.runtime_name} {version.runtime_version}"
          f" (CRI {version.runtime_api_version}), handler {HANDLER} = {RUNTIME}")
    passed = failed = 0
    for name, scenario in SCENARIOS:
        start = time.time()
        try:
            scenario()
        except Exception as e:  # a scenario's failure, whatever its kind
            if isinstance(e, grpc.RpcError):
                e = f"{e.code().name}: {e.details()}"
            print(f"FAIL {name}\n    {e}")
            failed += 1
        else:
            print(f"PASS {name} ({time.time() - start:.1f}s)")
            passed += 1
        sys.stdout.flush()
    # What a failed scenario left: torn down as kubelet would.
    for leftover in list(created):
        try:
            leftover.remove()
        except grpc.RpcError as e:
            print(f"cri: could not remove pod {leftover.id}: {e.details()}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
