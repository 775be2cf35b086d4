//! berth: an OCI container runtime. This binary only reads the command
//! line; the work is done in berth-container and berth-cgroups.

mod cli;
mod logging;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use berth_container::lifecycle::{self, CreateOptions, OciState};
use berth_container::spec::{default_spec, DefaultSpec};
use berth_container::state::Store;
use clap::Parser;

use cli::{Cli, Command, CreateArgs, ListFormat};

fn create_options(args: CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: args.bundle,
        console_socket: args.console_socket,
        pid_file: args.pid_file,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
    }
}

fn print_version() {
    let seccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into());
    println!("berth version {}", env!("CARGO_PKG_VERSION"));
    println!(
        "commit: {}",
        option_env!("BERTH_COMMIT").unwrap_or("unknown")
    );
    println!("spec: {}", berth_container::OCI_VERSION);
    println!("libseccomp: {seccomp}");
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_table(states: &[OciState]) {
    println!(
        "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for s in states {
        println!(
            "{:<24} {:<8} {:<10} {:<40} {:<32} root",
            s.id,
            s.pid,
            s.status.to_string(),
            s.bundle.display(),
            s.created.as_deref().unwrap_or("")
        );
    }
}

/// Runs the command; `Ok(code)` is the exit status.
fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let Some(command) = cli.command else {
        bail!("no command given; see `berth --help`");
    };
    let store = Store::new(&cli.root);
    let needs_cgroups = matches!(command, Command::Create { .. } | Command::Run { .. });
    if cli.systemd_cgroup && needs_cgroups {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported yet; use the default cgroupfs driver");
    }
    match command {
        Command::Create { id, args } => {
            lifecycle::create(&store, &id, &create_options(args))?;
        }
        Command::Start { id } => lifecycle::start(&store, &id)?,
        Command::State { id } => print_json(&lifecycle::state(&store, &id)?)?,
        Command::Kill { id, signal, all } => {
            let signal = berth_container::signal::parse(&signal)?;
            lifecycle::kill(&store, &id, signal, all)?;
        }
        Command::Delete { id, force } => lifecycle::delete(&store, &id, force)?,
        Command::Run { id, args, detach } => {
            let code = lifecycle::run(&store, &id, &create_options(args), detach)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::List { quiet, format } => {
            let states = lifecycle::list(&store)?;
            if quiet {
                for s in &states {
                    println!("{}", s.id);
                }
            } else if format == ListFormat::Json {
                print_json(&states)?;
            } else {
                print_table(&states);
            }
        }
        Command::Spec { rootless, bundle } => {
            let kind = if rootless {
                let uid = rustix::process::geteuid().as_raw();
                let gid = rustix::process::getegid().as_raw();
                DefaultSpec::Rootless { uid, gid }
            } else {
                DefaultSpec::Root
            };
            let path = bundle.join("config.json");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| {
                    format!("write {} (remove an existing one first)", path.display())
                })?;
            serde_json::to_writer_pretty(file, &default_spec(kind))?;
        }
        Command::Features => print_json(&berth_container::features::features())?,
    }
    Ok(0)
}

/// --preserve-fds N hands fds 3..3+N on: they must be the caller's, so
/// they are checked before berth opens anything that could take their
/// numbers.
fn check_preserved_fds(command: &Option<Command>) -> anyhow::Result<()> {
    let n = match command {
        Some(Command::Create { args, .. }) | Some(Command::Run { args, .. }) => args.preserve_fds,
        _ => 0,
    };
    for fd in 3..3 + n as i32 {
        // SAFETY: F_GETFD only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            bail!("--preserve-fds {n}: fd {fd} is not open");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = check_preserved_fds(&cli.command) {
        eprintln!("berth: {e:#}");
        return ExitCode::FAILURE;
    }
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("berth: {e:#}");
        return ExitCode::FAILURE;
    }
    let logs_to_file = cli.log.is_some();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let message = format!("{e:#}");
            if logs_to_file {
                tracing::error!("{message}");
            }
            eprintln!("berth: {message}");
            ExitCode::FAILURE
        }
    }
}
