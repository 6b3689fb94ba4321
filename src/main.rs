//! The `nigehban` binary: parse flags, run, and turn any error into one line and an exit code.

use anyhow::Context;
use clap::Parser;
use nigehban::cli::{self, Cli, Command, InputArgs, LogFormat, RulesCommand};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // clap's own report spans several lines; scripts and service logs want one.
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("bad command line")
                .trim_start_matches("error: ")
                .to_string();
            eprintln!("nigehban: error: {first} (see nigehban --help)");
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, whole cause chain: what failed, where, and why.
            eprintln!("nigehban: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIGEHBAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (input, common, metrics_dump) = match cli.command {
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => {
            let dir = dir.unwrap_or_else(cli::default_rules_dir);
            let matcher = nigehban::app::load_matcher(&dir)?;
            let report = nigehban::rules::check(&matcher)?;
            println!("{}: {report}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        Command::CheckConfig(a) => {
            let report = cli::check_config::run(&a);
            for line in &report.problems {
                println!("{line}");
            }
            for line in &report.warnings {
                eprintln!("warning: {line}");
            }
            if report.problems.is_empty() {
                println!("{}: ok", a.config.display());
                return Ok(ExitCode::SUCCESS);
            }
            return Ok(ExitCode::from(1));
        }
        Command::HashList(a) => {
            println!("{}", cli::hash_list::run(&a)?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::BenchGen(a) => {
            println!("{}", cli::bench_gen::run(&a)?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Read(a) => (InputArgs::Files(a.files), a.common, a.metrics_dump),
        Command::Capture(a) => (
            InputArgs::Live {
                interface: a.interface,
                bpf: a.bpf,
                buffer_mb: a.buffer_mb,
                backend: a.capture_backend,
                threads: a.capture_threads,
            },
            a.common,
            None,
        ),
    };
    let settings = cli::settings(Some(input), &common)?;
    init_logs(settings.log_format);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    // Opened before the run: a path that cannot be written should not cost a long read.
    let dump = metrics_dump
        .map(|p| {
            std::fs::File::create(&p)
                .map(|f| (p.clone(), f))
                .with_context(|| format!("cannot write --metrics-dump {}", p.display()))
        })
        .transpose()?;
    let summary = nigehban::app::run(settings, stop)?;
    if let Some((path, mut file)) = dump {
        file.write_all(summary.metrics.render().as_bytes())
            .with_context(|| format!("cannot write --metrics-dump {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
