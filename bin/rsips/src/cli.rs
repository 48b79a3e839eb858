//! Command-line options, with OpenSIPS' letters (`-f`, `-c`, `-p`, `-V`, `-F`, `-D`, `-P`).

pub const USAGE: &str =
    "usage: rsips [-f FILE] [-c] [-p CMD] [-o NAME=VALUE]... [-F] [-D] [-P PIDFILE] [-V] [-h]
  -f FILE    configuration file (default: the embedded etc/rsips.cfg)
  -o N=V     a value the script reads as $argv(N) (repeatable)
  -c         check the configuration and exit
  -p CMD     pipe the configuration through CMD first (e.g. -p m4)
  -F         stay in the foreground (without it rsips detaches once it serves)
  -D         debug mode (foreground, debug logging to stderr)
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
    /// `-o name=value`, in command-line order.
    pub argv: Vec<(String, String)>,
}

pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("option {arg} needs {what}"));
        match arg.as_str() {
            "-f" => a.file = Some(value("a file name")?),
            "-p" => a.preprocessor = Some(value("a command")?),
            "-P" => a.pid_file = Some(value("a file name")?),
            "-o" => {
                let opt = value("NAME=VALUE")?;
                let Some((name, val)) = opt.split_once('=') else {
                    return Err(format!("option -o `{opt}`: expected NAME=VALUE"));
                };
                if name.is_empty() {
                    return Err(format!("option -o `{opt}`: no name before `=`"));
                }
                if a.argv.iter().any(|(n, _)| n == name) {
                    return Err(format!("option -o: `{name}` given twice"));
                }
                a.argv.push((name.to_owned(), val.to_owned()));
            }
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
        let a = args("-o a=1 -o b= -o c=x=y").unwrap();
        assert_eq!(
            a.argv,
            [("a", "1"), ("b", ""), ("c", "x=y")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert!(args("-o a").unwrap_err().contains("expected NAME=VALUE"));
        assert!(args("-o =1").unwrap_err().contains("no name"));
        assert!(args("-o a=1 -o a=2").unwrap_err().contains("given twice"));
    }
}
