//! The `voxgate` command line: `serve` runs the daemon, `check` validates the configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use voxgate::config::Config;

/// voxgate: answers SIP calls and puts a speech-to-speech model on the line.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// YAML configuration file (defaults apply without one; VOXGATE_* env overrides both).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Model to use: `sim` selects the built-in simulator (same as model.url: sim).
        #[arg(long)]
        model: Option<String>,
    },
    /// Run the built-in Realtime protocol simulator alone (for tests and demos).
    SimModel {
        /// Address to listen on, e.g. 127.0.0.1:8089.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// YAML script of the simulated conversation (see src/model/sim/script.rs).
        #[arg(long)]
        script: Option<PathBuf>,
    },
    /// Validate the configuration and the dialplans; exit 1 listing every problem as
    /// `file:line:col: message`.
    Check {
        /// Configuration file to validate (its `dialplans` folder is checked too).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Dialplan files or folders to check instead of the configured folder.
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of a dialplan file (for editors: see the README).
    Schema,
    /// Apply the call-log database migrations (`serve` also applies them at start).
    Migrate {
        /// Configuration file (for `database.url`; `DATABASE_URL` overrides).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List recent calls, or show one (by call id, SIP Call-ID or ticket reference).
    Calls {
        /// Configuration file (for `database.url`; `DATABASE_URL` overrides).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many calls to list.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show this call with its transcript, tool calls and tickets.
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, model } => {
            let mut cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("voxgate: {e}");
                    return ExitCode::from(1);
                }
            };
            if let Some(m) = model {
                cfg.model.url = m;
            }
            voxgate::ops::logging::init(&cfg.log);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("voxgate: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(voxgate::call::server::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("voxgate: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::SimModel { listen, script } => sim_model(listen, script),
        Command::Check { config, paths } => check(config, paths),
        Command::Migrate { config } => store_command(config, |url| async move {
            let v = voxgate::store::migrate(&url).await?;
            println!("{url}: schema version {} (was {})", v.after, v.before);
            Ok(())
        }),
        Command::Calls {
            config,
            limit,
            json,
            id,
        } => store_command(config, move |url| async move {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match id {
                Some(id) => voxgate::store::show_call(&url, &id, json, &mut out).await?,
                None => voxgate::store::list_calls(&url, limit, json, &mut out).await?,
            }
            Ok(())
        }),
        Command::Schema => {
            use std::io::Write;
            // A closed pipe (`voxgate schema | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{}", voxgate::dialplan::json_schema());
            ExitCode::SUCCESS
        }
    }
}

/// `voxgate sim-model`: serves the simulator until interrupted.
fn sim_model(listen: std::net::SocketAddr, script: Option<PathBuf>) -> ExitCode {
    use voxgate::model::sim::{self, SimScript};
    let script = match script {
        Some(path) => match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| SimScript::from_yaml(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("voxgate: {}: {e}", path.display());
                return ExitCode::from(1);
            }
        },
        None => SimScript::default(),
    };
    voxgate::ops::logging::init(&voxgate::config::LogConfig::default());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("voxgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(%listen, "Realtime simulator listening");
        tokio::select! {
            r = sim::serve(listener, std::sync::Arc::new(script)) => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `voxgate check`: the config, then every dialplan; all problems, then one summary line.
fn check(config: Option<PathBuf>, paths: Vec<PathBuf>) -> ExitCode {
    let cfg = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let paths = if paths.is_empty() {
        vec![cfg.dialplans.clone()]
    } else {
        paths
    };
    let report = voxgate::dialplan::check_paths(&paths);
    if report.is_ok() {
        println!("{}", report.summary());
        ExitCode::SUCCESS
    } else {
        eprint!("{report}");
        if !report.to_string().ends_with('\n') {
            eprintln!();
        }
        ExitCode::from(1)
    }
}

/// Runs a call-log command against the configured database.
fn store_command<F, Fut>(config: Option<PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let cfg = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("voxgate: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("voxgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(f(cfg.database.url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxgate: {e:#}");
            ExitCode::from(1)
        }
    }
}
