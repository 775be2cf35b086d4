//! berth: an OCI container runtime. This binary only reads the command
//! line; the work is done in berth-container and berth-cgroups.

mod cli;
mod logging;
mod units;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use berth_container::cdi;
use berth_container::lifecycle::{self, CreateOptions, ExecOptions, ExecRequest, OciState};
use berth_container::spec::{default_spec, DefaultSpec};
use berth_container::state::Store;

use cli::{
    CdiCmd, CdiVerb, CheckpointCmd, Cli, Command, CreateArgs, CreateCmd, CriuArgs, DeleteCmd,
    EventsCmd, ExecArgs, ExecCmd, IdArg, KillCmd, ListCmd, ListFormat, NoArgs, PsCmd, RestoreCmd,
    RunCmd, SpecCmd, UpdateArgs, UpdateCmd,
};

fn criu_options(args: CriuArgs) -> anyhow::Result<lifecycle::CriuOptions> {
    let absolute = |p: PathBuf| std::path::absolute(&p).with_context(|| format!("{}", p.display()));
    Ok(lifecycle::CriuOptions {
        image_path: absolute(args.image_path)?,
        work_path: args.work_path.map(absolute).transpose()?,
        tcp_established: args.tcp_established,
        ext_unix_sk: args.ext_unix_sk,
        shell_job: args.shell_job,
        file_locks: args.file_locks,
        manage_cgroups_mode: args.manage_cgroups_mode,
        empty_ns: args.empty_ns,
        auto_dedup: args.auto_dedup,
        lazy_pages: args.lazy_pages,
    })
}

fn create_options(
    args: CreateArgs,
    cdi_spec_dirs: &[PathBuf],
    rootless: Option<bool>,
    systemd_cgroup: bool,
) -> CreateOptions {
    CreateOptions {
        cdi_spec_dirs: cdi::SpecDirs(cdi_spec_dirs.to_vec()),
        bundle: args.bundle,
        console_socket: args.console_socket,
        foreground: false,
        pid_file: args.pid_file,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        listen_fds: listen_fds(),
        pidfd_socket: args.pidfd_socket,
        rootless_cgroups: rootless,
        systemd_cgroup,
    }
}

/// Socket activation: LISTEN_FDS fds at 3.., meant for this process when
/// LISTEN_PID is its pid (as sd_listen_fds(3) reads them).
fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID").is_ok_and(|p| p == std::process::id().to_string());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn exec_options(command: Vec<String>, args: ExecArgs) -> ExecOptions {
    ExecOptions {
        request: ExecRequest {
            process_file: args.process,
            args: command,
            tty: args.tty,
            cwd: args.cwd,
            env: args.env,
            user: args.user,
            additional_gids: args.additional_gids,
            caps: args.cap,
            no_new_privs: args.no_new_privs,
            apparmor: args.apparmor,
            process_label: args.process_label,
        },
        console_socket: args.console_socket,
        detach: args.detach,
        pid_file: args.pid_file,
        preserve_fds: args.preserve_fds,
        cgroup: args.cgroup,
        ignore_paused: args.ignore_paused,
        pidfd_socket: args.pidfd_socket,
    }
}

/// The resources `update` asks for: the -r file (or stdin), then the flags.
fn update_resources(args: UpdateArgs) -> anyhow::Result<oci_spec::runtime::LinuxResources> {
    use serde_json::{json, Value};
    let mut resources: Value = match &args.resources {
        Some(path) if path.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("--resources -: the JSON on stdin")?
        }
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("--resources {}", path.display()))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("--resources {}", path.display()))?
        }
        None => json!({}),
    };
    let mut set = |section: &str, key: &str, value: Value| {
        if !resources[section].is_object() {
            resources[section] = json!({});
        }
        resources[section][key] = value;
    };
    if let Some(v) = args.memory {
        set("memory", "limit", json!(v));
    }
    if let Some(v) = args.memory_reservation {
        set("memory", "reservation", json!(v));
    }
    if let Some(v) = args.memory_swap {
        set("memory", "swap", json!(v));
    }
    if let Some(v) = args.cpu_shares {
        set("cpu", "shares", json!(v));
    }
    if let Some(v) = args.cpu_quota {
        set("cpu", "quota", json!(v));
    }
    if let Some(v) = args.cpu_period {
        set("cpu", "period", json!(v));
    }
    if let Some(v) = args.cpu_rt_period {
        set("cpu", "realtimePeriod", json!(v));
    }
    if let Some(v) = args.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", json!(v));
    }
    if let Some(v) = args.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = args.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    if let Some(v) = args.pids_limit {
        set("pids", "limit", json!(v));
    }
    if let Some(v) = args.blkio_weight {
        set("blockIO", "weight", json!(v));
    }
    serde_json::from_value(resources).context("the resources to update")
}

