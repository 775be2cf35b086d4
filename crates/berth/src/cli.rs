//! The command line, as runc has it: global flags before the verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    about = "An OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Where container state is kept.
    #[arg(long, global = true, default_value = berth_container::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Write the log here instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// The log's format; json writes one {"level","msg","time"} object a line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Manage cgroups through systemd (not supported yet).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Print the version of berth and of the runtime spec it implements.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container, leaving its process waiting for `start`.
    Create {
        id: String,
        #[command(flatten)]
        args: CreateArgs,
    },
    /// Run the process of a created container.
    Start { id: String },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container.
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the container, not only its init.
        #[arg(short, long)]
        all: bool,
    },
    /// Remove a stopped container (any container with --force).
    Delete {
        id: String,
        /// Kill the container first if it is still running.
        #[arg(short, long)]
        force: bool,
    },
    /// Create and start a container; in the foreground, wait for it and
    /// remove it, exiting with its status.
    Run {
        id: String,
        #[command(flatten)]
        args: CreateArgs,
        /// Return once the container has started.
        #[arg(short, long)]
        detach: bool,
    },
    /// List the containers.
    #[command(alias = "ps-all")]
    List {
        /// Only the ids.
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Write a default config.json.
    Spec {
        /// A spec for running berth as an unprivileged user.
        #[arg(long)]
        rootless: bool,
        /// Where to write config.json.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print what this berth supports, as JSON.
    Features,
}
