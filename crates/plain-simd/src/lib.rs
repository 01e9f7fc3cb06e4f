//! `plain-simd IN.wasm OUT.wasm`: the page's plain-SIMD threaded build (Safari, engines without
//! relaxed SIMD, `?simd=plain`) derived from the relaxed-SIMD build instead of compiled again.
//!
//! Relaxed SIMD's spec lets `f32x4.relaxed_madd` round once (fused) or twice (a multiply, then
//! an add); the second is plain SIMD, so rewriting each one into `f32x4.mul` + `f32x4.add` gives
//! a module every SIMD engine accepts and that computes what the relaxed one may. Kiln's kernels
//! use no other relaxed instruction: the output is validated with relaxed SIMD switched off, so
//! one that appears fails the build instead of reaching Safari.

use walrus::ir::{
    BinaryOp, Binop, Instr, InstrSeq, LocalGet, LocalSet, TernOp, TernaryOp, VisitorMut,
};
use walrus::{LocalId, ValType};
use wasm_encoder::Encode;

/// Rewrites the relaxed multiply-adds of one function, through a scratch local that holds the
/// addend while the product is computed (the operands stay in their evaluation order).
struct Unfuse {
    scratch: LocalId,
    rewritten: usize,
}

impl VisitorMut for Unfuse {
    fn start_instr_seq_mut(&mut self, seq: &mut InstrSeq) {
        if !seq.instrs.iter().any(|(i, _)| is_madd(i)) {
            return;
        }
        let mut out = Vec::with_capacity(seq.instrs.len() + 8);
        for (instr, at) in seq.instrs.drain(..) {
            if !is_madd(&instr) {
                out.push((instr, at));
                continue;
            }
            self.rewritten += 1;
            let (keep, mul, add) = (self.scratch, BinaryOp::F32x4Mul, BinaryOp::F32x4Add);
            out.extend(
                [
                    Instr::LocalSet(LocalSet { local: keep }),
                    Instr::Binop(Binop { op: mul }),
                    Instr::LocalGet(LocalGet { local: keep }),
                    Instr::Binop(Binop { op: add }),
                ]
                .map(|instr| (instr, at)),
            );
        }
        seq.instrs = out;
    }
}

fn is_madd(instr: &Instr) -> bool {
    matches!(
        instr,
        Instr::TernOp(TernOp {
            op: TernaryOp::F32x4RelaxedMadd
        })
    )
}

/// The `target_features` section lists what the linker saw in use; tools read it (binaryen
/// enables what it lists), so the plain module must not claim relaxed SIMD.
fn drop_relaxed_feature(module: &mut walrus::Module) -> Result<(), String> {
    let Some(section) = module.customs.remove_raw("target_features") else {
        return Ok(());
    };
    let kept = features_other_than_relaxed(&section.data)
        .map_err(|e| format!("its target_features section is damaged: {e}"))?;
    let mut data = Vec::new();
    (kept.len() as u32).encode(&mut data);
    kept.into_iter()
        .for_each(|entry| data.extend_from_slice(&section.data[entry]));
    module.customs.add(walrus::RawCustomSection {
        name: section.name,
        data,
    });
    Ok(())
}

/// Where each entry but relaxed SIMD's is: the entries' count, then per entry a prefix byte
/// and a name.
fn features_other_than_relaxed(data: &[u8]) -> wasmparser::Result<Vec<std::ops::Range<usize>>> {
    let mut reader = wasmparser::BinaryReader::new(data, 0);
    let mut kept = Vec::new();
    for _ in 0..reader.read_var_u32()? {
        let start = reader.original_position();
        reader.read_u8()?;
        if reader.read_string()? != "relaxed-simd" {
            kept.push(start..reader.original_position());
        }
    }
    Ok(kept)
}

/// The module in `wasm` with every `f32x4.relaxed_madd` unfused, and how many there were.
/// Fails if the result still needs relaxed SIMD.
pub fn unfuse(wasm: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut module =
        walrus::Module::from_buffer(wasm).map_err(|e| format!("not a WebAssembly module: {e}"))?;
    let mut rewritten = 0;
    for (_, func) in module.funcs.iter_local_mut() {
        let mut unfuse = Unfuse {
            scratch: module.locals.add(ValType::V128),
            rewritten: 0,
        };
        let entry = func.entry_block();
        walrus::ir::dfs_pre_order_mut(&mut unfuse, func, entry);
        rewritten += unfuse.rewritten;
    }
    drop_relaxed_feature(&mut module)?;
    let bytes = module.emit_wasm();
    let mut plain = wasmparser::WasmFeatures::default();
    plain.remove(wasmparser::WasmFeatures::RELAXED_SIMD);
    wasmparser::Validator::new_with_features(plain).validate_all(&bytes).map_err(|e| {
        format!("the module still needs relaxed SIMD after the rewrite ({e}): an instruction other than f32x4.relaxed_madd is in use; teach crates/plain-simd its plain equivalent")
    })?;
    Ok((bytes, rewritten))
}
