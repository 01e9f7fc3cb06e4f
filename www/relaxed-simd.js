// Whether this engine runs WebAssembly relaxed SIMD. Engines without it (Safari today) reject
// any module that contains one of its instructions, so the threaded build ships a .wasm with it
// and one without (scripts/build-web.sh); the worker asks here which to load.

/** The smallest module using f32x4.relaxed_madd. */
export const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type: () -> v128
  0x03, 0x02, 0x01, 0x00, // one function of that type
  0x0a, 0x13, 0x01, 0x11, 0x00, // code: one body of 17 bytes, no locals
  0x41, 0x00, 0xfd, 0x0f, 0x41, 0x00, 0xfd, 0x0f, 0x41, 0x00, 0xfd, 0x0f, // three i8x16.splat(0)
  0xfd, 0x85, 0x02, 0x0b, // f32x4.relaxed_madd, end
]);

export const hasRelaxedSimd = () => { try { return WebAssembly.validate(RELAXED_SIMD_PROBE); } catch { return false; } };
