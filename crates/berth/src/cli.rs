//! The command line, as runc has it: global flags before the verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Parses the command line, or exits as clap does on a bad one. Help is
/// laid out as runc's: a NAME section first (`berth - ...`, `berth create
/// - ...`, named as berth was invoked), which scripts and runc's tests
/// read; the rest is clap's. Help asked of a command berth does not have
/// (`berth foo -h`) is refused as runc refuses it, with exit status 3.
pub fn parse_or_exit() -> Cli {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let asks_help = args
        .iter()
        .any(|a| a == "-h" || a == "--help" || a == "help");
    parse(args, asks_help).unwrap_or_else(|e| {
        if let (ErrorKind::InvalidSubcommand, true, Some(ContextValue::String(name))) =
            (e.kind(), asks_help, e.get(ContextKind::InvalidSubcommand))
        {
            eprintln!("No help topic for '{name}'");
            std::process::exit(3);
        }
        e.exit()
    })
}

fn parse(args: Vec<std::ffi::OsString>, asks_help: bool) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    // Only help shows the templates: other runs do not make them.
    if let Some(invoked) = args.first().filter(|_| asks_help) {
        command = with_runc_help(command, invoked);
    }
    // Reading one-dash long options needs every verb's options built,
    // which the usual command line (no such option) does not pay for.
    let one_dash = |a: &std::ffi::OsString| {
        a.to_str()
            .is_some_and(|a| a.len() > 2 && a.starts_with('-') && !a.starts_with("--"))
    };
    let args = if args.iter().skip(1).any(one_dash) {
        command.build();
        long_options_with_one_dash(args, &command)
    } else {
        args
    };
    Cli::from_arg_matches(&command.try_get_matches_from(args)?)
}

/// `command` with runc's help layout, named after `invoked` (argv[0]).
fn with_runc_help(command: clap::Command, invoked: &std::ffi::OsStr) -> clap::Command {
    let invoked = std::path::Path::new(invoked)
        .file_name()
        .map_or("berth".into(), |n| n.to_string_lossy().into_owned());
    let template = |name: &str| {
        format!("NAME:\n   {name} - {{about}}\n\nUSAGE:\n   {{usage}}\n\n{{all-args}}")
    };
    let mut command = command.help_template(template(&invoked));
    let verbs: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for verb in verbs {
        command = command.mut_subcommand(&verb, |c| {
            c.help_template(template(&format!("{invoked} {verb}")))
        });
    }
    command
}

