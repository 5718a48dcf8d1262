//! weftbench-rs: the Rust side of weft's side-by-side benchmarks. Same protocol as the
//! C binary (benches/c): `weftbench-rs KIND [--n N] [--threads T] [--locks L]
//! [--cap C|unbounded] [--chans K] [--ms MS] [--rounds R]` runs every variant of KIND
//! alternately, R rounds, in this process, and prints one JSON object with the samples.
mod chan;
mod coro;
mod mutex;
mod par;
mod weft;

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub n: usize,
    pub threads: usize,
    pub locks: usize,
    /// None = unbounded.
    pub cap: Option<usize>,
    pub chans: usize,
    pub ms: u64,
}

#[derive(Clone, Copy, Default)]
pub struct Sample {
    pub value: f64,
    pub extra: f64,
}

pub type VariantFn = fn(&Params) -> Sample;

pub struct Kind {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: &'static str,
    pub extra_unit: Option<&'static str>,
    pub variants: Vec<(&'static str, VariantFn)>,
}

static RT: OnceLock<weft::Rt> = OnceLock::new();

/// The weft runtime of this process (opened before anything is timed).
pub fn rt() -> *mut weft::Runtime {
    RT.get().expect("runtime opened in main").0
}

fn usage() -> ! {
    eprintln!("usage: weftbench-rs --list | KIND [--n N] [--threads T] [--locks L] [--cap C|unbounded] [--chans K] [--ms MS] [--rounds R] [--variant NAME]");
    eprintln!("  --variant runs one variant alone (for a profiler); the report needs them all");
    std::process::exit(2);
}

fn kinds() -> Vec<Kind> {
    let mut all = mutex::kinds();
    all.extend(chan::kinds());
    all.extend(coro::kinds());
    all.extend(par::kinds());
    all
}

fn json_list(samples: &[f64]) -> String {
    let items: Vec<String> = samples.iter().map(|v| format!("{v:.6e}")).collect();
    format!("[{}]", items.join(", "))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let all = kinds();
    if args.len() < 2 {
        usage();
    }
    if args[1] == "--list" {
        for k in &all {
            let names: Vec<&str> = k.variants.iter().map(|(n, _)| *n).collect();
            println!("{}: {}", k.name, names.join(" "));
        }
        return;
    }
    let Some(mut kind) = all.into_iter().find(|k| k.name == args[1]) else {
        eprintln!("weftbench-rs: unknown kind {} (see --list)", args[1]);
        std::process::exit(2);
    };
    let mut p = Params { n: 1_000_000, threads: 2, locks: 1, cap: Some(1), chans: 2, ms: 200 };
    let mut rounds = 5usize;
    let mut only: Option<String> = None;
    let mut i = 2;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else { usage() };
        let num = || v.parse::<usize>().unwrap_or_else(|_| usage());
        match args[i].as_str() {
            "--n" => p.n = num(),
            "--threads" => p.threads = num(),
            "--locks" => p.locks = num(),
            "--cap" => p.cap = if v == "unbounded" { None } else { Some(num()) },
            "--chans" => p.chans = num(),
            "--ms" => p.ms = num() as u64,
            "--rounds" => rounds = num(),
            "--variant" => only = Some(v.clone()),
            _ => usage(),
        }
        i += 2;
    }
    if let Some(name) = only {
        kind.variants.retain(|(n, _)| *n == name);
        if kind.variants.is_empty() {
            eprintln!("weftbench-rs: {} has no variant {name} (see --list)", kind.name);
            std::process::exit(2);
        }
    }
    if rounds == 0 || p.n == 0 || p.threads == 0 || p.locks == 0 || p.chans == 0 {
        usage();
    }

    // glibc takes cheaper paths in a process that never had a second thread: make one
    // before anything is timed. It sleeps for the life of the process.
    std::thread::spawn(|| loop {
        std::thread::park();
    });
    if RT.set(weft::Rt::open()).is_err() {
        unreachable!();
    }

    // Untimed warm-up of every variant, then interleaved rounds (A B C, C B A, ...).
    let warm = Params { n: (p.n / 20).max(1), ms: (p.ms / 10).max(10), ..p };
    for (_, f) in &kind.variants {
        f(&warm);
    }
    let nv = kind.variants.len();
    let mut samples = vec![Vec::with_capacity(rounds); nv];
    for r in 0..rounds {
        for i in 0..nv {
            let v = if r % 2 == 0 { i } else { nv - 1 - i };
            samples[v].push((kind.variants[v].1)(&p));
        }
    }

    let mut out =
        format!("{{\"kind\": \"{}\", \"unit\": \"{}\", \"better\": \"{}\"", kind.name, kind.unit, kind.better);
    if let Some(u) = kind.extra_unit {
        out += &format!(", \"extra_unit\": \"{u}\"");
    }
    let field = |pick: fn(&Sample) -> f64| {
        let parts: Vec<String> = kind
            .variants
            .iter()
            .zip(&samples)
            .map(|((name, _), s)| format!("\"{name}\": {}", json_list(&s.iter().map(pick).collect::<Vec<_>>())))
            .collect();
        format!("{{{}}}", parts.join(", "))
    };
    out += &format!(", \"samples\": {}", field(|s| s.value));
    if kind.extra_unit.is_some() {
        out += &format!(", \"extra\": {}", field(|s| s.extra));
    }
    out += "}";
    println!("{out}");
}
