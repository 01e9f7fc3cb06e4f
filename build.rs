//! Builds the default backbone into the native CLI, so a `kiln` binary copied to another machine
//! (or installed) still fine-tunes from pretrained weights without the source tree's assets/.
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_bundled_weights)");
    println!("cargo::rerun-if-changed=build.rs");
    let pth = Path::new("assets/efficientnet-lite0-57934424.pth");
    // The browser builds take their weights from the page (www/), not from the binary.
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    if pth.exists() && !wasm {
        println!("cargo::rerun-if-changed={}", pth.display());
        println!("cargo::rustc-cfg=kiln_bundled_weights");
        println!("cargo::rustc-env=KILN_BUNDLED_WEIGHTS={}", pth.canonicalize().unwrap().display());
    } else if !wasm {
        // Fetching the assets later (scripts/fetch-assets.sh) reruns this and bundles them.
        // (Not for wasm: build-web.sh writes the converted weights into assets/ after its
        // builds, which would otherwise rebuild the crate for every later wasm build.)
        println!("cargo::rerun-if-changed=assets");
    }
}