/// runc's parser takes a long option with one dash as well as with two,
/// and engines use both (containerd's shim restores with `-no-subreaper`):
/// `-name` and `-name=value` become `--name...` where `name` is a long
/// option of berth or of its verb. Only the options before the verb's
/// first operand are read, so an exec'd command's own arguments stay as
/// they are.
fn long_options_with_one_dash(
    args: Vec<std::ffi::OsString>,
    top: &clap::Command,
) -> Vec<std::ffi::OsString> {
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    let mut command = top;
    let mut in_verb = false;
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    out.extend(iter.next());
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            break;
        };
        let (dashes, rest) = match text.strip_prefix("--") {
            Some(rest) => (2, rest),
            None => match text.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (1, rest),
                _ => (0, text.as_str()),
            },
        };
        if dashes == 2 && rest.is_empty() {
            out.push(arg);
            break;
        }
        if dashes == 0 {
            match command.find_subcommand(rest).filter(|_| !in_verb) {
                Some(verb) => {
                    command = verb;
                    in_verb = true;
                    out.push(arg);
                    continue;
                }
                None => {
                    out.push(arg);
                    break;
                }
            }
        }
        let (name, attached) = match rest.split_once('=') {
            Some((name, _)) => (name, true),
            None => (rest, false),
        };
        let long = command.get_arguments().find(|a| a.get_long() == Some(name));
        let short = (dashes == 1 && name.chars().count() == 1)
            .then(|| name.chars().next())
            .flatten()
            .and_then(|c| command.get_arguments().find(|a| a.get_short() == Some(c)));
        let option = if dashes == 2 { long } else { short.or(long) };
        out.push(match (dashes, long.is_some() && short.is_none()) {
            (1, true) => format!("-{text}").into(),
            _ => arg,
        });
        if option.is_some_and(&takes_value) && !attached {
            out.extend(iter.next());
        }
    }
    out.extend(iter);
    out
}

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    about = "An OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Where container state is kept [default: /run/berth, or
    /// $XDG_RUNTIME_DIR/berth when not run as root].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Write the log here instead of stderr.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// The log's format; json writes one {"level","msg","time"} object a line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages too.
    #[arg(long)]
    pub debug: bool,
    /// Manage cgroups through systemd: each container's cgroup is a
    /// transient unit (linux.cgroupsPath is `slice:prefix:name`).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless cgroups, as runc takes them: true goes without a cgroup
    /// berth is not allowed to make (when the spec sets no limits), false
    /// makes cgroups whatever berth's uid, auto (the default) is true for
    /// an unprivileged berth or one in a user namespace.
    #[arg(long, default_value = "auto", value_parser = parse_bool_or_auto)]
    pub rootless: Rootless,
    /// Where CDI device specs are read, lowest priority first (comma
    /// separated).
    #[arg(long, value_delimiter = ',', default_value = "/etc/cdi,/var/run/cdi")]
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// Print the version of berth and of the runtime spec it implements.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--rootless`: `None` for auto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rootless(pub Option<bool>);

/// `auto` (any case, or nothing) is auto; otherwise a boolean as runc (Go's
/// strconv.ParseBool) spells it.
fn parse_bool_or_auto(text: &str) -> Result<Rootless, String> {
    match text {
        _ if text.is_empty() || text.eq_ignore_ascii_case("auto") => Ok(Rootless(None)),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Rootless(Some(true))),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Rootless(Some(false))),
        _ => Err(format!("{text:?} is not true, false or auto")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The bundle: a directory holding config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A unix socket to send the pty master to when process.terminal is set.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Enter the rootfs with MS_MOVE and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not give the container a session keyring of its own.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass fds 3 to 3+N-1 on to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// A unix socket to send the init's pidfd to.
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
}

// The verbs. clap's derive builds every verb's arguments before it reads
// argv, a tenth of a millisecond warm and three when cold, paid by every
// call an engine makes; each verb here is built only when named (`defer`).
macro_rules! verbs {
    ($($variant:ident($args:ident) $name:literal $(alias $alias:literal)? => $about:literal,)*) => {
        #[derive(Debug)]
        pub enum Command {
            $($variant($args),)*
        }

        impl clap::FromArgMatches for Command {
            fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
                match matches.subcommand() {
                    $(Some(($name, sub)) => Ok(Command::$variant($args::from_arg_matches(sub)?)),)*
                    _ => Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand)),
                }
            }

            fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
                *self = Self::from_arg_matches(matches)?;
                Ok(())
            }
        }

        impl Subcommand for Command {
            fn augment_subcommands(cmd: clap::Command) -> clap::Command {
                cmd$(.subcommand(
                    clap::Command::new($name)
                        .about($about)
                        $(.visible_alias($alias))?
                        .defer(|c| <$args as Args>::augment_args(c)),
                ))*
            }

            fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_subcommands(cmd)
            }

            fn has_subcommand(name: &str) -> bool {
                matches!(name, $($name $(| $alias)?)|*)
            }
        }
    };
}

