/*
 * floor: the least a runtime must do to run /bin/true in a container —
 * clone new namespaces, pivot into the rootfs and exec — and nothing else
 * (no cgroup, no /proc, no devices, no config file). The benchmark's lower
 * bound: a runtime's time is compared with this.
 *
 *   floor ROOTFS
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char stack[64 * 1024];
static const char *rootfs;

static void die(const char *what) {
	perror(what);
	_exit(127);
}

static int child(void *arg) {
	(void)arg;
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) die("make / a slave");
	if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind the rootfs");
	if (chdir(rootfs) < 0) die("chdir");
	if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
	if (umount2(".", MNT_DETACH) < 0) die("detach the old root");
	if (chdir("/") < 0) die("chdir /");
	char *argv[] = {"/bin/true", NULL};
	execv(argv[0], argv);
	die("exec /bin/true");
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: floor ROOTFS\n");
		return 2;
	}
	rootfs = argv[1];
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD;
	pid_t pid = clone(child, stack + sizeof stack, flags, NULL);
	if (pid < 0) die("clone");
	int status;
	if (waitpid(pid, &status, 0) < 0) die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
