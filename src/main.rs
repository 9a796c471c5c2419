//! The `switchboard` command: serve, manage users, check the config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use switchboard::accounts::{self, Account};
use switchboard::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "An XMPP server")]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config/switchboard.toml",
        env = "SWITCHBOARD_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Once every listener is bound, write their addresses here as JSON
        /// (`{"c2s": "127.0.0.1:5222", ...}`); useful with port 0.
        #[arg(long)]
        ports_file: Option<PathBuf>,
    },
    /// Manage accounts (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Private roster notes (works while the server runs).
    #[command(subcommand)]
    Notes(NotesCommand),
    /// Write every account and its data to FILE in XEP-0227 format (`-`: standard output).
    /// Works while the server runs.
    Export { file: PathBuf },
    /// Create or update accounts from a XEP-0227 file (ejabberd, Prosody, or `export`;
    /// `-`: standard input). Works while the server runs.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum NotesCommand {
    /// Re-encrypt every note not under `[roster_notes] active_key`, in batches, printing
    /// progress. Afterwards keys no note uses may be removed from the configuration.
    Rotate,
    /// How many notes each key encrypts.
    Keys,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Add {
        jid: String,
        /// Prompted for when omitted.
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete an account and its data.
    Del { jid: String },
    /// Change an account's password.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List accounts, of one domain or all.
    List { domain: Option<String> },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (default: --config) and exit; errors name the key and
    /// line.
    Check { file: Option<PathBuf> },
    /// Print the example configuration: every key, documented, with its default (this is
    /// config/example.toml).
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(cmd) = &cli.command {
        return config_command(cmd, &cli.config);
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut restart_requested = false;
    let result = match cli.command {
        Command::Serve { ports_file } => {
            let set_level = init_logging(&config, None);
            runtime
                .block_on(serve(config, &cli.config, set_level, ports_file))
                .map(|restart| restart_requested = restart)
        }
        Command::User(cmd) => {
            let _ = init_logging(&config, Some("warn"));
            runtime.block_on(user(config, cmd))
        }
        Command::Notes(cmd) => {
            let _ = init_logging(&config, Some("warn"));
            runtime.block_on(notes(config, cmd))
        }
        Command::Export { file } => {
            let _ = init_logging(&config, Some("warn"));
            runtime.block_on(switchboard::portable::export::run(config, &file))
        }
        Command::Import { file } => {
            let _ = init_logging(&config, Some("warn"));
            runtime.block_on(switchboard::portable::import::run(config, &file))
        }
        Command::Config(_) => Ok(()),
    };
    if result.is_ok() && restart_requested {
        return restart();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `config check` and `config example`: they need no valid `--config` file.
fn config_command(cmd: &ConfigCommand, default_file: &Path) -> ExitCode {
    match cmd {
        ConfigCommand::Check { file } => {
            let file = file.as_deref().unwrap_or(default_file);
            match Config::load(file) {
                Ok(config) => {
                    println!(
                        "{}: ok ({} domain(s), {} listener(s))",
                        file.display(),
                        config.domains.len(),
                        config.listen.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ConfigCommand::Example => {
            print!("{}", switchboard::config::docs::example(false));
            ExitCode::SUCCESS
        }
    }
}

/// Installs the log subscriber; returns how a reload changes its level.
fn init_logging(config: &Config, level_override: Option<&str>) -> switchboard::server::LogLevelSetter {
    use tracing_subscriber::EnvFilter;
    let level = level_override.unwrap_or(&config.log.level);
    // RUST_LOG wins over the file, then also over a reloaded file.
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level));
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            level_setter(handle, fixed)
        }
        LogFormat::Human => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            level_setter(handle, fixed)
        }
    }
}

fn level_setter<S: Send + Sync + 'static>(
    handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
    fixed_by_env: bool,
) -> switchboard::server::LogLevelSetter {
    Box::new(move |level: &str| {
        if fixed_by_env {
            return Ok(());
        }
        let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("log.level: {e}"))?;
        handle.reload(filter).map_err(|e| format!("log.level: {e}"))
    })
}

/// XEP-0133 restart: the server drained; replace this process with a fresh run of the same
/// binary and arguments (same PID, so supervisors and the ports file stay valid).
fn restart() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let err = std::env::current_exe().map(|exe| {
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec()
    });
    eprintln!("error: cannot restart: {}", err.unwrap_or_else(|e| e));
    ExitCode::FAILURE
}