verbs! {
    Create(CreateCmd) "create" => "Create a container, leaving its process waiting for `start`",
    Start(IdArg) "start" => "Run the process of a created container",
    State(IdArg) "state" => "Print the state of a container as JSON",
    Kill(KillCmd) "kill" => "Send a signal (default SIGTERM) to a container",
    Delete(DeleteCmd) "delete" => "Remove a stopped container (any container with --force)",
    Run(RunCmd) "run" => "Create and start a container; in the foreground, wait for it and remove it, exiting with its status",
    List(ListCmd) "list" alias "ps-all" => "List the containers",
    Spec(SpecCmd) "spec" => "Write a default config.json",
    Features(NoArgs) "features" => "Print what this berth supports, as JSON",
    Exec(ExecCmd) "exec" => "Run another process in a running container",
    Pause(IdArg) "pause" => "Freeze every process of a running container",
    Resume(IdArg) "resume" => "Thaw a paused container",
    Update(UpdateCmd) "update" => "Change the resource limits of a live container",
    Events(EventsCmd) "events" => "Print resource usage of a container as JSON: once with --stats, else every --interval, with an \"oom\" event when the OOM killer strikes",
    Cdi(CdiCmd) "cdi" => "CDI devices: list what the host's specs offer, or generate a spec for the host's NVIDIA GPUs",
    Checkpoint(CheckpointCmd) "checkpoint" => "Checkpoint a running container with CRIU (then remove it, unless --leave-running or --pre-dump)",
    Restore(RestoreCmd) "restore" => "Restore a container from a CRIU checkpoint; in the foreground, wait for it and remove it, exiting with its status",
    Ps(PsCmd) "ps" => "List the processes of a container: its host pids as JSON, or the lines of `ps` (with the given options, default -ef) that are its own",
}

#[derive(Debug, Args)]
pub struct CdiCmd {
    #[command(subcommand)]
    pub verb: CdiVerb,
}

