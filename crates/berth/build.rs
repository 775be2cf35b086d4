//! Links the functions of berth's hot paths first and together when
//! scripts/build-static.sh names their list in BERTH_HOT_SYMBOLS (an LLD
//! option; see that script and BENCHMARKS.md). Through here rather than
//! RUSTFLAGS so that cargo relinks when the list changes.
fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_HOT_SYMBOLS");
    if let Some(list) = std::env::var_os("BERTH_HOT_SYMBOLS") {
        let list = list.to_string_lossy();
        println!("cargo:rerun-if-changed={list}");
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={list}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
