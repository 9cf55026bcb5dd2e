//! `kmem`: run the book's examples (`demo`), read the machine's `/proc` texts (`stat`), watch
//! its slab caches as slabtop does (`top`), run C modules (`insmod`), and replay a kernel's
//! `kmem:*` trace (`replay`); `bench` runs the benchmark suite.
//!
//! Exit codes: 0 success; 1 an example or workload failed, `insmod` failed (as
//! `insmod(8)`), a trace or slabinfo file could not be read, or the output could not be written; 2 bad command line; 3 bad `KMEM_*`
//! environment or a machine that cannot be built. A reader that closes the pipe early
//! (`kmem demo | head`) ends the output quietly, as for any filter.
#![deny(unsafe_code)]

mod bench;
mod demo;
mod insmod;
mod replay;
mod scull;
mod slabtop;
mod top;
mod trace;
mod workload;

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use kmem::{Machine, Profile};

/// The Linux kernel's memory-allocation stack, run in userspace.
#[derive(Parser)]
#[command(name = "kmem", version, about = "The Linux kernel's memory-allocation stack, run in userspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The `--help` epilogue: every `KMEM_*` variable (from `kmem::env::VARIABLES`) and the exit codes.
fn after_help() -> String {
    let mut text = String::from("Environment:\n");
    for (var, what) in kmem::env::VARIABLES {
        text.push_str(&format!("  {var:<28} {what}\n"));
    }
    text.push_str(
        "Exit codes: 0 ok, 1 an example, workload or insmod failed, a trace or slabinfo file could not be read or the output could not be written, 2 bad command line, 3 bad environment or machine.",
    );
    text
}