#[derive(Debug, Subcommand)]
pub enum CdiVerb {
    /// Print each device the spec files offer, with its file.
    List,
    /// Write a CDI spec (kind nvidia.com/gpu) for this host's NVIDIA GPUs:
    /// one device per GPU by index and by UUID, and `all`.
    Generate {
        /// Where to write it ("-": stdout); .yaml writes YAML.
        #[arg(long, short, default_value = "/var/run/cdi/nvidia.json")]
        output: PathBuf,
        /// Look for the driver's devices, libraries and /proc files under
        /// this directory instead of / (host paths keep it as a prefix).
        #[arg(long, default_value = "/")]
        host_root: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct IdArg {
    pub id: String,
}

#[derive(Debug, Args)]
pub struct NoArgs {}

#[derive(Debug, Args)]
pub struct CreateCmd {
    pub id: String,
    #[command(flatten)]
    pub args: CreateArgs,
}

#[derive(Debug, Args)]
pub struct KillCmd {
    pub id: String,
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process of the container, not only its init.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DeleteCmd {
    pub id: String,
    /// Kill the container first if it is still running.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RunCmd {
    pub id: String,
    #[command(flatten)]
    pub args: CreateArgs,
    /// Return once the container has started.
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits (`delete` does).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct ListCmd {
    /// Only the ids.
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct SpecCmd {
    /// A spec for running berth as an unprivileged user.
    #[arg(long)]
    pub rootless: bool,
    /// Where to write config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExecCmd {
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub args: ExecArgs,
}

#[derive(Debug, Args)]
pub struct UpdateCmd {
    pub id: String,
    #[command(flatten)]
    pub args: UpdateArgs,
}

#[derive(Debug, Args)]
pub struct EventsCmd {
    pub id: String,
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print stats (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct PsCmd {
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    pub id: String,
    /// Options for ps (after --).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

// `exec`'s flags, as runc has them (a doc comment here would replace
// the verb's own description in its help).
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json to run instead of the command line's.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Give the process a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// A unix socket to send the pty master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// The working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// KEY=value to set in the process's environment.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Supplementary group ids.
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Capabilities to add.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// An SELinux label for the process.
    #[arg(long)]
    pub process_label: Option<String>,
    /// An AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Pass fds 3 to 3+N-1 on to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run in an existing sub-cgroup of the container's: `path`, or
    /// `controller[,controller...]:path`, repeated for other controllers.
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Exec in a paused container too: the process runs once it is resumed.
    #[arg(long)]
    pub ignore_paused: bool,
    /// A unix socket to send the process's pidfd to.
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
}

// `update`'s flags, as runc has them; they override what -r gives (a
// doc comment here would replace the verb's own description in its help).
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A JSON file of linux.resources, or - for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g; -1 for none).
    #[arg(long, value_parser = crate::units::parse_bytes, allow_hyphen_values = true)]
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    #[arg(long, value_parser = crate::units::parse_bytes, allow_hyphen_values = true)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit in bytes; -1 for unlimited swap.
    #[arg(long, value_parser = crate::units::parse_bytes, allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long, alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// Realtime period in microseconds.
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to run on (e.g. 0-2,4).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10 to 1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
}

// The CRIU options `checkpoint` and `restore` share (a doc comment here
// would replace their own help's description).
#[derive(Debug, Args)]
pub struct CriuArgs {
    /// The directory of CRIU's image files.
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Where CRIU writes its work files and log [default: --image-path].
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a process whose session or group leader is outside
    /// the container).
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long)]
    pub file_locks: bool,
    /// How CRIU treats cgroups: soft, full, strict or ignore [default: CRIU's,
    /// soft].
    #[arg(long)]
    pub manage_cgroups_mode: Option<berth_container::lifecycle::CgroupsMode>,
    /// Create this namespace empty rather than restore it ("network"; the
    /// network namespace always is, as with runc).
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images as they are written or restored.
    #[arg(long)]
    pub auto_dedup: bool,
    /// Restore memory lazily through userfaultfd (where CRIU and the kernel
    /// support it).
    #[arg(long)]
    pub lazy_pages: bool,
}

#[derive(Debug, Args)]
pub struct CheckpointCmd {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Leave the container running after the dump.
    #[arg(long)]
    pub leave_running: bool,
    /// Dump only the memory, leaving the container running, for a later
    /// dump with --parent-path.
    #[arg(long)]
    pub pre_dump: bool,
    /// A previous pre-dump, relative to --image-path.
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// With --lazy-pages: CRIU's page server listens here
    /// (ADDRESS:PORT), serving the memory to the restoring host.
    #[arg(long)]
    pub page_server: Option<String>,
    /// With --lazy-pages: CRIU writes a byte to this open fd once its page
    /// server is ready (the dump goes on until the memory is fetched).
    #[arg(long)]
    pub status_fd: Option<i32>,
}

#[derive(Debug, Args)]
pub struct RestoreCmd {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// The bundle: a directory holding config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A unix socket to send the pty master to when process.terminal is set.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the restored init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Return once the container is restored.
    #[arg(short, long)]
    pub detach: bool,
    /// Accepted as runc accepts it: CRIU enters the restored root itself.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not become a subreaper while waiting in the foreground.
    #[arg(long)]
    pub no_subreaper: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn normalized(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("berth").chain(args.iter().copied());
        let mut command = Cli::command();
        command.build();
        long_options_with_one_dash(args.map(Into::into).collect(), &command)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn long_options_take_one_dash_before_the_first_operand_only() {
        // containerd's shim restoring a container.
        assert_eq!(
            normalized(&[
                "--root",
                "/r",
                "restore",
                "--pid-file",
                "-p",
                "-no-subreaper",
                "-bundle=/b",
                "id"
            ]),
            [
                "--root",
                "/r",
                "restore",
                "--pid-file",
                "-p",
                "--no-subreaper",
                "--bundle=/b",
                "id"
            ]
        );
        // Short options and their values stay; so does the exec'd command.
        assert_eq!(
            normalized(&["-debug", "exec", "-t", "-e", "-detach", "id", "ls", "-detach"]),
            ["--debug", "exec", "-t", "-e", "-detach", "id", "ls", "-detach"]
        );
    }
}