async fn serve(
    config: Config,
    config_path: &Path,
    set_level: switchboard::server::LogLevelSetter,
    ports_file: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let listeners = switchboard::listener::bind_all(&config.listen).await?;
    let server = switchboard::start(config).await?;
    server.set_config_path(config_path);
    server.set_log_level_setter(set_level);
    tokio::spawn(switchboard::server::reload::reload_on_sighup(server.clone()));
    if let Some(path) = ports_file {
        write_ports_file(&path, &listeners)?;
    }
    switchboard::run(server.clone(), listeners, shutdown_signal()).await;
    Ok(server.stop.restart_requested())
}

/// Writes `{"kind": "addr", ...}` (first listener of each kind) atomically.
fn write_ports_file(path: &Path, listeners: &[switchboard::listener::Bound]) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeMap::new();
    for l in listeners {
        seen.entry(l.config.kind.name())
            .or_insert_with(|| l.local_addr().to_string());
    }
    let body = seen
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{{{body}}}\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

async fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let storage = switchboard::storage::Storage::open(&config.storage.url).await?;
    let result = match cmd {
        UserCommand::Add { jid, password } => {
            let account = Account::parse(&jid, &config)?;
            let password = password_or_prompt(password)?;
            accounts::create(&storage, &config, &account, &password).await?;
            println!("created {account}");
            Ok(())
        }
        UserCommand::Del { jid } => {
            let account = Account::parse(&jid, &config)?;
            // The server's modules, without listeners: the `account_removed` hook runs as it
            // does for a removal over XMPP (a server running elsewhere has no session here).
            let server = switchboard::start(config).await?;
            accounts::remove(&server, &account, None).await?;
            println!("deleted {account}");
            Ok(())
        }
        UserCommand::Passwd { jid, password } => {
            let account = Account::parse(&jid, &config)?;
            let password = password_or_prompt(password)?;
            accounts::set_password(&storage, &config, &account, &password).await?;
            println!("password changed for {account}");
            Ok(())
        }
        UserCommand::List { domain } => {
            if let Some(d) = &domain
                && !config.hosts(d)
            {
                anyhow::bail!(
                    "domain '{d}' is not hosted by this server (domains: {})",
                    config.domains.join(", ")
                );
            }
            for (host, user) in storage.list_users(domain.as_deref()).await? {
                println!("{user}@{host}");
            }
            Ok(())
        }
    };
    storage.close().await;
    result
}

async fn notes(config: Config, cmd: NotesCommand) -> anyhow::Result<()> {
    use switchboard::modules::roster::notes::{NoteKeys, rotate_storage};
    let storage = switchboard::storage::Storage::open(&config.storage.url).await?;
    let result = async {
        match cmd {
            NotesCommand::Keys => {
                for (key, count) in storage.notes_key_usage().await? {
                    let state = if config.roster_notes.active_key.as_deref() == Some(key.as_str()) {
                        "active"
                    } else if config.roster_notes.keys.contains_key(&key) {
                        "configured"
                    } else {
                        "MISSING"
                    };
                    println!("key '{key}': {count} note(s) ({state})");
                }
                Ok(())
            }
            NotesCommand::Rotate => {
                let Some(keys) = NoteKeys::from_config(&config.roster_notes) else {
                    anyhow::bail!("roster notes are disabled: no [roster_notes] keys configured");
                };
                println!("rotating roster notes to key '{}'", keys.active());
                let done = rotate_storage(&storage, &keys, |p| {
                    println!(
                        "progress: {}/{} re-encrypted, {} skipped",
                        p.done, p.total, p.skipped
                    );
                })
                .await?;
                println!(
                    "done: {} note(s) re-encrypted under key '{}', {} skipped (changed meanwhile)",
                    done.done,
                    keys.active(),
                    done.skipped
                );
                for (key, count) in storage.notes_key_usage().await? {
                    if key != keys.active() {
                        println!("key '{key}' still encrypts {count} note(s): run the rotation again");
                    }
                }
                Ok(())
            }
        }
    }
    .await;
    storage.close().await;
    result
}

fn password_or_prompt(password: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = password {
        return Ok(p);
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat: ")?;
    if first != second {
        anyhow::bail!("the passwords do not match");
    }
    Ok(first)
}
