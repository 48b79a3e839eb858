//! Command-line options, with OpenSIPS' letters (`-f`, `-c`, `-p`, `-V`, `-F`, `-D`, `-P`).

pub const USAGE: &str = "usage: rsips [-f FILE] [-c] [-p CMD] [-F] [-D] [-P PIDFILE] [-V] [-h]
  -f FILE    configuration file (default: the embedded etc/rsips.cfg)
  -c         check the configuration and exit
  -p CMD     pipe the configuration through CMD first (e.g. -p m4)
  -F         stay in the foreground
  -D         debug mode
  -P FILE    write the process id to FILE
  -V         print the version and exit
  --list-modules  print the OpenSIPS modules rsips implements
  -h         this help";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    pub file: Option<String>,
    pub check: bool,
    pub preprocessor: Option<String>,
    pub foreground: bool,
    pub debug: bool,
    pub pid_file: Option<String>,
    pub version: bool,
    pub help: bool,
    pub list_modules: bool,
}

pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("option {arg} needs {what}"));
        match arg.as_str() {
            "-f" => a.file = Some(value("a file name")?),
            "-p" => a.preprocessor = Some(value("a command")?),
            "-P" => a.pid_file = Some(value("a file name")?),
            "-c" => a.check = true,
            "-F" => a.foreground = true,
            "-D" => a.debug = true,
            "-V" => a.version = true,
            "-h" | "--help" => a.help = true,
            "--list-modules" => a.list_modules = true,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn options() {
        let a = args("-c -f x.cfg -p m4").unwrap();
        assert_eq!(
            (a.check, a.file.as_deref(), a.preprocessor.as_deref()),
            (true, Some("x.cfg"), Some("m4"))
        );
        assert!(args("-V").unwrap().version);
        assert!(args("-f").unwrap_err().contains("needs a file name"));
        assert!(args("-x").unwrap_err().contains("unknown option"));
    }
}
