// Build script shared by every guest binary crate (each `build.rs` includes this file):
// links the binary with `guests/rt/link.ld` as a static, non-PIE ELF at 1 MiB.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let ld = std::path::Path::new(&dir).join("../rt/link.ld");
    let ld = ld.canonicalize().expect("guests/rt/link.ld");
    println!("cargo:rerun-if-changed={}", ld.display());
    println!("cargo:rustc-link-arg-bins=-T{}", ld.display());
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
}
