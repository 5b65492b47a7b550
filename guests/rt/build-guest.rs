// Build script shared by every guest binary crate and the control domain (each
// `build.rs` includes this file):
// links the binary with `guests/rt/link.ld` as a static, non-PIE ELF at 1 MiB.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    // Test guests sit beside the runtime; the control domain is in dom0-tools/.
    let ld = ["../rt/link.ld", "../../guests/rt/link.ld"]
        .iter()
        .find_map(|p| std::path::Path::new(&dir).join(p).canonicalize().ok())
        .expect("guests/rt/link.ld");
    println!("cargo:rerun-if-changed={}", ld.display());
    println!("cargo:rustc-link-arg-bins=-T{}", ld.display());
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
}
