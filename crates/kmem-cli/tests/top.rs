//! `kmem top`, through the binary: slabtop's view, byte for byte, of the files real slabtop
//! showed (`slabtop/`, made by `slabtop/regen.sh`), of a machine after a workload, frames on a
//! pipe, the live view on a terminal (under `script(1)`, where it is installed), and every
//! bad argument.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slabtop");

fn kmem(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmem"));
    cmd.args(args).env_remove("KMEM_MEM").env_remove("KMEM_PROFILE").env_remove("KMEM_LOG_ECHO");
    cmd.output().expect("run kmem")
}

fn out(o: &Output) -> String {
    assert!(o.status.success(), "status {:?}, stderr: {}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).expect("utf-8")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).expect("fixture")
}

#[test]
fn every_sort_key_prints_what_slabtop_printed() {
    let files = [("host", "oasnculbpv"), ("kmem", "onuc"), ("empty", "o"), ("idle", "o")];
    for (file, keys) in files {
        let input = format!("{FIXTURES}/{file}.slabinfo");
        for key in keys.chars() {
            let text = out(&kmem(&["top", "--once", "--sort", &key.to_string(), "--slabinfo", &input]));
            assert_eq!(text, fixture(&format!("{file}.{key}.out")), "{file}.slabinfo sorted by {key}");
        }
    }
}

/// Real slabtop over `slabinfo`, where it and a mount namespace are available (root).
fn real_slabtop(slabinfo: &Path) -> Option<String> {
    let script = format!("mount --bind '{}' /proc/slabinfo && slabtop -o", slabinfo.display());
    // slabtop sorts names with strcoll and prints numbers with the locale's decimal point: C's.
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("LC_ALL", "C")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status.success().then(|| String::from_utf8(o.stdout).expect("utf-8"))
}

#[test]
fn a_machine_after_a_workload_is_shown_as_its_slabinfo_reads() {
    let shown = out(&kmem(&["top", "-o", "--workload", "slab"]));
    // The workload's own cache: 1000 objects of 200 bytes, 20 to a one-page slab.
    assert!(
        shown.contains("\n  1000   1000 100%    0.20K     50       20       200K kmem_demo              \n"),
        "{shown}"
    );
    assert!(shown.starts_with(" Active / Total Objects (% used)    : "), "{shown}");
    // The same machine's /proc/slabinfo, read by `top --slabinfo`, shows the same.
    let slabinfo = out(&kmem(&["stat", "slabinfo", "--workload", "slab"]));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("top-slab.slabinfo");
    std::fs::write(&path, slabinfo).expect("write slabinfo");
    assert_eq!(out(&kmem(&["top", "-o", "--slabinfo", path.to_str().expect("utf-8 path")])), shown);
    if let Some(real) = real_slabtop(&path) {
        assert_eq!(real, shown, "real slabtop over the machine's slabinfo");
    }
}

#[test]
fn frames_on_a_pipe_are_whole_and_apart_and_the_workload_goes_on() {
    let text = out(&kmem(&["top", "-n", "3", "-d", "0.05", "--sort", "n"]));
    let frames: Vec<&str> = text.split("\n\n Active / Total Objects").collect();
    assert_eq!(frames.len(), 3, "{text}");
    for frame in &frames {
        assert!(frame.contains("  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME"), "{frame}");
        assert!(frame.contains(" kmem_churn "), "{frame}");
        assert!(!frame.contains('\x1b'), "no terminal codes on a pipe: {frame:?}");
    }
    // Sorted by name: kmalloc-128 comes before kmalloc-16, and kmem_churn after both.
    let at = |name: &str| frames[0].find(name).expect(name);
    assert!(at(" kmalloc-128 ") < at(" kmalloc-16 ") && at(" kmalloc-16 ") < at(" kmem_churn "), "{}", frames[0]);
}

#[test]
fn stat_shows_churn_after_its_first_round_with_the_objects_still_held() {
    let text = out(&kmem(&["stat", "slabinfo", "--workload", "churn"]));
    let line = text.lines().find(|l| l.starts_with("kmem_churn ")).expect("a kmem_churn line");
    let active: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("active_objs");
    assert!(active > 0, "{line}");
}

#[test]
fn a_workload_that_fails_after_its_first_round_ends_top_with_its_error() {
    // failslab (GFP_KERNEL included) fails the 30,000th slab allocation, after churn's first
    // round: the frames stop, and the error is said, exit 1. Before, top went on drawing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["top", "-d", "0.05"])
        .env_remove("KMEM_MEM")
        .env("KMEM_FAILSLAB", "30000,100,0,1,ignore-gfp-wait=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kmem");
    // The frames are drained as they come (a full pipe would stop top); a deadline only turns
    // a hang (the old behaviour) into a failure.
    let mut stdout = child.stdout.take().expect("stdout");
    let frames = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("top went on after its workload failed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("kmem top: workload: ") && err.contains("memory allocation failed"), "{err}");
    assert!(frames.join().expect("reader").contains(" kmem_churn "), "frames were drawn first");
}

#[test]
fn a_reader_that_goes_away_ends_top_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["top", "-d", "0.01", "--workload", "none"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kmem");
    let mut first = [0u8; 64];
    child.stdout.take().expect("stdout").read_exact(&mut first).expect("a frame");
    // The pipe is closed here; the next frame's write ends `top` with success.
    let o = child.wait_with_output().expect("kmem ends");
    assert!(o.status.success(), "status {:?}, stderr: {}", o.status, String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Whether script(1) is installed.
fn has_script() -> bool {
    Command::new("sh").args(["-c", "command -v script"]).output().is_ok_and(|o| o.status.success())
}

/// Runs `kmem top -n 2 -d 0.05 --workload none` under script(1) in the shell form `form`
/// (`{}` is the command) and checks that its two frames stayed on the main screen, the last
/// line (the heading, on a machine with no cache yet) ended before the shell's prompt.
fn two_frames_on_the_main_screen(form: &str) {
    let top = format!("{} top -n 2 -d 0.05 --workload none", env!("CARGO_BIN_EXE_kmem"));
    let run = form.replace("{}", &top);
    let o = Command::new("sh").args(["-c", &run]).stdin(Stdio::null()).output().expect("run sh");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("\x1b[?1049"), "no alternate screen: {text:?}");
    assert_eq!(text.matches("\x1b[H\x1b[2J").count(), 2, "{text:?}");
    assert!(text.ends_with("\x1b[m\r\n"), "the last line ended: {text:?}");
}

#[test]
fn on_a_terminal_without_keys_the_last_frame_stays_and_ends_its_line() {
    if has_script() {
        two_frames_on_the_main_screen("script -q -c '{} < /dev/null' /dev/null");
    }
}

#[test]
fn on_a_terminal_keys_sort_and_quit() {
    // `script` gives `top` a terminal on both ends. The keys are sent once the first frame is
    // in the typescript (raw mode is on by then), both at once: `n` re-sorts and redraws, and
    // `q`, read in the same burst, must not wait in a buffer where `poll` cannot see it. The
    // input stays open until `top` left the alternate screen (its end would send a Ctrl-D). No
    // timing is assumed: at `-d 2`, a lost `q` shows as many frames (the feeder gives up after
    // 2 minutes, and its end quits `top`).
    if !has_script() {
        return; // No script(1) here (found first: the feeder below would wait 2 minutes for it).
    }
    let ts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("top-terminal.typescript");
    let _ = std::fs::remove_file(&ts);
    let ts = ts.to_str().expect("utf-8 path");
    let feed = format!(
        "i=0; while ! grep -q 'OBJS ACTIVE' '{ts}' 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; printf nq; \
         while ! grep -q '?1049l' '{ts}' && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
    );
    let run = format!("({feed}) | script -q -f -c '{} top -d 2' '{ts}'", env!("CARGO_BIN_EXE_kmem"));
    let o = Command::new("sh").args(["-c", &run]).output().expect("run sh");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("\x1b[?1049h"), "the alternate screen first: {text:?}");
    assert!(text.trim_end().ends_with("\x1b[?1049l"), "and left at the end: {text:?}");
    let frames: Vec<&str> = text.split("\x1b[H\x1b[2J").skip(1).collect();
    assert!(frames.len() >= 2 && frames.len() < 6, "n redrew and q ended it: {} frames", frames.len());
    assert!(frames[0].contains("\x1b[7m  OBJS ACTIVE"), "the heading in reverse video: {:?}", frames[0]);
    let last = frames.last().expect("a frame");
    let (a, b) = (last.find(" kmalloc-128 ").expect("128"), last.find(" kmalloc-16 ").expect("16"));
    assert!(a < b, "n sorted by name: {last}");
}

#[test]
fn on_a_terminal_with_iterations_the_last_frame_stays_on_the_main_screen() {
    // Keys are read (the input is the terminal, open until after `top` ended), but with `-n`
    // the frames go to the main screen, where the last one stays, its line ended.
    if has_script() {
        two_frames_on_the_main_screen("(sleep 1) | script -q -c '{}' /dev/null");
    }
}

#[test]
fn bad_arguments_and_files_are_named() {
    let fail = |args: &[&str], code: i32, says: &str| {
        let o = kmem(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    };
    fail(&["top", "-o", "--sort", "x"], 2, "not a sort key");
    fail(&["top", "-o", "--sort", "on"], 2, "not a sort key");
    fail(&["top", "--delay", "0"], 2, "positive number of seconds");
    fail(&["top", "--delay", "soon"], 2, "positive number of seconds");
    fail(&["top", "--delay", "1", "--once"], 2, "cannot be used with");
    fail(&["top", "-n", "0"], 2, "--iterations");
    fail(&["top", "--workload", "slab", "--slabinfo", "x"], 2, "cannot be used with");
    fail(&["top", "-o", "--slabinfo", "/nonexistent/slabinfo"], 1, "kmem top: /nonexistent/slabinfo: cannot read");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("top-bad.slabinfo");
    let bad = path.to_str().expect("utf-8 path");
    std::fs::write(&path, "slabinfo - version: 2.1\nfoo 1 2 3 4 5 : tunables 0 0 0 : slabdata 1 x 0\n").expect("write");
    fail(&["top", "-o", "--slabinfo", bad], 1, "line 2: <num_slabs> is \"x\", not a number");
    std::fs::write(&path, "MemTotal: 1 kB\n").expect("write");
    fail(&["top", "-o", "--slabinfo", bad], 1, "line 1: not a /proc/slabinfo text of version 2.x");
}

/// A `--slabinfo` file is read up to 16 MiB (a /proc/slabinfo of 100,000 caches is below it):
/// a larger one (`--slabinfo /dev/zero`) is an error, not a read without end.
#[test]
fn a_slabinfo_file_above_16_mib_is_an_error() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("top-huge.slabinfo");
    let mut text = b"slabinfo - version: 2.1\n".to_vec();
    text.resize((16 << 20) + 1, b' ');
    std::fs::write(&path, &text).expect("write");
    let huge = path.to_str().expect("utf-8 path");
    let o = kmem(&["top", "-o", "--slabinfo", huge]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err, format!("kmem top: {huge}: cannot read: larger than 16 MiB: not a /proc/slabinfo text\n"));
    std::fs::remove_file(&path).expect("remove");
}