#[derive(Subcommand)]
enum Command {
    /// Run the book's examples on an i386 machine (1 GiB) and print their log.
    Demo {
        /// Run only this example (see --list).
        name: Option<String>,
        /// List the examples.
        #[arg(long, conflicts_with = "name")]
        list: bool,
    },
    /// Print a /proc text of a machine (i386, 1 GiB, unless KMEM_* say otherwise) after a workload.
    Stat {
        /// Which text.
        #[arg(value_enum, default_value = "buddyinfo")]
        file: ProcFile,
        /// Workload to run first.
        #[arg(long, value_enum, default_value = "none")]
        workload: workload::Workload,
    },
    /// Show slabtop's view of a machine's slab caches (i386, 1 GiB, unless KMEM_* say
    /// otherwise) while a workload runs, or of a /proc/slabinfo file.
    ///
    /// On a terminal it redraws every --delay seconds; keys: a sort letter re-sorts, q quits.
    /// Elsewhere it prints every frame in full, a blank line between frames.
    #[command(after_help = format!("Sort keys: {}.", slabtop::SORT_KEYS))]
    Top {
        /// Seconds between frames (fractions allowed).
        #[arg(short, long, default_value = "3", value_parser = parse_delay, conflicts_with = "once")]
        delay: std::time::Duration,
        /// Print one frame and exit.
        #[arg(short, long)]
        once: bool,
        /// Sort by this key (see below).
        #[arg(short, long, default_value = "o", value_parser = parse_sort)]
        sort: slabtop::SortKey,
        /// Stop after this many frames.
        #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
        iterations: Option<u64>,
        /// Workload to run on the machine (churn goes on while top runs).
        #[arg(long, value_enum, default_value = "churn", conflicts_with = "slabinfo")]
        workload: workload::Workload,
        /// Show this file (in /proc/slabinfo's format, re-read for every frame) instead of a machine.
        #[arg(long, value_name = "FILE")]
        slabinfo: Option<std::path::PathBuf>,
    },
    /// Load a C module (gcc -shared -fPIC -I crates/kmem-ffi/include -o m.so m.c), run its init
    /// and exit, and print the kernel log as dmesg does.
    Insmod {
        /// The module file (a shared object).
        module: std::path::PathBuf,
        /// Module parameters: name=value (or name alone for a bool).
        params: Vec<String>,
        /// Remove the module right after its init (otherwise it is removed when kmem exits).
        #[arg(long)]
        rmmod: bool,
        /// Print this /proc text after init (after exit with --rmmod); repeatable.
        #[arg(long, value_enum)]
        stat: Vec<ProcFile>,
        /// Leave out timestamps (as dmesg -t).
        #[arg(short = 't', long)]
        notime: bool,
        /// Prefix each record with its level in angle brackets (as dmesg -r).
        #[arg(short = 'r', long)]
        raw: bool,
        /// Track the module's slab and vmalloc allocations and, after its exit, report what it
        /// left allocated as kmemleak does (the log line, then /sys/kernel/debug/kmemleak).
        #[arg(long)]
        kmemleak: bool,
    },
    /// Run the benchmark suite (kmem-bench, built beside kmem) with these arguments (see
    /// `kmem bench --help`); its exit code is kmem's.
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments for kmem-bench (--quick, --groups G, --rounds N, --out FILE, --help).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Replay a kernel's kmem:* trace on a machine and compare what it and kmem allocated.
    ///
    /// The trace is ftrace text (/sys/kernel/tracing/trace, trace_pipe, or perf script); the
    /// machine is x86_64 with 1 GiB unless --profile or KMEM_* say otherwise.
    ///
    /// Events read: kmalloc, kmem_cache_alloc, kfree, kmem_cache_free (and the _node forms),
    /// mm_page_alloc, mm_page_free, mm_page_free_batched; others are counted and skipped.
    /// Requests never sleep: each is made without __GFP_DIRECT_RECLAIM and __GFP_NOFAIL, and
    /// one kmem cannot serve at once is counted as a failure.
    Replay {
        /// The trace file, or - for standard input.
        trace: std::path::PathBuf,
        /// Replay the page events too (the traced slab's own pages are among them, so kmem's
        /// slab pages would be counted twice).
        #[arg(long)]
        pages: bool,
        /// How many call sites to list (by bytes allocated).
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Run each event on a thread of its own for its trace CPU (modulo the machine's CPUs),
        /// still in trace order, so kmem's per-CPU caches see the traced pattern.
        #[arg(long)]
        per_cpu: bool,
        /// Machine profile.
        #[arg(long, value_enum, default_value = "x86-64")]
        profile: ProfileArg,
        /// Print this /proc text after the replay; repeatable.
        #[arg(long, value_enum)]
        stat: Vec<ProcFile>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    /// DMA / DMA32 / Normal.
    X86_64,
    /// DMA / Normal / HighMem.
    I386,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProcFile {
    Buddyinfo,
    Zoneinfo,
    Meminfo,
    Pagetypeinfo,
    Slabinfo,
    Vmallocinfo,
    Vmstat,
}

impl ProcFile {
    fn name(self) -> &'static str {
        match self {
            ProcFile::Buddyinfo => "buddyinfo",
            ProcFile::Zoneinfo => "zoneinfo",
            ProcFile::Meminfo => "meminfo",
            ProcFile::Pagetypeinfo => "pagetypeinfo",
            ProcFile::Slabinfo => "slabinfo",
            ProcFile::Vmallocinfo => "vmallocinfo",
            ProcFile::Vmstat => "vmstat",
        }
    }
}

/// `--delay`: a positive number of seconds.
fn parse_delay(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(std::time::Duration::from_secs_f64(secs)),
        _ => Err("the delay must be a positive number of seconds, at most 86400".to_owned()),
    }
}

/// `--sort`: one of slabtop's letters.
fn parse_sort(s: &str) -> Result<slabtop::SortKey, String> {
    let mut chars = s.chars();
    match (chars.next().and_then(slabtop::SortKey::from_char), chars.next()) {
        (Some(key), None) => Ok(key),
        _ => Err(format!("not a sort key (one letter of: {})", slabtop::SORT_KEYS)),
    }
}

fn machine(profile: Profile) -> Result<Machine, ExitCode> {
    // 8 CPU slots and 1 GiB unless KMEM_CPUS and KMEM_MEM say otherwise: slab orders depend on
    // the CPU count (`calculate_order`), and the output must not depend on the host (the x86_64
    // profile's own default is the host's RAM).
    let builder = Machine::builder().profile(profile).cpus(8).mem_bytes(1 << 30).from_env().map_err(|e| {
        eprintln!("kmem: {e}");
        ExitCode::from(3)
    })?;
    builder.build().map_err(|e| {
        eprintln!("kmem: {e}");
        ExitCode::from(3)
    })
}

/// Ends on what clap made of the command line: `--help` and `--version` are written to
/// standard output (through [`emit`], so a write error is exit code 1, as for any output),
/// anything else is a bad command line (exit code 2, clap's message on standard error).
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return emit(&e.render().to_string()).err().unwrap_or(ExitCode::SUCCESS);
    }
    let _ = e.print();
    ExitCode::from(2)
}

