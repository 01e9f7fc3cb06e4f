//! `plain-simd RELAXED.wasm PLAIN.wasm`: see the library's documentation.

use std::process::ExitCode;

fn run(input: &str, output: &str) -> Result<usize, String> {
    let wasm = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let (plain, rewritten) = plain_simd::unfuse(&wasm).map_err(|e| format!("{input}: {e}"))?;
    std::fs::write(output, plain).map_err(|e| format!("cannot write {output}: {e}"))?;
    Ok(rewritten)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: plain-simd RELAXED.wasm PLAIN.wasm");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok(n) => {
            println!(
                "plain-simd: {n} f32x4.relaxed_madd rewritten as f32x4.mul + f32x4.add: {output}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plain-simd: {e}");
            ExitCode::FAILURE
        }
    }
}
