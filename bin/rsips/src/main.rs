//! The rsips binary: command line, configuration loading and (as issues land) the server. It is
//! the only crate that names every module.

mod cli;

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use cli::Args;

/// The modules rsips links in (the only place that names them all). Grows as modules land.
fn available() -> engine::Available {
    engine::Available {
        modules: vec![&sipmsgops::MODULE],
        builtin: Vec::new(),
    }
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rsips: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.help {
        println_out(cli::USAGE);
        return ExitCode::SUCCESS;
    }
    if args.list_modules {
        for m in available().modules {
            println_out(m.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.version {
        println_out(&format!(
            "rsips {} (OpenSIPS 4.0 configuration language)",
            env!("CARGO_PKG_VERSION")
        ));
        return ExitCode::SUCCESS;
    }
    let Some(file) = args.file.as_deref() else {
        eprintln!(
            "rsips: no configuration file given (use -f FILE)\n{}",
            cli::USAGE
        );
        return ExitCode::from(2);
    };
    let ok = load(file, &args);
    if args.check {
        if ok {
            eprintln!("config file ok, exiting...");
            return ExitCode::SUCCESS;
        }
        return ExitCode::from(1);
    }
    if !ok {
        return ExitCode::from(1);
    }
    eprintln!("rsips: the server runtime is not built yet; `-c` checks a configuration");
    ExitCode::from(2)
}

fn println_out(s: &str) {
    let _ = writeln!(std::io::stdout(), "{s}");
}

/// Reads, preprocesses, parses and checks the configuration, printing every diagnostic.
/// Returns whether it is free of errors.
fn load(file: &str, args: &Args) -> bool {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read configuration file `{file}`: {e}");
            return false;
        }
    };
    let text = match &args.preprocessor {
        Some(cmd) => match preprocess(cmd, &text) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: preprocessor `{cmd}` failed: {e}");
                return false;
            }
        },
        None => text,
    };
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, Path::new(file), text);
    let mut diags = parsed.diagnostics;
    if !diags.iter().any(cfg::Diagnostic::is_error) {
        diags.extend(engine::check(&parsed.config, &sources, &available()));
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let mut err = std::io::stderr().lock();
    for d in &diags {
        let _ = write!(err, "{}", d.render(&sources));
    }
    if errors > 0 {
        let s = if errors == 1 { "" } else { "s" };
        let _ = writeln!(err, "error: could not load `{file}`: {errors} error{s}");
    }
    errors == 0
}

/// Pipes the configuration through an external command (`-p m4`), as OpenSIPS does.
fn preprocess(cmd: &str, text: &str) -> Result<String, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("exited with {}", out.status));
    }
    String::from_utf8(out.stdout).map_err(|_| "output is not UTF-8".to_owned())
}