/// `ps` in table form: runs ps and keeps the header and the lines whose PID
/// column is one of the container's.
fn print_ps_table(pids: &[i32], ps_args: &[String]) -> anyhow::Result<()> {
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps printed no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
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

/// JSON on one line, as runc prints `list` and `ps` (scripts read them a
/// line at a time).
fn print_json_line(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
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

/// The state root: --root, or /run/berth for root and $XDG_RUNTIME_DIR/berth
/// for an unprivileged user. There is no fallback under /tmp: another user
/// could make that directory first.
fn state_root(given: Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    if let Some(root) = given {
        return Ok(root);
    }
    let xdg_runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    if rustix::process::geteuid().is_root() {
        // uid 0 of a user namespace that is not root's own (rootless
        // podman's) cannot write /run: as runc, it keeps its state in the
        // user's runtime directory when one is given.
        let rootless_root = berth_container::sys::userns::running_in_one()
            && std::env::var_os("USER").is_none_or(|user| user != "root");
        return Ok(match xdg_runtime_dir {
            Some(dir) if rootless_root => std::path::Path::new(&dir).join("berth"),
            _ => berth_container::DEFAULT_ROOT.into(),
        });
    }
    match xdg_runtime_dir {
        Some(dir) => Ok(std::path::Path::new(&dir).join("berth")),
        None => bail!("XDG_RUNTIME_DIR is not set: give the state root with --root DIR (a directory only this user can write)"),
    }
}

/// `berth cdi list` and `berth cdi generate`.
fn cdi_command(verb: CdiVerb, dirs: &[PathBuf]) -> anyhow::Result<()> {
    match verb {
        CdiVerb::List => {
            let registry = cdi::registry::Registry::load(dirs);
            for error in &registry.errors {
                eprintln!("berth: warning: {error}");
            }
            let mut out = std::io::stdout().lock();
            for (name, file) in registry.list() {
                writeln!(out, "{name}\t{}", file.display())?;
            }
        }
        CdiVerb::Generate { output, host_root } => {
            let root = host_root.to_str().context("--host-root is not UTF-8")?;
            let spec =
                cdi::nvidia::generate(root).map_err(|e| anyhow::anyhow!("cdi generate: {e}"))?;
            let bytes = cdi::spec::serialize(&spec, &output)
                .map_err(|e| anyhow::anyhow!("cdi generate: {e}"))?;
            if output.as_os_str() == "-" {
                std::io::stdout().write_all(&bytes)?;
            } else {
                output
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| berth_container::atomic_file::write(&output, &bytes))
                    .with_context(|| format!("cdi generate: {}", output.display()))?;
                let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
                eprintln!(
                    "berth: wrote {}: nvidia.com/gpu={{{}}}, with {} shared device nodes and {} mounts",
                    output.display(),
                    names.join(","),
                    spec.container_edits.device_nodes.len(),
                    spec.container_edits.mounts.len()
                );
            }
        }
    }
    Ok(())
}

/// The exit status of `exec` when exec itself fails, out of the range of
/// the statuses the process exits with (as runc's).
const EXEC_FAILED: u8 = 255;

/// A failure that exits with a status of its own instead of 1.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn with_code(error: anyhow::Error, code: u8) -> anyhow::Error {
        anyhow::Error::new(Failure {
            message: format!("{error:#}"),
            code,
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Runs the command; `Ok(code)` is the exit status.
fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let Some(command) = cli.command else {
        bail!("no command given; see `berth --help`");
    };
    // spec, features and cdi need no state root (and must work without one).
    let root = cli.root;
    let store = || state_root(root.clone()).map(Store::new);
    match command {
        Command::Create(CreateCmd { id, args }) => {
            lifecycle::create(
                &store()?,
                &id,
                &create_options(args, &cli.cdi_spec_dirs, cli.rootless.0, cli.systemd_cgroup),
            )?;
        }
        Command::Start(IdArg { id }) => lifecycle::start(&store()?, &id)?,
        Command::State(IdArg { id }) => print_json(&lifecycle::state(&store()?, &id)?)?,
        Command::Kill(KillCmd { id, signal, all }) => {
            let signal = berth_container::signal::parse(&signal)?;
            lifecycle::kill(&store()?, &id, signal, all)?;
        }
        Command::Delete(DeleteCmd { id, force }) => lifecycle::delete(&store()?, &id, force)?,
        Command::Run(RunCmd {
            id,
            args,
            detach,
            keep,
        }) => {
            let code = lifecycle::run(
                &store()?,
                &id,
                &create_options(args, &cli.cdi_spec_dirs, cli.rootless.0, cli.systemd_cgroup),
                detach,
                keep,
            )?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::List(ListCmd { quiet, format }) => {
            let states = lifecycle::list(&store()?)?;
            if quiet {
                for s in &states {
                    println!("{}", s.id);
                }
            } else if format == ListFormat::Json {
                print_json_line(&states)?;
            } else {
                print_table(&states);
            }
        }
        Command::Spec(SpecCmd { rootless, bundle }) => {
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
        Command::Features(NoArgs {}) => print_json(&berth_container::features::features())?,
        Command::Exec(ExecCmd { id, command, args }) => {
            // A failure of exec itself is 255, apart from any status the
            // process can exit with (as runc).
            let code = lifecycle::exec(&store()?, &id, &exec_options(command, args))
                .map_err(|e| Failure::with_code(e.into(), EXEC_FAILED))?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Pause(IdArg { id }) => lifecycle::pause(&store()?, &id)?,
        Command::Resume(IdArg { id }) => lifecycle::resume(&store()?, &id)?,
        Command::Update(UpdateCmd { id, args }) => {
            lifecycle::update(&store()?, &id, &update_resources(args)?)?
        }
        Command::Events(EventsCmd {
            id,
            stats,
            interval,
        }) => {
            lifecycle::events(&store()?, &id, interval, stats, |event| {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(&mut out, event)
                    .map_err(|e| berth_container::Error::Message(e.to_string()))?;
                writeln!(out)
                    .and_then(|()| out.flush())
                    .map_err(|e| berth_container::Error::Message(e.to_string()))
            })?;
        }
        Command::Cdi(CdiCmd { verb }) => cdi_command(verb, &cli.cdi_spec_dirs)?,
        Command::Checkpoint(CheckpointCmd {
            id,
            criu,
            leave_running,
            pre_dump,
            parent_path,
            page_server,
            status_fd,
        }) => {
            let opts = lifecycle::CheckpointOptions {
                criu: criu_options(criu)?,
                leave_running,
                pre_dump,
                parent_path,
                page_server,
                status_fd,
            };
            lifecycle::checkpoint(&store()?, &id, &opts)?;
        }
        Command::Restore(RestoreCmd {
            id,
            criu,
            bundle,
            console_socket,
            pid_file,
            detach,
            no_pivot: _,
            no_subreaper,
        }) => {
            let opts = lifecycle::RestoreOptions {
                criu: criu_options(criu)?,
                bundle,
                cdi_spec_dirs: cdi::SpecDirs(cli.cdi_spec_dirs.clone()),
                console_socket,
                pid_file,
                detach,
                no_subreaper,
                systemd_cgroup: cli.systemd_cgroup,
            };
            let code = lifecycle::restore(&store()?, &id, &opts)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Ps(PsCmd {
            format,
            id,
            ps_args,
        }) => {
            let pids = lifecycle::pids(&store()?, &id)?;
            match format {
                ListFormat::Json => print_json_line(&pids)?,
                ListFormat::Table => print_ps_table(&pids, &ps_args)?,
            }
        }
    }
    Ok(0)
}

/// --preserve-fds N hands fds 3..3+N on: they must be the caller's, so
/// they are checked before berth opens anything that could take their
/// numbers.
fn check_preserved_fds(command: &Option<Command>) -> anyhow::Result<()> {
    let n = match command {
        Some(Command::Create(CreateCmd { args, .. })) | Some(Command::Run(RunCmd { args, .. })) => {
            listen_fds() + args.preserve_fds
        }
        Some(Command::Exec(ExecCmd { args, .. })) => args.preserve_fds,
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

/// Reports a failure as runc's and youki's do, with the word "error" that
/// tools scan stderr for: to the --log file in its format (and plainly on
/// stderr too); without one, as a JSON log line with --log-format json,
/// else as `berth: error: <message>`. Engines match the message itself.
fn report(e: &anyhow::Error, log_file: bool, log_format: cli::LogFormat) {
    let message = format!("{e:#}");
    if log_file || log_format == cli::LogFormat::Json {
        tracing::error!("{message}");
    }
    if log_file || log_format == cli::LogFormat::Text {
        eprintln!("berth: error: {message}");
    }
}

fn main() -> ExitCode {
    let cli = cli::parse_or_exit();
    let exec = matches!(cli.command, Some(Command::Exec(_)));
    let failed = |code: u8| ExitCode::from(if exec { EXEC_FAILED } else { code });
    if let Err(e) = check_preserved_fds(&cli.command) {
        eprintln!("berth: error: {e:#}");
        return failed(1);
    }
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    // A copy of berth runs inside the container until the user's program
    // is exec'd: it must be one no process there can write (CVE-2019-5736).
    let enters_a_container = matches!(
        cli.command,
        Some(Command::Create(_) | Command::Run(_) | Command::Exec(_))
    );
    if enters_a_container {
        if let Err(e) = berth_container::exe_seal::ensure_sealed() {
            eprintln!("berth: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("berth: error: {e:#}");
        return failed(1);
    }
    let (log_file, log_format) = (cli.log.is_some(), cli.log_format);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e, log_file, log_format);
            ExitCode::from(e.downcast_ref::<Failure>().map_or(1, |f| f.code))
        }
    }
}
