// steptrace OUT BINARY COMMAND...: runs COMMAND and single-steps every
// process of its tree while that process runs BINARY (from its exec, or
// from its fork by one that does, to its exit or exec of something else),
// and writes to OUT the link-time address of each instruction of BINARY
// they execute, once, in the order first executed. bench/hot-symbols.sh
// turns these into the link order of berth's functions (BENCHMARKS.md,
// "Peak RSS"). Slow by design: one ptrace stop per instruction. As root.
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

// What is known of each traced process, by pid: whether it runs BINARY
// and where BINARY's executable segment lies in it.
struct tracee {
  int known;          // its parent's fork event has been seen
  int waiting;        // stopped before that event, not yet resumed
  int runs_binary;
  uint64_t lo, hi, bias;
};
#define MAX_PID (1 << 22)
static struct tracee *tracees;

static char binary[PATH_MAX];
static int binary_is_pie;
static FILE *out;

// The set of addresses seen: open addressing, address + 1 so 0 is empty.
static uint64_t *seen;
static const size_t seen_size = 1 << 22;
static size_t seen_count;

static void record(uint64_t address) {
  size_t h = (address * 0x9E3779B97F4A7C15ull) & (seen_size - 1);
  while (seen[h]) {
    if (seen[h] == address + 1) return;
    h = (h + 1) & (seen_size - 1);
  }
  if (++seen_count > seen_size / 2) {
    fprintf(stderr, "steptrace: too many addresses\n");
    exit(1);
  }
  seen[h] = address + 1;
  fprintf(out, "%lx\n", (unsigned long)address);
}

// Reads where BINARY is mapped in pid, after its exec.
static int locate_binary(pid_t pid, struct tracee *t) {
  char path[64], exe[PATH_MAX], line[PATH_MAX + 128];
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  ssize_t n = readlink(path, exe, sizeof exe - 1);
  if (n < 0) return 0;
  exe[n] = 0;
  if (strcmp(exe, binary) != 0) return 0;
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE *maps = fopen(path, "re");
  if (!maps) return 0;
  t->lo = UINT64_MAX, t->hi = 0, t->bias = UINT64_MAX;
  while (fgets(line, sizeof line, maps)) {
    unsigned long start, end, offset;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s %lx", &start, &end, perms, &offset) != 4) continue;
    if (!strstr(line, binary)) continue;
    // A PIE's first segment is linked at 0: its load address is the bias.
    if (offset == 0 && start < t->bias) t->bias = start;
    if (perms[2] == 'x') {
      if (start < t->lo) t->lo = start;
      if (end > t->hi) t->hi = end;
    }
  }
  fclose(maps);
  if (!binary_is_pie) t->bias = 0;
  return t->hi != 0;
}

static int elf_is_pie(const char *file) {
  Elf64_Ehdr header;
  FILE *f = fopen(file, "re");
  if (!f || fread(&header, sizeof header, 1, f) != 1) {
    fprintf(stderr, "steptrace: cannot read %s\n", file);
    exit(2);
  }
  fclose(f);
  return header.e_type == ET_DYN;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: steptrace OUT BINARY COMMAND...\n");
    return 2;
  }
  if (!realpath(argv[2], binary)) {
    perror(argv[2]);
    return 2;
  }
  binary_is_pie = elf_is_pie(binary);
  out = fopen(argv[1], "we");
  tracees = calloc(MAX_PID, sizeof *tracees);
  seen = calloc(seen_size, sizeof *seen);
  if (!out || !tracees || !seen) {
    perror("steptrace");
    return 2;
  }
  pid_t child = fork();
  if (child == 0) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    _exit(127);
  }
  int status, exit_code = 0;
  waitpid(child, &status, 0);
  ptrace(PTRACE_SETOPTIONS, child, 0,
         PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
             PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
  ptrace(PTRACE_CONT, child, 0, 0);
  tracees[child].known = 1;
  long steps = 0;
  for (;;) {
    pid_t pid = waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == ECHILD) break;
      perror("waitpid");
      return 1;
    }
    if (pid >= MAX_PID) {
      fprintf(stderr, "steptrace: pid %d too large\n", pid);
      return 1;
    }
    struct tracee *t = &tracees[pid];
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (pid == child) exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      memset(t, 0, sizeof *t);
      continue;
    }
    if (!WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status), event = status >> 16, deliver = 0;
    if (!t->known) {
      // A new process's first stop can come before its parent's fork
      // event, which says whether to step it: hold it until then.
      t->waiting = 1;
      continue;
    }
    if (event == PTRACE_EVENT_EXEC) {
      t->runs_binary = locate_binary(pid, t);
    } else if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
      unsigned long new_pid;
      ptrace(PTRACE_GETEVENTMSG, pid, 0, &new_pid);
      if (new_pid < MAX_PID) {
        struct tracee *c = &tracees[new_pid];
        int waiting = c->waiting;
        *c = *t;  // a fork has its parent's mappings
        c->known = 1, c->waiting = 0;
        if (waiting) ptrace(c->runs_binary ? PTRACE_SINGLESTEP : PTRACE_CONT, new_pid, 0, 0);
      }
    } else if (event) {
      // other events: nothing to record
    } else if (sig == SIGTRAP) {
      if (t->runs_binary) {
        struct user_regs_struct regs;
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        if (regs.rip >= t->lo && regs.rip < t->hi) record(regs.rip - t->bias);
        steps++;
      }
    } else if (sig != SIGSTOP) {
      // SIGSTOP is a new tracee's first stop; every other signal is real.
      deliver = sig;
    }
    ptrace(t->runs_binary ? PTRACE_SINGLESTEP : PTRACE_CONT, pid, 0, deliver);
  }
  fclose(out);
  fprintf(stderr, "steptrace: %ld steps, %zu addresses\n", steps, seen_count);
  return exit_code;
}
