//! Puts the functions a running server executes next to each other in the
//! release binary, so they occupy few pages (issue 5).
//!
//! Linux maps a program's code in 64 KiB blocks around each page it
//! touches. Left in the compiler's order, the 750-odd functions (0.8 MiB)
//! that start the server and answer a request are spread over almost all
//! of the 2.5 MiB of code, and 2.3 MiB of it ends up resident. The list
//! holds the names of both builds, with and without ACME.
//! `build/hot-functions.txt` (written by `bench/hot-functions.sh`) lists
//! them; lld's `--symbol-ordering-file` lays them out first, and 1.1 MiB
//! is resident: idle RSS 4.6 -> 3.4 MiB (bench/README.md).
//! Names the file lists that a build does not have are skipped, so a stale
//! list only costs memory, never a failed build.
//!
//! Only for release builds linked by rust-lld, the default linker on
//! x86_64-unknown-linux-gnu since Rust 1.90. Another linker is left alone.

use std::env;
use std::path::Path;
use std::process::Command;

const ORDER_FILE: &str = "build/hot-functions.txt";

fn main() {
    println!("cargo::rerun-if-changed={ORDER_FILE}");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let target = env::var("TARGET").unwrap_or_default();
    let release = env::var("PROFILE").as_deref() == Ok("release");
    if !release || target != "x86_64-unknown-linux-gnu" || !links_with_rust_lld() {
        return;
    }
    let order = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join(ORDER_FILE);
    if order.is_file() {
        println!("cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether rustc links with its bundled lld: version 1.90 or later, and no
/// linker (or linker option) chosen in the configuration or the flags.
fn links_with_rust_lld() -> bool {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if env::var_os("RUSTC_LINKER").is_some()
        || flags.contains("linker")
        || flags.contains("link-self-contained")
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else { return false };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)?.parse::<u32>().ok());
    minor.is_some_and(|minor| minor >= 90)
}
