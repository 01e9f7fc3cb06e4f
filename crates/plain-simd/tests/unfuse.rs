//! The rewrite on small modules built here: each relaxed multiply-add unfused (one in a nested
//! block), the result valid without relaxed SIMD and no longer claiming it, and a module with
//! another relaxed instruction refused.

use walrus::ir::{BinaryOp, Binop, Block, Drop, Instr, LocalGet, TernOp, TernaryOp};
use walrus::{ExportItem, FunctionBuilder, Module, ModuleConfig, RawCustomSection, ValType};

/// A module exporting `f(a, b, c) = relaxed_madd(a, b, c)` which also runs `inner` on (a, b, c)
/// inside a block and drops its result.
fn module_with(inner: Instr) -> Vec<u8> {
    let mut module = Module::with_config(ModuleConfig::new());
    let v = ValType::V128;
    let mut f = FunctionBuilder::new(&mut module.types, &[v, v, v], &[v]);
    let args = [
        module.locals.add(v),
        module.locals.add(v),
        module.locals.add(v),
    ];
    let mut body = f.func_body();
    body.block(None, |block| {
        let operands = if matches!(inner, Instr::TernOp(_)) {
            3
        } else {
            2
        };
        for &local in &args[..operands] {
            block.instr(LocalGet { local });
        }
        block.instr(inner.clone());
        block.instr(Drop {});
    });
    for local in args {
        body.instr(LocalGet { local });
    }
    body.instr(TernOp {
        op: TernaryOp::F32x4RelaxedMadd,
    });
    let id = f.finish(args.to_vec(), &mut module.funcs);
    module.exports.add("f", id);
    // What wasm-ld writes: the features its objects were compiled with.
    let mut features = vec![3u8];
    for name in ["simd128", "relaxed-simd", "atomics"] {
        features.extend_from_slice(&[b'+', name.len() as u8]);
        features.extend_from_slice(name.as_bytes());
    }
    module.customs.add(RawCustomSection {
        name: "target_features".into(),
        data: features,
    });
    module.emit_wasm()
}

/// `f`'s instructions in order, a block's inside it, with their operators but not their operands.
fn instructions(wasm: &[u8]) -> Vec<String> {
    fn walk(local: &walrus::LocalFunction, seq: walrus::ir::InstrSeqId, out: &mut Vec<String>) {
        for (instr, _) in &local.block(seq).instrs {
            out.push(match instr {
                Instr::Binop(Binop { op }) => format!("{op:?}"),
                Instr::TernOp(TernOp { op }) => format!("{op:?}"),
                other => format!("{other:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap()
                    .to_string(),
            });
            if let Instr::Block(Block { seq }) = instr {
                walk(local, *seq, out);
            }
        }
    }
    let module = Module::from_buffer(wasm).unwrap();
    let f = module.exports.iter().find_map(|e| match e.item {
        ExportItem::Function(f) if e.name == "f" => Some(f),
        _ => None,
    });
    let local = module.funcs.get(f.unwrap()).kind.unwrap_local();
    let mut out = Vec::new();
    walk(local, local.entry_block(), &mut out);
    out
}

fn target_features(wasm: &[u8]) -> Vec<u8> {
    let module = Module::from_buffer(wasm).unwrap();
    let id = module
        .customs
        .iter()
        .find(|(_, s)| s.name() == "target_features")
        .unwrap()
        .0;
    module
        .customs
        .get(id)
        .unwrap()
        .data(&Default::default())
        .into_owned()
}

#[test]
fn each_relaxed_madd_becomes_a_mul_then_an_add() {
    let relaxed = module_with(
        TernOp {
            op: TernaryOp::F32x4RelaxedMadd,
        }
        .into(),
    );
    let mut strict = wasmparser::WasmFeatures::default();
    strict.remove(wasmparser::WasmFeatures::RELAXED_SIMD);
    assert!(
        wasmparser::Validator::new_with_features(strict)
            .validate_all(&relaxed)
            .is_err(),
        "the fixture must need relaxed SIMD"
    );

    let (plain, rewritten) = plain_simd::unfuse(&relaxed).unwrap();
    assert_eq!(rewritten, 2);
    wasmparser::Validator::new_with_features(strict)
        .validate_all(&plain)
        .unwrap();
    let unfused = ["LocalSet", "F32x4Mul", "LocalGet", "F32x4Add"];
    let three = ["LocalGet"; 3];
    let expected: Vec<&str> = [
        &["Block"][..],
        &three,
        &unfused,
        &["Drop"],
        &three,
        &unfused,
    ]
    .concat();
    assert_eq!(instructions(&plain), expected);

    let features = target_features(&plain);
    assert_eq!(features[0], 2, "two features left: {features:?}");
    assert!(!features.windows(12).any(|w| w == b"relaxed-simd"));
    assert!(
        features.windows(7).any(|w| w == b"simd128")
            && features.windows(7).any(|w| w == b"atomics")
    );
}

#[test]
fn another_relaxed_instruction_is_refused_with_what_to_do() {
    let relaxed = module_with(
        Binop {
            op: BinaryOp::F32x4RelaxedMin,
        }
        .into(),
    );
    let err = plain_simd::unfuse(&relaxed).unwrap_err();
    assert!(
        err.contains("other than f32x4.relaxed_madd") && err.contains("crates/plain-simd"),
        "{err}"
    );
}

#[test]
fn not_a_module_is_refused() {
    let err = plain_simd::unfuse(b"\0asm\x01\0\0\0garbage").unwrap_err();
    assert!(err.contains("not a WebAssembly module"), "{err}");
}