/// Writes `text` to standard output. `Err` holds the exit code to end with: success when the
/// reader went away (a closed pipe: there is no one left to tell), 1 for any other write error,
/// which is reported.
fn emit(text: &str) -> Result<(), ExitCode> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            ExitCode::SUCCESS
        } else {
            eprintln!("kmem: cannot write to standard output: {e}");
            ExitCode::from(1)
        }
    })
}

fn main() -> ExitCode {
    let parsed = Cli::command().after_help(after_help()).try_get_matches().and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    match cli.command {
        Command::Demo { list: true, .. } => {
            let list: String = demo::EXAMPLES.iter().map(|(name, about)| format!("{name:<16} {about}\n")).collect();
            emit(&list).err().unwrap_or(ExitCode::SUCCESS)
        }
        Command::Demo { name, .. } => {
            if let Some(n) = &name
                && !demo::EXAMPLES.iter().any(|(e, _)| e == n)
            {
                eprintln!("kmem demo: no example named '{n}' (see kmem demo --list)");
                return ExitCode::from(2);
            }
            let m = match machine(Profile::I386) {
                Ok(m) => m,
                Err(code) => return code,
            };
            let outcome = demo::run(&m, name.as_deref());
            if let Err(code) = emit(&outcome.text) {
                return code;
            }
            match outcome.error {
                None => ExitCode::SUCCESS,
                Some(e) => {
                    eprintln!("kmem demo: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Insmod { module, params, rmmod, stat, notime, raw, kmemleak } => {
            let stats: Vec<&'static str> = stat.iter().map(|f| f.name()).collect();
            insmod::run(&insmod::Options {
                path: &module,
                params: &params,
                rmmod,
                stats: &stats,
                notime,
                raw,
                kmemleak,
            })
        }
        Command::Replay { trace, pages, top, per_cpu, profile, stat } => {
            let m = match machine(match profile {
                ProfileArg::X86_64 => Profile::X86_64,
                ProfileArg::I386 => Profile::I386,
            }) {
                Ok(m) => m,
                Err(code) => return code,
            };
            let name = trace.display().to_string();
            let result = if name == "-" {
                replay::run(&m, io::stdin().lock(), replay::Options { pages, top, per_cpu })
            } else {
                match std::fs::File::open(&trace) {
                    Ok(f) => replay::run(&m, io::BufReader::new(f), replay::Options { pages, top, per_cpu }),
                    Err(e) => Err(format!("cannot open: {e}")),
                }
            };
            let mut text = match result {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("kmem replay: {name}: {e}");
                    return ExitCode::from(1);
                }
            };
            for f in stat {
                text.push('\n');
                text.push_str(&m.proc_read(f.name()).unwrap_or_default());
            }
            emit(&text).err().unwrap_or(ExitCode::SUCCESS)
        }
        Command::Bench { args } => bench::run(&args),
        Command::Top { delay, once, sort, iterations, workload, slabinfo } => {
            let opts = top::Options { delay, once, sort, iterations };
            let result = match &slabinfo {
                Some(path) => top::run(&top::Source::File(path), &opts),
                None => match machine(Profile::I386) {
                    Ok(m) => top::run(&top::Source::Machine(&m, workload), &opts),
                    Err(code) => Err(code),
                },
            };
            result.err().unwrap_or(ExitCode::SUCCESS)
        }
        Command::Stat { file, workload } => {
            let m = match machine(Profile::I386) {
                Ok(m) => m,
                Err(code) => return code,
            };
            if let Err(e) = workload.run(&m) {
                eprintln!("kmem stat: workload failed: {e}");
                return ExitCode::from(1);
            }
            emit(&m.proc_read(file.name()).unwrap_or_default()).err().unwrap_or(ExitCode::SUCCESS)
        }
    }
}
