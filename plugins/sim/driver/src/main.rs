//! `weft-sim`: runs a weft host on the sim platform under many seeds until one fails,
//! and replays a seed with the trace on.
//!
//! ```text
//! weft-sim explore --seeds N [--first-seed K] [--strategy random|pct] [--pct-steps K] [--jobs J] [--timeout S] -- PROGRAM ARGS...
//! weft-sim replay SEED [--strategy random|pct] [--pct-steps K] -- PROGRAM ARGS...
//! ```
//!
//! A run fails when the program exits with a non-zero status (86: the sim's deadlock
//! report, 87: its step limit, 88: a stall), dies of a signal, or outlives the timeout. Exit status
//! of `explore`: 0 when no seed failed, 1 when one did, 2 on a usage error.
use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const EXIT_DEADLOCK: i32 = 86;
const EXIT_STEP_LIMIT: i32 = 87;
const EXIT_STALL: i32 = 88;

const USAGE: &str = "usage:
  weft-sim explore --seeds N [--first-seed K] [--strategy random|pct] [--pct-steps K] [--jobs J] [--timeout S] -- PROGRAM ARGS...
  weft-sim replay SEED [--strategy random|pct] [--pct-steps K] -- PROGRAM ARGS...";

struct Options {
    /// PCT's estimate of a run's length in steps (`$WEFT_SIM_PCT_STEPS`), measured by
    /// one calibration run.
    pct_steps: Option<u64>,
    seeds: u64,
    first: u64,
    strategy: String,
    jobs: usize,
    timeout: Duration,
    program: Vec<String>,
}

fn parse(args: &[String], replay: bool) -> Result<(Option<u64>, Options), String> {
    let mut o = Options {
        pct_steps: None,
        seeds: 1000,
        first: 1,
        strategy: "random".into(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        timeout: Duration::from_secs(10),
        program: Vec::new(),
    };
    let mut seed = None;
    let mut i = 0;
    let number = |v: Option<&String>, what: &str| -> Result<u64, String> {
        v.and_then(|v| v.parse().ok()).ok_or_else(|| format!("{what} needs a number"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--" => {
                o.program = args[i + 1..].to_vec();
                break;
            }
            "--seeds" if !replay => o.seeds = number(args.get(i + 1), a)?,
            "--pct-steps" => o.pct_steps = Some(number(args.get(i + 1), a)?),
            "--first-seed" if !replay => o.first = number(args.get(i + 1), a)?,
            "--jobs" if !replay => o.jobs = number(args.get(i + 1), a)?.max(1) as usize,
            "--timeout" if !replay => {
                let text = args.get(i + 1).map(String::as_str).unwrap_or_default();
                match text.parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 => o.timeout = Duration::from_secs_f64(s),
                    _ => return Err(format!("--timeout needs a number of seconds above 0, not {text:?}")),
                }
            }
            "--strategy" => {
                o.strategy = args.get(i + 1).cloned().unwrap_or_default();
                if o.strategy != "random" && o.strategy != "pct" {
                    return Err("--strategy is random or pct".into());
                }
            }
            _ if replay && seed.is_none() && !a.starts_with('-') => {
                seed = Some(a.parse().map_err(|_| format!("not a seed: {a}"))?);
                i += 1;
                continue;
            }
            _ => return Err(format!("unknown argument {a}")),
        }
        i += 2;
    }
    if o.program.is_empty() {
        return Err("no program given (after --)".into());
    }
    if o.seeds == 0 {
        return Err("--seeds needs at least 1".into());
    }
    if o.first.checked_add(o.seeds).is_none() {
        return Err(format!("--first-seed {} and --seeds {} go past the last seed, {}", o.first, o.seeds, u64::MAX));
    }
    if replay && seed.is_none() {
        return Err("replay needs a SEED".into());
    }
    Ok((seed, o))
}

/// `$WEFT_PLATFORM` if set; else the sim plugin built next to this driver; else "sim"
/// (looked up next to libweft.so).
fn platform() -> String {
    if let Ok(p) = std::env::var("WEFT_PLATFORM") {
        return p;
    }
    let beside: Option<PathBuf> =
        std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("libweft_sim.so"))).filter(|p| p.exists());
    beside.map_or_else(|| "sim".into(), |p| p.display().to_string())
}

