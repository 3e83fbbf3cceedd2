//! Links the firmware example: cortex-m-rt's `link.x` includes this crate's `memory.x`.
//! Does nothing for host builds or without the `firmware` feature.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=memory.x");
    let target = env::var("TARGET").unwrap_or_default();
    if !(target.starts_with("thumb") && env::var_os("CARGO_FEATURE_FIRMWARE").is_some()) {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    fs::copy(manifest.join("memory.x"), out.join("memory.x")).expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-examples=-Tlink.x");
}
