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
            out.push((
                Instr::LocalSet(LocalSet {
                    local: self.scratch,
                }),
                at,
            ));
            out.push((
                Instr::Binop(Binop {
                    op: BinaryOp::F32x4Mul,
                }),
                at,
            ));
            out.push((
                Instr::LocalGet(LocalGet {
                    local: self.scratch,
                }),
                at,
            ));
            out.push((
                Instr::Binop(Binop {
                    op: BinaryOp::F32x4Add,
                }),
                at,
            ));
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
fn drop_relaxed_feature(module: &mut walrus::Module) {
    let Some(section) = module.customs.remove_raw("target_features") else {
        return;
    };
    let data = &section.data;
    let mut kept = Vec::new();
    let (count, mut at) = leb(data, 0);
    for _ in 0..count {
        let start = at;
        let (len, name_at) = leb(data, at + 1);
        at = name_at + len;
        if &data[name_at..at] != b"relaxed-simd" {
            kept.push(&data[start..at]);
        }
    }
    let mut out = vec![kept.len() as u8];
    kept.iter().for_each(|entry| out.extend_from_slice(entry));
    module.customs.add(walrus::RawCustomSection {
        name: section.name,
        data: out,
    });
}

/// An unsigned LEB128 at `at`: the value and where the next field starts.
fn leb(data: &[u8], mut at: usize) -> (usize, usize) {
    let (mut value, mut shift) = (0, 0);
    loop {
        let byte = data[at];
        at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return (value, at);
        }
    }
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
    drop_relaxed_feature(&mut module);
    let bytes = module.emit_wasm();
    let mut plain = wasmparser::WasmFeatures::default();
    plain.remove(wasmparser::WasmFeatures::RELAXED_SIMD);
    wasmparser::Validator::new_with_features(plain).validate_all(&bytes).map_err(|e| {
        format!("the module still needs relaxed SIMD after the rewrite ({e}): an instruction other than f32x4.relaxed_madd is in use; teach crates/plain-simd its plain equivalent")
    })?;
    Ok((bytes, rewritten))
}
