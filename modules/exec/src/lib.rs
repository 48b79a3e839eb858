//! The OpenSIPS `exec` module: `exec(command[, stdin[, $stdout[, $stderr[, $avp(env)]]]])`
//! runs `/bin/sh -c command`. Without an output variable it is started and left to run; with
//! one, the worker waits for the output (32 KiB at most, as OpenSIPS keeps) and the command's
//! end. `setvars` passes the request in `SIP_*` environment variables, the env AVP's values in
//! `OSIPS_EXEC_0…` (newest first, as OpenSIPS walks an AVP). `time_to_kill` ends a command
//! that runs too long; unlike OpenSIPS (no limit by default), rsips never lets a command hold
//! a worker past 60 s when it is not set.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::LOCAL)
    .or(Routes::STARTUP)
    .or(Routes::TIMER)
    .or(Routes::EVENT)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "exec",
    functions: &[FnSpec {
        name: "exec",
        params: &[
            (Param::Str, false),
            (Param::Str, true),
            (Param::Var, true),
            (Param::Var, true),
            (Param::Avp, true),
        ],
        routes: ROUTES,
        run: exec,
    }],
    params: &[
        ("setvars", ParamType::Int),
        ("time_to_kill", ParamType::Int),
    ],
};

/// What OpenSIPS keeps of a command's output.
const MAX_OUTPUT: usize = 32 * 1024;

struct Settings {
    setvars: bool,
    limit: Duration,
}

fn settings() -> &'static OnceLock<Settings> {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    &SETTINGS
}

pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("exec") {
        return Ok(());
    }
    let kill = script.modparam_int("exec", "time_to_kill").unwrap_or(0);
    let _ = settings().set(Settings {
        setvars: script.modparam_int("exec", "setvars").unwrap_or(0) != 0,
        limit: Duration::from_secs(if kill > 0 { kill.unsigned_abs() } else { 60 }),
    });
    Ok(())
}

/// The request in `SIP_*` variables (`setvars`).
fn request_env(ctx: &MsgCtx) -> Vec<(String, String)> {
    let msg = &ctx.msg;
    let mut env: Vec<(String, String)> = Vec::new();
    for h in msg.headers() {
        let key = format!(
            "SIP_HF_{}",
            h.name
                .as_str()
                .unwrap_or(h.name_str)
                .to_ascii_uppercase()
                .replace('-', "_")
        );
        match env.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(h.value);
            }
            None => env.push((key, h.value.to_owned())),
        }
    }
    let original = msg.request_uri_str().unwrap_or("").to_owned();
    let current = ctx.ruri().map_or_else(|| original.clone(), str::to_owned);
    let user = |uri: &str| {
        sip::Uri::parse(uri)
            .ok()
            .and_then(|u| u.user().map(str::to_owned))
            .unwrap_or_default()
    };
    // The transaction: the top Via's branch, the same for a retransmission or its CANCEL.
    let tid = msg
        .top_via()
        .ok()
        .and_then(|v| v.branch().map(str::to_owned))
        .unwrap_or_default();
    env.push(("SIP_TID".into(), tid));
    env.push((
        "SIP_DID".into(),
        msg.to_tag().ok().flatten().unwrap_or("").to_owned(),
    ));
    env.push((
        "SIP_SRCIP".into(),
        ctx.receipt
            .as_ref()
            .map(|r| r.source.ip().to_string())
            .unwrap_or_default(),
    ));
    env.push(("SIP_OUSER".into(), user(&original)));
    env.push(("SIP_USER".into(), user(&current)));
    env.push(("SIP_ORURI".into(), original));
    env.push(("SIP_RURI".into(), current));
    env
}

/// Reads a pipe to its end, keeping the first `MAX_OUTPUT` bytes.
fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = MAX_OUTPUT.saturating_sub(out.len());
            out.extend_from_slice(&buf[..n.min(room)]);
        }
        out
    })
}

/// `exec(command[, stdin[, $stdout[, $stderr[, $avp(env)]]]])`: 1 when the command ran, -1
/// when it could not be started (or had to be killed).
pub fn exec(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(s) = settings().get() else {
        return -1;
    };
    let command = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let input = args
        .get(1)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .filter(|i| !i.is_empty());
    // A variable given for stdout / stderr.
    let (want_out, want_err) = (f.output_count(2) > 0, f.output_count(3) > 0);
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&command);
    // A group of its own: a kill ends what the shell started too (OpenSIPS' known issue
    // with shells that fork).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if s.setvars {
        cmd.envs(request_env(f.msg));
    }
    for (i, v) in f.read_output_avp(4).iter().enumerate() {
        cmd.env(format!("OSIPS_EXEC_{i}"), v.to_text().as_ref());
    }
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(if want_out {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stderr(if want_err {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            f.log
                .log(-1, &format!("exec: cannot run `{command}`: {e}\n"));
            return -1;
        }
    };
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // Written from a thread of its own: a command that does not read its input must not
        // hold the worker.
        std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    if !want_out && !want_err {
        // Nothing to wait for: reaped in the background, killed past the limit.
        let limit = s.limit;
        std::thread::spawn(move || wait_or_kill(&mut child, limit));
        return 1;
    }
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + s.limit;
    if !wait_or_kill(&mut child, s.limit) {
        f.log.log(
            -1,
            &format!(
                "exec: `{command}` ran past {} s and was killed\n",
                s.limit.as_secs()
            ),
        );
        return -1;
    }
    // What the shell left running in the background may still hold the output open: it
    // gets until the same deadline, then its group is killed.
    while [&out, &err]
        .iter()
        .any(|h| h.as_ref().is_some_and(|h| !h.is_finished()))
    {
        if Instant::now() >= deadline {
            kill_group(child.id());
            f.log.log(
                -1,
                &format!("exec: `{command}` left its output open past the limit\n"),
            );
            return -1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (param, handle) in [(2, out), (3, err)] {
        if let Some(bytes) = handle.and_then(|h| h.join().ok()).filter(|b| !b.is_empty()) {
            f.set_output(
                param,
                Value::from(String::from_utf8_lossy(&bytes).into_owned()),
            );
        }
    }
    1
}

/// Waits for the command; `false` when it was killed past `limit`.
fn wait_or_kill(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                log::error!(
                    "exec: a command ran past {} s and was killed",
                    limit.as_secs()
                );
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Kills the process group a command runs in (the shell and what it started).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
