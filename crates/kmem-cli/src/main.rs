//! `kmem`: run the book's examples (`demo`) and read the machine's `/proc` texts (`stat`).
//!
//! Exit codes: 0 success; 1 an example or workload failed; 2 bad command line; 3 bad
//! `KMEM_*` environment or a machine that cannot be built.
#![forbid(unsafe_code)]

mod demo;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kmem::{Machine, Profile};

/// The Linux kernel's memory-allocation stack, run in userspace.
#[derive(Parser)]
#[command(name = "kmem", version, about, after_help = ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const ENV_HELP: &str = "Environment: KMEM_MEM, KMEM_PROFILE, KMEM_CPUS, KMEM_PCP, KMEM_KSWAPD, KMEM_MIN_FREE_KBYTES, \
KMEM_WATERMARK_SCALE_FACTOR, KMEM_OOM_TIMEOUT_MS, KMEM_LOG_ECHO, KMEM_LOG_BUF_LEN, KMEM_FAIL_PAGE_ALLOC.\n\
Exit codes: 0 ok, 1 an example or workload failed, 2 bad command line, 3 bad environment or machine.";

#[derive(Subcommand)]
enum Command {
    /// Run the book's examples on an i386 machine (1 GiB) and print their log.
    Demo {
        /// Run only this example (see --list).
        name: Option<String>,
        /// List the examples.
        #[arg(long)]
        list: bool,
    },
    /// Print a /proc text of a machine after a workload.
    Stat {
        /// Which text.
        #[arg(value_enum, default_value = "buddyinfo")]
        file: ProcFile,
        /// Workload to run first.
        #[arg(long, value_enum, default_value = "none")]
        workload: workload::Workload,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProcFile {
    Buddyinfo,
    Zoneinfo,
    Meminfo,
    Pagetypeinfo,
}

impl ProcFile {
    fn name(self) -> &'static str {
        match self {
            ProcFile::Buddyinfo => "buddyinfo",
            ProcFile::Zoneinfo => "zoneinfo",
            ProcFile::Meminfo => "meminfo",
            ProcFile::Pagetypeinfo => "pagetypeinfo",
        }
    }
}

fn machine(profile: Profile) -> Result<Machine, ExitCode> {
    let builder = Machine::builder().profile(profile).from_env().map_err(|e| {
        eprintln!("kmem: {e}");
        ExitCode::from(3)
    })?;
    builder.build().map_err(|e| {
        eprintln!("kmem: {e}");
        ExitCode::from(3)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { list: true, .. } => {
            for (name, about) in demo::EXAMPLES {
                println!("{name:<16} {about}");
            }
            ExitCode::SUCCESS
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
            match demo::run(&m, name.as_deref()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kmem demo: {e}");
                    ExitCode::from(1)
                }
            }
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
            print!("{}", m.proc_read(file.name()).unwrap_or_default());
            ExitCode::SUCCESS
        }
    }
}
