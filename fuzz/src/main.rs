//! `gateway-fuzz <target|all> [seconds]`: mutates the committed corpus against a target
//! for a fixed time (default 60 s), on the stable toolchain (no libFuzzer: byte flips,
//! inserts, deletes, splices and JSON-token swaps from a seeded RNG, no coverage
//! feedback). A violation is saved to `fuzz/artifacts/<target>/crash-<hash>` and ends
//! the run with status 1; commit it to `fuzz/corpus/<target>/` with the fix so the replay
//! test keeps it fixed. Inputs that reached new outcomes are not tracked: the corpus
//! grows by hand, from what the providers document and what crashed.

use gateway_fuzz::{TARGETS, Target, target};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"1e400",
    b"0.0000000001",
    b"\"\\u0000\"",
    b"data: ",
    b"\n\n",
    b"event: ",
    b"\r\n",
    b"[DONE]",
    b"18446744073709551616",
    b"\"messages\"",
    b"\"content\"",
    b"\"role\"",
    b"\"tools\"",
    b"\"type\"",
    b"\xff\xfe",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, seeded, repeatable
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 if at < input.len() => {
                let end = (at + 1 + rng.below(8)).min(input.len());
                input.drain(at..end);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, t.iter().copied());
            }
            4 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let end = (at + rng.below(16)).min(input.len());
                input.truncate(end.max(at));
            }
        }
    }
    input.truncate(64 * 1024);
}

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn run(root: &Path, t: &Target, seconds: u64, seed: u64) -> Result<u64, PathBuf> {
    let seeds = corpus(&root.join("corpus").join(t.name));
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut execs = 0u64;
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let mut input = if seeds.is_empty() {
            Vec::new()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        mutate(&mut rng, &seeds, &mut input);
        execs += 1;
        if std::panic::catch_unwind(|| (t.run)(&input)).is_err() {
            let _ = std::panic::take_hook();
            let dir = root.join("artifacts").join(t.name);
            let name = format!("crash-{:016x}", fnv(&input));
            let path = dir.join(name);
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&path, &input);
            (t.run)(&input); // again, with the panic message printed this time
            return Err(path);
        }
    }
    let _ = std::panic::take_hook();
    Ok(execs)
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("all");
    let seconds = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261203);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let targets: Vec<&Target> = if which == "all" {
        TARGETS.iter().collect()
    } else if let Some(t) = target(which) {
        vec![t]
    } else {
        eprintln!(
            "gateway-fuzz: no target {which}; targets: {}",
            TARGETS
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    };
    for t in targets {
        match run(root, t, seconds, seed) {
            Ok(execs) => println!(
                "gateway-fuzz: {:<18} {execs:>9} inputs in {seconds} s, no violation",
                t.name
            ),
            Err(path) => {
                eprintln!(
                    "gateway-fuzz: {} violated its property; input saved to {}",
                    t.name,
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