fn command(o: &Options, seed: u64) -> Command {
    let mut c = Command::new(&o.program[0]);
    c.args(&o.program[1..])
        .env("WEFT_PLATFORM", platform())
        .env("WEFT_SEED", seed.to_string())
        .env("WEFT_SIM_STRATEGY", &o.strategy)
        .stdin(Stdio::null());
    if let Some(steps) = o.pct_steps {
        c.env("WEFT_SIM_PCT_STEPS", steps.to_string());
    }
    c
}

/// How many steps one run takes, so that PCT's change points fall inside a run: the
/// last "steps N" or "step N" the sim printed in a random-walk run. The first seeds are
/// tried in turn, since a run that dies of the host's own assertion prints none.
fn calibrate(o: &Options) -> Option<u64> {
    for seed in o.first..o.first.saturating_add(CALIBRATION_RUNS) {
        match steps_of_run(o, seed) {
            Ok(Some(steps)) => return Some(steps),
            Ok(None) => {}
            // A run that hangs: the next would too, each for the whole timeout.
            Err(TimedOut) => return None,
        }
    }
    None
}

/// A measuring run that reached `--timeout`.
struct TimedOut;

/// Runs tried by `calibrate` before it gives up.
const CALIBRATION_RUNS: u64 = 8;

/// Bounded by `--timeout` as every run is: a program that hangs where sim cannot see
/// it (a `sleep` of its own) kept `explore --strategy pct` from ever starting.
fn steps_of_run(o: &Options, seed: u64) -> Result<Option<u64>, TimedOut> {
    let Ok(mut child) = command(o, seed)
        .env("WEFT_SIM_STRATEGY", "random")
        .env("WEFT_SIM_STATS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return Ok(None);
    };
    let Some(mut stderr) = child.stderr.take() else { return Ok(None) };
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let give_up = Instant::now() + o.timeout;
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(1)),
            waited => {
                timed_out = matches!(waited, Ok(None));
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    let bytes = reader.join().unwrap_or_default();
    if timed_out {
        return Err(TimedOut);
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().rev().find_map(|l| {
        let rest = l.strip_prefix("weft sim: ")?;
        let rest = rest.strip_prefix("steps ").or_else(|| rest.split(", step ").nth(1))?;
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }))
}

fn replay_line(o: &Options, seed: u64) -> String {
    let strategy = match (o.strategy.as_str(), o.pct_steps) {
        ("random", _) => String::new(),
        (s, Some(steps)) => format!(" --strategy {s} --pct-steps {steps}"),
        (s, None) => format!(" --strategy {s}"),
    };
    let program: Vec<String> = o.program.iter().map(|a| shell_word(a)).collect();
    format!("weft-sim replay {seed}{strategy} -- {}", program.join(" "))
}

fn shell_word(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=+:,".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

struct Running {
    seed: u64,
    child: Child,
    started: Instant,
    output: PathBuf,
}

struct Failure {
    seed: u64,
    what: String,
    output: String,
}

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(EXIT_DEADLOCK), _) => format!("exit status {EXIT_DEADLOCK} (deadlock: every task blocked)"),
        (Some(EXIT_STEP_LIMIT), _) => format!("exit status {EXIT_STEP_LIMIT} (step limit: a livelock?)"),
        (Some(EXIT_STALL), _) => format!("exit status {EXIT_STALL} (stall: a task ran on without a switch point)"),
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended abnormally".into(),
    }
}

fn explore(mut o: Options) -> ExitCode {
    if o.strategy == "pct" && o.pct_steps.is_none() && std::env::var("WEFT_SIM_PCT_STEPS").is_err() {
        o.pct_steps = calibrate(&o).map(|s| s.max(1));
        match o.pct_steps {
            Some(steps) => eprintln!("weft-sim: a run takes about {steps} steps; PCT's change points fall below that"),
            None => eprintln!(
                "weft-sim: warning: cannot size PCT: no random run of seeds {}..{} reported its steps (each \
                 died before its runtime closed or the process exited: an assertion, a crash, a \
                 deadlock); PCT's change points fall in the plugin's default of 100 steps, which may \
                 miss a run much longer or shorter: give --pct-steps N",
                o.first,
                o.first.saturating_add(CALIBRATION_RUNS) - 1
            ),
        }
    }
    let dir = std::env::temp_dir();
    let start = Instant::now();
    let mut next = o.first;
    let end = o.first.saturating_add(o.seeds);
    let mut running: Vec<Running> = Vec::new();
    let mut done = 0u64;
    let mut failure: Option<Failure> = None;
    let mut last_progress = Instant::now();
    eprintln!(
        "weft-sim: exploring seeds {}..{} ({} strategy, {} jobs) of {}",
        o.first,
        end - 1,
        o.strategy,
        o.jobs,
        o.program.join(" ")
    );
    loop {
        while failure.is_none() && next < end && running.len() < o.jobs {
            let output = dir.join(format!("weft-sim-{}-{}.out", std::process::id(), next));
            let file = match File::create(&output) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("weft-sim: cannot create {}: {e}", output.display());
                    return ExitCode::from(2);
                }
            };
            let err = file.try_clone().expect("a file handle");
            match command(&o, next).stdout(file).stderr(err).spawn() {
                Ok(child) => running.push(Running { seed: next, child, started: Instant::now(), output }),
                Err(e) => {
                    eprintln!("weft-sim: cannot run {}: {e}", o.program[0]);
                    return ExitCode::from(2);
                }
            }
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        let mut progressed = false;
        while i < running.len() {
            let r = &mut running[i];
            let status = match r.child.try_wait() {
                Ok(Some(s)) => Some(Ok(s)),
                Ok(None) if r.started.elapsed() > o.timeout => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    Some(Err(format!("timed out after {:.1} s", o.timeout.as_secs_f64())))
                }
                Ok(None) => None,
                Err(e) => Some(Err(format!("cannot wait for it: {e}"))),
            };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let r = running.swap_remove(i);
            progressed = true;
            done += 1;
            let what = match status {
                Ok(s) if s.success() => None,
                Ok(s) => Some(describe(s)),
                Err(e) => Some(e),
            };
            // Whatever the bytes: a run's output that is no UTF-8 was lost whole, sim's
            // report with it.
            let mut bytes = Vec::new();
            if let Ok(mut f) = File::open(&r.output) {
                let _ = f.read_to_end(&mut bytes);
            }
            let output = String::from_utf8_lossy(&bytes).into_owned();
            let _ = std::fs::remove_file(&r.output);
            if let Some(what) = what {
                // With several jobs, the lowest failing seed is the one reported.
                if failure.as_ref().is_none_or(|f| r.seed < f.seed) {
                    failure = Some(Failure { seed: r.seed, what, output });
                }
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(1));
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "weft-sim: {done}/{} seeds, {:.0} seeds/s, {} failure(s)",
                o.seeds,
                done as f64 / secs,
                failure.is_some() as u32
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    match failure {
        None => {
            eprintln!("weft-sim: no failure in {done} seeds ({secs:.2} s, {:.0} seeds/s)", done as f64 / secs);
            ExitCode::SUCCESS
        }
        Some(f) => {
            let tail: Vec<&str> = f.output.lines().rev().take(20).collect();
            eprintln!("weft-sim: seed {} failed: {}", f.seed, f.what);
            eprintln!("weft-sim: its output (last {} lines):", tail.len());
            for line in tail.iter().rev() {
                eprintln!("  | {line}");
            }
            eprintln!(
                "weft-sim: found after {} schedule(s) in {secs:.2} s; replay with:\n  {}",
                f.seed - o.first + 1,
                replay_line(&o, f.seed)
            );
            println!("{}", f.seed);
            ExitCode::from(1)
        }
    }
}

fn replay(seed: u64, o: Options) -> ExitCode {
    let status = command(&o, seed).env("WEFT_SIM_TRACE", "1").status();
    match status {
        Ok(s) => {
            if !s.success() {
                eprintln!("weft-sim: seed {seed}: {}", describe(s));
            }
            let code = s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("weft-sim: cannot run {}: {e}", o.program[0]);
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("explore") => parse(&args[1..], false).map(|(_, o)| explore(o)),
        Some("replay") => parse(&args[1..], true).map(|(s, o)| replay(s.expect("checked"), o)),
        _ => Err("expected explore or replay".into()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("weft-sim: {e}\n{USAGE}");
        ExitCode::from(2)
    })
}
